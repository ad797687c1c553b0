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
from pathlib import Path

from prefect import flow, get_run_logger, tags
from prefect.context import refresh_global_settings_context
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import ValidationError

from tasks.cli import build_parser, config_from_args, describe_validation_error
from tasks.config import PipelineConfig
from tasks.errors import PipelineError
from tasks.prefect_tasks import (
    cache_options,
    check_data,
    check_storage,
    collect,
    configure_run_logging,
    describe_run,
    emit_failure_event,
    download,
    evaluate,
    fit_baseline,
    judge_champion,
    pad_and_store,
    promote,
    plot_comparison,
    plot_variant,
    publish,
    report,
    run_name,
    run_tags,
    split,
    train,
)
from tasks.reporting import format_table, format_time_split, package_versions, summary_rows, variant_result
from tasks.storage import new_run_id
from tasks.training import derive_seed, pick_published
from tasks.verify import add_endpoint_option, apply_endpoint_option

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A cold ephemeral Prefect server needs 20-30 s on 2 cores; Prefect's default wait is 20 s.
EPHEMERAL_STARTUP_TIMEOUT_SECONDS = "180"
STAGES = 10
# Seeds of a variant train side by side, one process per core (each trains single-threaded best).
PARALLEL_TRAININGS = os.cpu_count() or 1


@flow(name="imdb-rnn-pipeline", flow_run_name=run_name, on_failure=[emit_failure_event],
      task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_TRAININGS))
def imdb_rnn_pipeline(config: PipelineConfig = PipelineConfig()) -> dict:
    """Trains and publishes every configured SimpleRNN variant; returns the run's summary."""
    configure_run_logging()
    logger = get_run_logger()
    run_id = new_run_id()
    run_dir = Path(config.storage.work_dir) / run_id
    check_storage(config.storage)
    cached = cache_options(config.storage.root, config.refresh)  # same inputs: the UI shows "Cached"

    logger.info("stage 1/%d: download (source %s)", STAGES, config.data.source)
    source = download.with_options(**cached)(config.data)
    logger.info("stage 2/%d: split into train/val/test", STAGES)
    splits = split.with_options(**cached)(source, config.data, config.seed)
    logger.info("stage 3/%d: pad to %d ids and store as Parquet", STAGES, config.data.maxlen)
    dataset = pad_and_store.with_options(**cached)(splits, source, config.data, config.seed, config.storage)
    logger.info("stage 4/%d: check the data (statistics, checks, drift against the champion's data)", STAGES)
    data_result = check_data(splits, dataset, config.checks, config.storage, run_dir)  # a failed check stops here
    del splits  # the padded Parquet files are the data from here on
    logger.info("stage 5/%d: fit the bag-of-words baseline", STAGES)
    baseline = fit_baseline.with_options(**cached)(dataset)
    train_cached = train.with_options(**cached, timeout_seconds=config.training.timeout_seconds)
    seeds = [derive_seed(config.seed, index) for index in range(config.training.seeds)]

    variants, histories = {}, {}
    for variant in config.model.variants:
        logger.info("stage 6/%d: train %s (seeds %s)", STAGES, variant, ", ".join(map(str, seeds)))
        seed_runs = _train_seeds(train_cached, variant, dataset, config, seeds, baseline["val"]["accuracy"])
        logger.info("stage 7/%d: evaluate %s on the test set", STAGES, variant)
        seed_metrics = [evaluate(trained, dataset) for trained in seed_runs]
        published = pick_published(seed_runs)  # by val_loss, never by test metrics
        collect(published, seed_metrics[seed_runs.index(published)], run_dir)
        logger.info("stage 8/%d: plot %s", STAGES, variant)
        histories[variant] = plot_variant(published, run_dir)
        variants[variant] = variant_result(published, seed_runs, seed_metrics)
    plot_comparison(histories, run_dir)

    logger.info("stage 9/%d: champion gate (%s, by test %s)", STAGES, config.champion.promote, config.champion.metric)
    decision = judge_champion(variants, dataset, config.champion, config.storage)

    logger.info("stage 10/%d: publish run %s", STAGES, run_id)
    details = {
        "run_id": run_id,
        "config": config.model_dump(mode="json"),
        "source": source.model_dump(exclude={"local_path"}),
        "dataset_key": dataset.key,
        "dataset_uri": dataset.uri,
        "versions": package_versions(),
    }
    report(run_dir, run_id, details["config"], source, dataset, variants, baseline, decision, data_result)
    run_uri = publish(run_dir, config.storage, run_id, details)
    decision = promote(decision, run_uri, run_id, dataset, variants, config.storage, config.champion)
    describe_run(run_uri, variants, baseline, decision)
    logger.info("test metrics:\n%s", format_table(summary_rows(variants, baseline)))
    return {"run_id": run_id, "run_uri": run_uri, "dataset_key": dataset.key, "source": details["source"],
            "variants": variants, "baseline": baseline, "champion": decision.model_dump()}


def _train_seeds(train_task, variant: str, dataset, config: PipelineConfig, seeds: list[int],
                 baseline_val_accuracy: float) -> list:
    """One seed trains in this process; several train side by side, each in its own process."""
    arguments = (variant, dataset, config.model, config.training)
    if len(seeds) == 1:
        return [train_task(*arguments, seeds[0], config.storage, baseline_val_accuracy)]
    futures = [train_task.submit(*arguments, seed, config.storage, baseline_val_accuracy, in_child_process=True)
               for seed in seeds]
    return [future.result() for future in futures]


def use_project_prefect_home() -> None:
    """Keeps Prefect's state (ephemeral server database, profiles) inside the project by default."""
    os.environ.setdefault("PREFECT_HOME", str(PROJECT_ROOT / ".prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_SECONDS)
    # Batch machines are often offline; the server's telemetry would only log a failure there.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect read its settings when it was imported; make it read them again.
    refresh_global_settings_context()


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
    use_project_prefect_home()
    apply_endpoint_option(args.s3_endpoint_url)
    try:
        with tags(*run_tags(config.data.source, config.model.variants)):
            result = imdb_rnn_pipeline(config)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the one-line contract holds for surprises too
        print(f"error: unexpected {error.__class__.__name__}: {error}", file=sys.stderr)
        return 1
    print(f"data: {result['source']['description']}")
    print(format_table(summary_rows(result["variants"], result["baseline"])))
    decision = result["champion"]
    print(f"champion: {'promoted' if decision['promote'] else 'kept'} ({decision['reason']})")
    print(format_time_split(time.time() - PROCESS_STARTED, result["variants"], PROCESS_STARTED))
    print(f"run: {result['run_uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
