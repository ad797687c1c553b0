"""Stages 6-8 as Prefect tasks: train (with restarts), evaluate, collect and plot each variant."""

from __future__ import annotations

import asyncio
import functools
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from tasks import caching, evaluation, features, plots, reporting, storage, sweeps, training
from tasks.config import StorageConfig
from tasks.orchestration import task_runners, ui
from tasks.orchestration.run_logging import configure_run_logging
from tasks.orchestration.training_runs import timed_out, train_in_child_process
from tasks.training import TrainedVariant, TrainingJob


def _training_key(job: TrainingJob) -> str:
    return caching.training_key(
        job.dataset.key, job.variant, job.model, job.training, job.seed, job.baseline_val_accuracy
    )


def _training_cache_key(context, parameters: dict) -> str:
    return _training_key(parameters["job"])


def _log_and_show_epoch(label: str, job: TrainingJob, show: Callable[[dict], None], record: dict) -> None:
    """An epoch of a training in a child process: its log line (which the child's own logging cannot
    send to the run's log) and its progress artifact."""
    training.log_epoch(label, job.training.max_epochs, record)
    show(record)


def _training_run_name() -> str:
    job = task_run.parameters["job"]
    return "-".join(("train", job.variant, f"seed-{job.seed}", *sweeps.point_label(job.point).split()))


@task(name="train", task_run_name=_training_run_name, cache_key_fn=_training_cache_key)
def train(job: TrainingJob, storage_config: StorageConfig, in_child_process: bool = False) -> TrainedVariant:
    """Trains one variant and seed (restarting it while it is under-trained against the baseline or
    stalled) and keeps the result in storage; its progress artifact moves every epoch.

    `in_child_process` trains in a fresh process, for seeds trained side by side; on a Dask worker
    (a process of its own already) it trains in the worker. Its log says where it ran.
    """
    configure_run_logging()  # on a Dask worker too, so that its epochs reach the run's log
    key = _training_key(job)
    # Unique per attempt: two runs training the same thing at once never share a scratch folder.
    scratch = Path(storage_config.work_dir) / "training" / f"{key}-{uuid.uuid4().hex[:8]}"
    label = " ".join((job.variant, "seed", str(job.seed), sweeps.point_label(job.point))).strip()
    where = task_runners.where_running()
    side_by_side = in_child_process or bool(job.point) or where.startswith(task_runners.DASK_WORKER)
    point = sweeps.point_label(job.point).split()
    key_parts = ("training", job.variant, f"seed-{job.seed}", *point) if side_by_side else ("training", job.variant)
    get_run_logger().info("%s: training on %s", label, where)
    progress, on_epoch = ui.start_training_progress(key_parts, label, job.training.max_epochs)
    try:
        trained = (
            train_in_child_process(job, scratch, functools.partial(_log_and_show_epoch, label, job, on_epoch))
            if in_child_process
            else training.train_with_restarts(job, scratch, on_epoch)
        )
        stored = training.store_trained(
            trained, storage.join(storage_config.root, "cache", "training", key, job.variant)
        )
    except (TimeoutError, asyncio.CancelledError):
        # Prefect's timer (the task's timeout_seconds) interrupts a sync task in the main thread by
        # raising CancelledError into it (TimeoutError in a worker thread): name the option instead.
        raise timed_out(job) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = (
        f"done after {trained.epochs_run} epochs (best val_loss at epoch {trained.best_epoch}); "
        f"{reporting.guard_label(trained.model_dump())}"
    )
    ui.finish_training_progress(progress, label, summary, storage.read_json(stored.history_path))
    return stored


@task(name="evaluate", task_run_name="evaluate-{trained.variant}-seed-{trained.seed}", cache_policy=NO_CACHE)
def evaluate(trained: TrainedVariant, dataset: features.DatasetInfo) -> dict:
    """Test-set metrics of one trained seed."""
    return evaluation.evaluate_model(trained.model_path, dataset.split_uris["test"])


@task(name="collect", task_run_name="collect-{trained.variant}", cache_policy=NO_CACHE)
def collect(trained: TrainedVariant, test_metrics: dict, run_dir: Path) -> None:
    """The published seed's model, history and test metrics, into the run folder."""
    folder = training.collect_trained(trained, run_dir / trained.variant)
    storage.write_json(str(folder / "metrics.json"), test_metrics)


@task(name="plot", task_run_name="plot-{trained.variant}", cache_policy=NO_CACHE)
def plot_variant(trained: TrainedVariant, run_dir: Path) -> dict:
    return plots.plot_history(storage.read_json(trained.history_path), run_dir / trained.variant)


@task(name="plot-comparison", cache_policy=NO_CACHE)
def plot_comparison(histories: dict[str, dict], run_dir: Path) -> None:
    plots.plot_comparison(histories, run_dir / "comparison.png")
