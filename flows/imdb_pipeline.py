"""The IMDB SimpleRNN pipeline as one Prefect flow: download, split, pad and store, train,
evaluate, plot and publish every variant.

Local run: `python -m flows.imdb_pipeline --help` (or `make run ARGS="..."`).
"""

from __future__ import annotations

import time

# Taken before the heavy imports below (TensorFlow, Prefect): the run's time split counts them.
PROCESS_STARTED = time.time()

import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import ValidationError

from flows.cli import add_endpoint_option, build_parser, config_from_args, describe_validation_error
from tasks.config import PipelineConfig, refuse_unless_it_fits
from tasks.data.sources import SourceInfo
from tasks.data.split import SplitPlan
from tasks.data.stages import check_data, check_storage, download, pad_and_store, split
from tasks.data.store import DatasetInfo
from tasks.registry.publishing import RunContext
from tasks.registry.stages import describe_run, find_unchanged, judge_champion, promote, publish, write_report
from tasks.registry.unchanged import UnchangedRun
from tasks.reporting.results import RunResults, VariantResult, variant_result
from tasks.reporting.summary import RunSummary
from tasks.reporting.tables import format_table, format_time_split, summary_rows
from tasks.runtime import task_runners
from tasks.runtime.command_line import run_flow
from tasks.runtime.heartbeats import ensure_zombie_automation_hook
from tasks.runtime.interruption import note_published, remove_scratch, remove_scratch_when_interrupted
from tasks.runtime.policies import cache_options
from tasks.runtime.run_logging import StageLog, configure_run_logging
from tasks.runtime.ui import emit_failure_event, run_name, tag_flow_run
from tasks.storage.fs import new_run_id
from tasks.training import sweeps
from tasks.training.baseline import BaselineResult
from tasks.training.jobs import TrainedVariant, TrainingJob, derive_seed
from tasks.training.stages import collect, evaluate, fit_baseline, plot_comparison, plot_variant, show_sweep, train
from tasks.training.supervisor import children_stopped_on_signals, warm_training_processes

STAGES = (
    "download",
    "skip unchanged",
    "split",
    "pad and store",
    "check data",
    "baseline",
    "train",
    "evaluate",
    "plot",
    "champion gate",
    "publish",
)
# What the stages import on first use (a cached run needs few of them), imported while Prefect's server starts.
STAGE_LIBRARIES = (
    "sklearn.model_selection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "scipy.spatial.distance",
    "matplotlib.figure",
)
# Trainings run side by side, one process per core: these tiny models gain little from a second
# thread, and trainings whose threads outnumber the cores only slow each other down (BENCHMARKS.md).
CORES = os.cpu_count() or 1
PARALLEL_TRAININGS = CORES


@dataclass(frozen=True)
class CachedStages:
    """The stages whose results are kept and reused for the same inputs (the UI shows "Cached"),
    with the run's cache options bound once."""

    download: Task[..., SourceInfo]
    split: Task[..., SplitPlan]
    pad_and_store: Task[..., DatasetInfo]
    fit_baseline: Task[..., BaselineResult]
    train: Task[..., TrainedVariant]

    @classmethod
    def bind(cls, options: dict[str, Any]) -> CachedStages:
        return cls(
            download=download.with_options(**options),
            split=split.with_options(**options),
            pad_and_store=pad_and_store.with_options(**options),
            fit_baseline=fit_baseline.with_options(**options),
            train=train.with_options(**options),
        )


@flow(
    name="imdb-rnn-pipeline",
    flow_run_name=run_name,
    on_failure=[emit_failure_event],
    on_crashed=[remove_scratch],  # SIGTERM, SIGINT
    on_running=[ensure_zombie_automation_hook],  # SIGKILL: the server marks the run Crashed
    on_cancellation=[remove_scratch],
    # Prefect types this parameter with an invariant generic that no concrete runner matches.
    task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_TRAININGS),  # type: ignore[arg-type]
)
def imdb_rnn_pipeline(config: PipelineConfig = PipelineConfig()) -> RunSummary | UnchangedRun:
    """Trains and publishes every configured SimpleRNN variant; returns the run's summary, or with
    `skip_unchanged` the latest published run when this one would only repeat it."""
    configure_run_logging()
    tag_flow_run(config.data.source, config.model.variants)  # deployment runs too, not only the CLI's
    dask_address = task_runners.dask_address(config.dask_address)  # None: trainings run on this machine
    if dask_address:  # workers may run in another folder: a relative root would be theirs
        config = config.model_copy(update={"storage": task_runners.shared_storage(config.storage)})
    with ExitStack() as warm_processes:  # the training processes started ahead, ended with the flow
        return _run_stages(config, dask_address, warm_processes)


def _run_stages(config: PipelineConfig, dask_address: str | None, warm: ExitStack) -> RunSummary | UnchangedRun:
    """The stages, in order; `warm` keeps the training processes started ahead of the train stage."""
    stage = StageLog(STAGES)
    run_id = new_run_id()
    run_dir = Path(config.storage.work_dir) / run_id
    remove_scratch_when_interrupted(run_dir)
    check_storage(config.storage)
    cached = CachedStages.bind(cache_options(config.storage.root, config.refresh))

    # Data: download, split, pad and store as Parquet, check; the baseline every variant must beat.
    stage("download", f"source {config.data.source}")
    source = cached.download(config.data)
    stage("skip unchanged", "compared with the latest published run" if config.skip_unchanged else "off")
    if config.skip_unchanged and (same := find_unchanged(config, source)):
        get_run_logger().info(same.message)
        # The flow run ends in this state, which the UI shows with its message; the caller gets its data.
        return Completed(message=same.message, data=same)  # type: ignore[return-value]
    if not dask_address:
        # The training processes start now and import TensorFlow while the data stages run; the
        # train stage hands them their jobs. Not earlier: a run whose download fails or that skips
        # as unchanged trains nothing.
        warm.enter_context(warm_training_processes(*_side_by_side(sweeps.training_count(config))))
    on_dask = f", on the Dask cluster at {dask_address}" if dask_address and len(source.files) > 1 else ""
    stage("split", f"train/val/test{on_dask}")
    plan = cached.split(source, config.data, config.seed, config.storage, dask_address)
    refuse_unless_it_fits(config, plan.total_rows)  # the real row counts, before any stage that grows with them
    stage("pad and store", f"{config.data.maxlen} ids per review, as Parquet{on_dask}")
    dataset = cached.pad_and_store(plan, source, config.data, config.seed, config.storage, dask_address)
    stage("check data", "statistics, checks, drift against the champion's data")
    data_checks = check_data(plan, dataset, config.checks, config.storage, run_dir)  # a failed check stops here
    stage("baseline", "bag-of-words logistic regression")
    baseline = cached.fit_baseline(dataset, config.training)
    run = RunContext(
        run_id=run_id, run_dir=run_dir, config=config, source=source, dataset=dataset, dask_address=dask_address
    )

    # Models: every variant, seed and sweep point trains at once (one process per core, or on a Dask
    # cluster); evaluate on the test set, plot.
    trainings = _train_all(run, cached.train, baseline, stage)
    variants = {variant: _evaluate_and_plot(run, jobs, runs, stage) for variant, (jobs, runs) in trainings.items()}
    plot_comparison(variants, run_dir)
    if config.sweep:
        show_sweep(variants, run_dir)
    results = RunResults(variants=variants, baseline=baseline, data_checks=data_checks)

    # Publishing: the champion gate, the report, the run's files, promotion, the UI's view of it.
    stage("champion gate", f"{config.champion.promote}, by test {config.champion.metric}")
    decision = judge_champion(run, variants)
    stage("publish", f"run {run_id}")
    write_report(run, results, decision)
    run_uri = publish(run)
    note_published(run_uri)  # an interruption from here on says what was published
    decision = promote(run, run_uri, variants, decision)
    describe_run(run_uri, results, decision, config.storage.presign_minutes)
    get_run_logger().info("test metrics:\n%s", format_table(summary_rows(variants, baseline)))
    return RunSummary(run_uri=run_uri, run=run, results=results, decision=decision, timing=stage.timing())


def _train_all(
    run: RunContext, train_task: Task[..., TrainedVariant], baseline: BaselineResult, stage: StageLog
) -> dict[str, tuple[list[TrainingJob], list[TrainedVariant]]]:
    """Stage train: every (variant, seed, sweep point) as its own task, each in a process of its own,
    at most one per core at a time, or each on a worker of the run's Dask cluster; returns each
    variant's jobs and what they trained, in the same order."""
    config, dask_address = run.config, run.dask_address
    seeds = [derive_seed(config.seed, index) for index in range(config.training.seeds)]
    by_variant = {
        variant: sweeps.training_jobs(variant, run.dataset, config, seeds, baseline.val.accuracy)
        for variant in config.model.variants
    }
    jobs = [job for variant_jobs in by_variant.values() for job in variant_jobs]
    summary = f"{', '.join(config.model.variants)}; seeds {', '.join(map(str, seeds))}: {len(jobs)} training(s)"
    if dask_address:
        stage("train", f"{summary} on the Dask cluster at {dask_address}")
        task = train_task.with_options(timeout_seconds=config.training.timeout_seconds)
        trained = iter(task_runners.train_on_dask(dask_address, task, jobs, config.storage))
    else:
        side_by_side, threads = _side_by_side(len(jobs))
        stage("train", f"{summary}, {side_by_side} at a time, {threads} thread(s) each")
        # SIGTERM / SIGINT end the children before Prefect waits for the threads that supervise them.
        with children_stopped_on_signals():
            futures = [train_task.submit(job, config.storage, threads=threads) for job in jobs]
            trained = iter([future.result() for future in futures])
    return {
        variant: (variant_jobs, [next(trained) for _ in variant_jobs]) for variant, variant_jobs in by_variant.items()
    }


def _side_by_side(trainings: int) -> tuple[int, int]:
    """How many of `trainings` run at once on this machine, and TensorFlow's threads in each."""
    side_by_side = min(trainings, PARALLEL_TRAININGS)
    return side_by_side, max(1, CORES // side_by_side)  # more threads than cores only slowed trainings down


def _evaluate_and_plot(
    run: RunContext, jobs: list[TrainingJob], runs: list[TrainedVariant], stage: StageLog
) -> VariantResult:
    """Stages evaluate and plot of one variant; returns its result."""
    variant = jobs[0].variant
    stage("evaluate", f"{variant} on the test set")
    metrics = [evaluate(trained, run.dataset) for trained in runs]
    result = variant_result(jobs, runs, metrics)  # published by val_loss over every seed and point, never test
    collect(result.published, result.test, run.run_dir)
    stage("plot", variant)
    plot_variant(result.published, run.run_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    """Runs the flow from the command line; prints the summary table and `run: <uri>` last."""
    parser = build_parser()
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValidationError as error:
        print(f"error: {describe_validation_error(error)}", file=sys.stderr)
        return 2

    return run_and_print(config, args.s3_endpoint_url)


def run_and_print(config: PipelineConfig, s3_endpoint_url: str | None) -> int:
    """Runs the flow on `config`; prints the summary table and `run: <uri>` last; returns the exit status."""
    # The flow run tags itself (tag_flow_run): a `tags()` block here would tag every task run too,
    # and each tagged task run asks the server for concurrency slots of its tags, a round trip apiece.
    status, result = run_flow(lambda: imdb_rnn_pipeline(config), s3_endpoint_url, warm_up=STAGE_LIBRARIES)
    if result is None:
        return status
    if isinstance(result, UnchangedRun):
        print(result.message)
    else:
        _print_summary(result)
    print(f"run: {result.run_uri}")
    return 0


def _print_summary(result: RunSummary) -> None:
    print(f"data: {result.run.source.description}")
    print(format_table(summary_rows(result.results.variants, result.results.baseline)))
    print(f"champion: {'promoted' if result.decision.promote else 'kept'} ({result.decision.reason})")
    print(format_time_split(PROCESS_STARTED, time.time(), result.timing))


if __name__ == "__main__":
    sys.exit(main())
