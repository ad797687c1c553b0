"""Fitting one variant with Keras: the reference recipe's optimiser, loss and callbacks, restarts
while a model is stalled or under-trained, and its test metrics while it is still in memory.

Only a training process imports this module (and with it TensorFlow); the pipeline's own process
works with the records in `tasks.training.jobs`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras

from tasks.config import TrainingConfig
from tasks.storage import fs
from tasks.storage.layout import MODEL_NAME, TRAINING_HISTORY_NAME
from tasks.training import evaluation
from tasks.training.build import build_training_model, to_published
from tasks.training.feed import SplitFeed
from tasks.training.guard import is_stalled, is_under_trained, majority_rate
from tasks.training.jobs import (
    Attempt,
    TrainedVariant,
    TrainingJob,
    derive_seed,
    describe_failure,
    log_epoch,
    pick_published,
)
from tasks.training.splits import LocalSplit, copy_split

log = logging.getLogger(__name__)

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# The models are tiny, so per-batch Python and dispatch overhead dominates an epoch: compiling
# with XLA (TrainingConfig.uses_xla) and running many batches per graph call cut epoch time ~5x
# here (BENCHMARKS.md).
STEPS_PER_EXECUTION = 32
# In a training's scratch folder: the train and val ids, copied once for every attempt to read.
SPLITS_FOLDER = "splits"


class EpochProgress(keras.callbacks.Callback):
    """Records each epoch's metrics and wall time, and hands each epoch's record to `on_epoch`, or
    else logs it as one line."""

    def __init__(self, variant: str, max_epochs: int, on_epoch: Callable[[dict], None] | None = None) -> None:
        super().__init__()
        self.variant = variant
        self.max_epochs = max_epochs
        self.on_epoch = on_epoch
        self.epochs: list[dict[str, float]] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        record = {"epoch": epoch + 1, **{name: float(logs[name]) for name in HISTORY_METRICS}}
        record["seconds"] = round(time.perf_counter() - self._started, 3)
        self.epochs.append(record)
        if self.on_epoch:
            self.on_epoch(record)
        else:
            log_epoch(self.variant, self.max_epochs, record)


def compile_model(model: keras.Model, config: TrainingConfig, epoch_ids: int) -> keras.Model:
    """The recipe's optimiser, loss and metric for a training whose epoch holds `epoch_ids` ids;
    XLA and batched steps change speed, not the math."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.uses_xla(epoch_ids),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def fit_model(
    model: keras.Model,
    train: LocalSplit,
    val: LocalSplit,
    config: TrainingConfig,
    seed: int,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """The pipeline's fit loop: up to `config.max_epochs` epochs of `config.batch_size` batches of
    `train`, every row once per epoch in an order drawn from `seed` and the epoch; `val` in order."""
    model.fit(
        SplitFeed(train, config.batch_size, seed=seed),
        epochs=config.max_epochs,
        validation_data=SplitFeed(val, config.batch_size),
        callbacks=callbacks,
        verbose=0,
        shuffle=False,  # the feed shuffles; Keras would only shuffle the order of its batches
    )


def copy_splits(job: TrainingJob, out_dir: Path) -> dict[str, LocalSplit]:
    """The job's train and val ids copied once into `<out_dir>/splits/` (read by every attempt)."""
    maxlen = int(job.dataset.metadata["maxlen"])
    return {
        name: copy_split(job.dataset.split_uris[name], Path(out_dir) / SPLITS_FOLDER / f"{name}.npy", maxlen)
        for name in ("train", "val")
    }


def train_variant(job: TrainingJob, out_dir: Path, on_epoch: Callable[[dict], None] | None = None) -> TrainedVariant:
    """Trains the job's variant on the stored train split, validating on val each epoch.

    Writes the model of the best val_loss and its history in `<out_dir>/<variant>/`; returns paths and
    a summary, never the model itself. `on_epoch` receives each epoch's record as it ends. With a
    baseline val accuracy, the summary says whether the model is under-trained against it.
    """
    return _fit_attempt(job, out_dir, on_epoch, copy_splits(job, out_dir))[0]


def _fit_attempt(
    job: TrainingJob, out_dir: Path, on_epoch: Callable[[dict], None] | None, splits: dict[str, LocalSplit]
) -> tuple[TrainedVariant, keras.Model]:
    """`train_variant` on splits already copied, also returning the published form of the model it saved."""
    variant, dataset, seed, baseline_val_accuracy = job.variant, job.dataset, job.seed, job.baseline_val_accuracy
    model_config, training_config = job.model, job.training
    keras.utils.set_random_seed(seed)
    num_words, maxlen = int(dataset.metadata["num_words"]), int(dataset.metadata["maxlen"])
    y_val = splits["val"].labels
    model = compile_model(
        build_training_model(variant, num_words, maxlen, model_config), training_config, splits["train"].rows * maxlen
    )
    variant_dir = Path(out_dir) / variant
    variant_dir.mkdir(parents=True, exist_ok=True)
    model_path = variant_dir / MODEL_NAME
    best_weights = variant_dir / "best.weights.h5"
    progress = EpochProgress(variant, training_config.max_epochs, on_epoch)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=training_config.patience,
        restore_best_weights=True,
        start_from_epoch=training_config.start_from_epoch,
        min_delta=training_config.min_delta,
    )
    checkpoint = keras.callbacks.ModelCheckpoint(
        best_weights, monitor="val_loss", save_best_only=True, save_weights_only=True
    )
    log.info(
        "training %s (%d parameters) on %d reviews, validating on %d, XLA %s",
        variant,
        model.count_params(),
        splits["train"].rows,
        splits["val"].rows,
        "on" if model.jit_compile else "off",
    )
    started = time.perf_counter()
    fit_model(model, splits["train"], splits["val"], training_config, seed, [progress, stopping, checkpoint])
    train_seconds = time.perf_counter() - started
    model.load_weights(best_weights)  # the checkpoint of the best val_loss
    published = to_published(variant, model, num_words, maxlen, model_config)
    published.save(model_path)
    best_weights.unlink()
    best_epoch = min(progress.epochs, key=lambda record: record["val_loss"])["epoch"]
    best_val_accuracy = max(record["val_accuracy"] for record in progress.epochs)
    val_majority = majority_rate(y_val)
    stalled = is_stalled(best_val_accuracy, val_majority, training_config.stall_margin)
    under_trained = is_under_trained(best_val_accuracy, baseline_val_accuracy, training_config.baseline_margin)
    history = {
        "variant": variant,
        "seed": seed,
        "best_epoch": best_epoch,
        "stalled": stalled,
        "under_trained": under_trained,
        "val_majority_rate": val_majority,
        "baseline_val_accuracy": baseline_val_accuracy,
        "epochs": progress.epochs,
    }
    history_path = variant_dir / TRAINING_HISTORY_NAME
    fs.write_json(str(history_path), history)
    log.info(
        "%s: %d epochs in %.1f s, best val_loss at epoch %d, best val accuracy %.4f (majority %.4f%s)%s",
        variant,
        len(progress.epochs),
        train_seconds,
        best_epoch,
        best_val_accuracy,
        val_majority,
        "" if baseline_val_accuracy is None else f", baseline {baseline_val_accuracy:.4f}",
        ": STALLED" if stalled else ": UNDER-TRAINED" if under_trained else "",
    )
    trained = TrainedVariant(
        variant=variant,
        model_path=str(model_path),
        history_path=str(history_path),
        parameters=model.count_params(),
        epochs_run=len(progress.epochs),
        best_epoch=best_epoch,
        stopped_early=stopping.stopped_epoch > 0,
        train_seconds=round(train_seconds, 2),
        trained_at=time.time(),
        seed=seed,
        best_val_loss=min(record["val_loss"] for record in progress.epochs),
        best_val_accuracy=best_val_accuracy,
        val_majority_rate=val_majority,
        stalled=stalled,
        baseline_val_accuracy=baseline_val_accuracy,
        under_trained=under_trained,
    )
    return trained, published


def _attempt_summary(trained: TrainedVariant) -> Attempt:
    return Attempt(
        seed=trained.seed,
        epochs_run=trained.epochs_run,
        best_epoch=trained.best_epoch,
        best_val_loss=trained.best_val_loss,
        best_val_accuracy=trained.best_val_accuracy,
        stalled=trained.stalled,
        under_trained=trained.under_trained,
        train_seconds=trained.train_seconds,
    )


def attempt_folder(out_dir: Path, attempt: int) -> Path:
    """Where `train_with_restarts` keeps attempt `attempt` (0 first) of a training in `out_dir`."""
    return Path(out_dir) / f"attempt-{attempt}"


def train_with_restarts(
    job: TrainingJob, out_dir: Path, on_epoch: Callable[[dict], None] | None = None
) -> TrainedVariant:
    """`train_variant`, retrained with a derived seed while it is stalled or under-trained against
    the job's baseline val accuracy, at most `job.training.restarts` times. An attempt that ran
    every epoch without early stopping is not restarted: it was cut by its epoch budget, which a
    restart does not change.

    Returns the first healthy attempt (or, when none is, the one with the lowest val_loss, still
    marked), with every attempt listed and its test metrics, measured on the model still in memory;
    its history keeps every attempt's epochs. Writes the chosen model and that history in
    `<out_dir>/<variant>/`; each attempt's own are kept in `attempt_folder(out_dir, attempt)`.
    """
    variant, seed, training_config = job.variant, job.seed, job.training
    attempts, models, histories = [], [], []
    splits = copy_splits(job, out_dir)
    for attempt in range(training_config.restarts + 1):
        attempt_seed = derive_seed(seed, 0, attempt)
        trained, model = _fit_attempt(
            job.model_copy(update={"seed": attempt_seed}), attempt_folder(out_dir, attempt), on_epoch, splits
        )
        attempts.append(trained)
        models.append(model)
        histories.append(json.loads(Path(trained.history_path).read_text()))
        if trained.healthy:
            break
        if not trained.stopped_early:  # a restart gets no more epochs than this attempt had
            log.warning(
                "%s seed %d %s: out of epochs (all %d ran without early stopping); no restart, which "
                "would get no more (raise --max-epochs)",
                variant,
                attempt_seed,
                describe_failure(trained, training_config.baseline_margin),
                trained.epochs_run,
            )
            break
        if attempt < training_config.restarts:
            log.warning(
                "%s seed %d %s: restart %d/%d with seed %d",
                variant,
                attempt_seed,
                describe_failure(trained, training_config.baseline_margin),
                attempt + 1,
                training_config.restarts,
                derive_seed(seed, 0, attempt + 1),
            )
    chosen = pick_published(attempts)  # the one healthy attempt: the loop ends there
    if not chosen.healthy:
        log.warning(
            "%s: no healthy model in %d attempts; the lowest val_loss (%s) is published marked as such "
            "and never promoted",
            variant,
            len(attempts),
            describe_failure(chosen, training_config.baseline_margin),
        )
    variant_dir = Path(out_dir) / variant
    variant_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chosen.model_path, variant_dir / MODEL_NAME)
    history = {
        **histories[attempts.index(chosen)],
        "attempts": [
            {**_attempt_summary(trained).model_dump(), "epochs": record["epochs"]}
            for trained, record in zip(attempts, histories, strict=True)
        ],
    }
    fs.write_json(str(variant_dir / TRAINING_HISTORY_NAME), history)
    return chosen.model_copy(
        update={
            "model_path": str(variant_dir / MODEL_NAME),
            "history_path": str(variant_dir / TRAINING_HISTORY_NAME),
            "train_seconds": round(sum(trained.train_seconds for trained in attempts), 2),
            "attempts": [_attempt_summary(trained) for trained in attempts],
            "test_metrics": evaluation.measure(models[attempts.index(chosen)], job.dataset.split_uris["test"]),
        }
    )
