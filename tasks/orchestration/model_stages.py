"""Stages 6-8 as Prefect tasks: train (with restarts), evaluate, collect and plot each variant."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import caching, evaluation, features, plots, reporting, storage, training
from tasks.config import ModelConfig, StorageConfig, TrainingConfig
from tasks.orchestration import ui
from tasks.orchestration.training_runs import train_in_child_process
from tasks.training import TrainedVariant


def _training_cache_key(context, parameters: dict) -> str:
    return caching.training_key(parameters["dataset"].key, parameters["variant"], parameters["model_config"],
                                parameters["training_config"], parameters["seed"],
                                parameters["baseline_val_accuracy"])


@task(name="train", task_run_name="train-{variant}-seed-{seed}", cache_key_fn=_training_cache_key)
def train(
    variant: str,
    dataset: features.DatasetInfo,
    model_config: ModelConfig,
    training_config: TrainingConfig,
    seed: int,
    storage_config: StorageConfig,
    baseline_val_accuracy: float | None = None,
    in_child_process: bool = False,
) -> TrainedVariant:
    """Trains one variant and seed (restarting it while it is under-trained against the baseline or
    stalled) and keeps the result in storage; its progress artifact moves every epoch.

    `in_child_process` trains in a fresh process, for seeds trained side by side.
    """
    key = caching.training_key(dataset.key, variant, model_config, training_config, seed, baseline_val_accuracy)
    # Unique per attempt: two runs training the same thing at once never share a scratch folder.
    scratch = Path(storage_config.work_dir) / "training" / f"{key}-{uuid.uuid4().hex[:8]}"
    label = f"{variant} seed {seed}"
    key_parts = ("training", variant, f"seed-{seed}") if in_child_process else ("training", variant)
    progress, on_epoch = ui.start_training_progress(key_parts, label, training_config.max_epochs)
    arguments = (variant, dataset, model_config, training_config, seed, scratch)
    try:
        trained = (train_in_child_process(arguments, baseline_val_accuracy, scratch, on_epoch) if in_child_process
                   else training.train_with_restarts(*arguments, on_epoch, baseline_val_accuracy))
        stored = training.store_trained(trained, storage.join(storage_config.root, "cache", "training", key, variant))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = (f"done after {trained.epochs_run} epochs (best val_loss at epoch {trained.best_epoch}); "
               f"{reporting.guard_label(trained.model_dump())}")
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
