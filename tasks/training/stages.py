"""The training stages as Prefect tasks: the baseline, train (with restarts), evaluate, collect and plot
each variant, and the sweep's plot and table."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from tasks.config import StorageConfig, TrainingConfig
from tasks.data import store
from tasks.reporting import plots, results, tables
from tasks.runtime import task_runners, ui
from tasks.runtime.run_logging import configure_run_logging
from tasks.runtime.ui import artifact_key
from tasks.storage import cache_keys, fs, layout
from tasks.training import baseline, evaluation, jobs, sweeps
from tasks.training.jobs import TrainedVariant, TrainingJob
from tasks.training.supervisor import train_in_child_process


def _baseline_cache_key(context, parameters: dict) -> str:
    return cache_keys.baseline_key(parameters["dataset"].key, parameters["config"].baseline_max_rows)


@task(name="baseline", cache_key_fn=_baseline_cache_key)
def fit_baseline(dataset: store.DatasetInfo, config: TrainingConfig) -> baseline.BaselineResult:
    """The bag-of-words logistic regression every variant is judged against, fitted on at most
    `config.baseline_max_rows` training reviews."""
    return baseline.fit_bag_of_words(dataset, config.baseline_max_rows)


def _training_key(job: TrainingJob) -> str:
    return cache_keys.training_key(
        job.dataset.key, job.variant, job.model, job.training, job.seed, job.baseline_val_accuracy
    )


def _training_cache_key(context, parameters: dict) -> str:
    return _training_key(parameters["job"])


def _log_and_show_epoch(label: str, job: TrainingJob, show: Callable[[dict], None], record: dict) -> None:
    """An epoch: its log line, naming the variant (and the seed, when there are several), and its
    progress artifact."""
    jobs.log_epoch(label, job.training.max_epochs, record)
    show(record)


def _training_run_name() -> str:
    job = task_run.parameters["job"]
    return "-".join(("train", job.variant, f"seed-{job.seed}", *sweeps.point_label(job.point).split()))


@task(name="train", task_run_name=_training_run_name, cache_key_fn=_training_cache_key)
def train(
    job: TrainingJob, storage_config: StorageConfig, threads: int | None = None, dask_address: str | None = None
) -> TrainedVariant:
    """Trains one variant and seed (restarting it while it is under-trained against the baseline or
    stalled), measures it on the test set and keeps the result in storage; its progress artifact
    moves every epoch.

    It trains in a child process of its own, so trainings run side by side and this process never
    loads TensorFlow, with `threads` threads (None: one per core); with `dask_address`, on a worker
    of that Dask cluster instead (see `task_runners.train_on_dask`). Its log says where it ran.
    """
    configure_run_logging()
    key = _training_key(job)
    point = sweeps.point_label(job.point).split()
    several = job.training.seeds > 1 or bool(point)  # trainings of one variant: name the seed and point
    label = " ".join((job.variant, "seed", str(job.seed), *point)) if several else job.variant
    key_parts = ("training", job.variant, f"seed-{job.seed}", *point) if several else ("training", job.variant)
    progress, show_epoch = ui.start_training_progress(key_parts, label, job.training.max_epochs)
    on_epoch = functools.partial(_log_and_show_epoch, label, job, show_epoch)
    destination = layout.training_cache_uri(storage_config.root, key, job.variant)
    try:
        if dask_address:
            relay = functools.partial(_relay_worker_event, label, on_epoch)
            stored = task_runners.train_on_worker(dask_address, job, storage_config, destination, relay)
        else:
            get_run_logger().info("%s: training in a process of its own", label)
            stored = _train_in_child_process(job, key, storage_config, on_epoch, threads, destination)
    except (TimeoutError, asyncio.CancelledError):
        # Prefect's timer (the task's timeout_seconds) interrupts a sync task in the main thread by
        # raising CancelledError into it (TimeoutError in a worker thread): name the option instead.
        raise jobs.timed_out(job) from None
    summary = (
        f"done after {stored.epochs_run} epochs (best val_loss at epoch {stored.best_epoch}); "
        f"{results.guard_label(stored)}"
    )
    history = json.loads(jobs.read_stored(stored.history_path, stored.history_sha256))
    ui.finish_training_progress(progress, label, summary, history)
    return stored


def _train_in_child_process(
    job: TrainingJob,
    key: str,
    storage_config: StorageConfig,
    on_epoch: Callable[[dict], None],
    threads: int | None,
    destination: str,
) -> TrainedVariant:
    # Unique per attempt: two runs training the same thing at once never share a scratch folder.
    scratch = Path(storage_config.work_dir) / layout.TRAINING_SCRATCH_FOLDER / f"{key}-{uuid.uuid4().hex[:8]}"
    try:
        return jobs.store_trained(train_in_child_process(job, scratch, on_epoch, threads), destination)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _relay_worker_event(label: str, on_epoch: Callable[[dict], None], event: dict) -> None:
    """An event of a training on a Dask worker, into this task run's log and progress artifact."""
    if "started" in event:  # again after a worker died: Dask runs the training on another
        get_run_logger().info("%s: training on %s %s", label, task_runners.DASK_WORKER, event["started"])
    elif "epoch" in event:
        on_epoch(event["epoch"])
    elif "log" in event:
        logging.getLogger(event["log"]["logger"]).log(event["log"]["level"], "%s", event["log"]["message"])


@task(name="evaluate", task_run_name="evaluate-{trained.variant}-seed-{trained.seed}", cache_policy=NO_CACHE)
def evaluate(trained: TrainedVariant, dataset: store.DatasetInfo) -> evaluation.ClassificationMetrics:
    """Test-set metrics of one trained seed: those its training process measured on the model in
    memory, or else measured on the saved model."""
    metrics = trained.test_metrics or evaluation.measure(
        evaluation.load_model_bytes(jobs.read_stored(trained.model_path, trained.model_sha256), trained.model_path),
        dataset.split_uris["test"],
    )
    evaluation.log_metrics(f"{trained.variant} seed {trained.seed}", metrics)
    return metrics


@task(name="collect", task_run_name="collect-{trained.variant}", cache_policy=NO_CACHE)
def collect(trained: TrainedVariant, test_metrics: evaluation.ClassificationMetrics, run_dir: Path) -> None:
    """The published seed's model, history and test metrics, into the run folder."""
    folder = jobs.collect_trained(trained, run_dir / trained.variant)
    fs.write_json(str(folder / layout.METRICS_NAME), test_metrics.model_dump())


@task(name="plot", task_run_name="plot-{trained.variant}", cache_policy=NO_CACHE)
def plot_variant(trained: TrainedVariant, run_dir: Path) -> None:
    plots.plot_history(
        json.loads(jobs.read_stored(trained.history_path, trained.history_sha256)), run_dir / trained.variant
    )


@task(name="plot-comparison", cache_policy=NO_CACHE)
def plot_comparison(variants: dict[str, results.VariantResult], run_dir: Path) -> None:
    """The comparison plot: the published training of every variant, side by side."""
    histories = {
        name: json.loads(jobs.read_stored(result.published.history_path, result.published.history_sha256))
        for name, result in variants.items()
    }
    plots.plot_comparison(histories, run_dir / layout.COMPARISON_PLOT)


@task(name="plot-sweep", cache_policy=NO_CACHE)
def show_sweep(variants: dict[str, results.VariantResult], run_dir: Path) -> None:
    """The sweep plot (val accuracy per point of every variant) into the run folder, and the sweep table
    as a table artifact."""
    swept = {name: result.sweep for name, result in variants.items() if result.sweep}
    plots.plot_sweep(swept, run_dir / layout.SWEEP_PLOT)
    create_table_artifact(
        [dict(zip(tables.SWEEP_COLUMNS, row, strict=True)) for row in tables.sweep_rows(variants)],
        key=artifact_key("sweep"),
        description="val accuracy per sweep point; per variant the lowest val_loss is published",
    )
