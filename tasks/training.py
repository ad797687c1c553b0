"""Training one variant with the reference recipe: RMSprop, binary cross-entropy, early stopping
on val_loss with the best weights restored, and a checkpoint of the best val_loss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks import storage
from tasks.config import ModelConfig, TrainingConfig
from tasks.features import DatasetInfo, read_split
from tasks.guard import is_stalled, is_under_trained, majority_rate
from tasks.models import build_training_model, to_published

log = logging.getLogger(__name__)

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# The models are tiny, so per-batch Python and dispatch overhead dominates an epoch: compiling
# with XLA and running many batches per graph call cut epoch time ~5x here (BENCHMARKS.md).
JIT_COMPILE = True
STEPS_PER_EXECUTION = 32


class TrainedVariant(BaseModel):
    """What training left on local disk, and how it went."""

    variant: str
    model_path: str
    history_path: str
    parameters: int
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    train_seconds: float
    trained_at: float  # Unix time training ended: tells a cached result from one trained now
    seed: int = 0  # the seed of the attempt whose model this is
    best_val_loss: float = 0.0  # what picks the published seed (never a test metric)
    best_val_accuracy: float = 0.0
    val_majority_rate: float = 0.5  # always guessing the val split's majority class scores this
    stalled: bool = False  # best_val_accuracy within the stall margin of val_majority_rate
    baseline_val_accuracy: float | None = None  # the bag-of-words baseline's, when one was given
    under_trained: bool = False  # best_val_accuracy more than the baseline margin below the baseline's
    attempts: list[dict] = []  # every attempt (seed, epochs, best val accuracy, verdicts), in order

    @property
    def healthy(self) -> bool:
        """Neither stalled at chance nor under-trained: fit to publish and to promote."""
        return not (self.stalled or self.under_trained)


class TrainingJob(BaseModel):
    """One training: which variant, on which stored data set, with which layer sizes and recipe,
    from which seed, judged against which baseline val accuracy (None: no under-trained verdict)."""

    model_config = ConfigDict(frozen=True)

    variant: str
    dataset: DatasetInfo
    model: ModelConfig
    training: TrainingConfig
    seed: int
    baseline_val_accuracy: float | None = None
    point: dict[str, int | float] = {}  # a sweep point's values (model and training above hold them too)


class EpochProgress(keras.callbacks.Callback):
    """Records each epoch's metrics and wall time, and logs one line per epoch."""

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
        log_epoch(self.variant, self.max_epochs, record)
        if self.on_epoch:
            self.on_epoch(record)


def log_epoch(label: str, max_epochs: int, record: dict) -> None:
    """One line per epoch: `<label> epoch i/N: loss=... accuracy=... val_loss=... val_accuracy=... (s)`.

    A training in a child process cannot reach the run's log; its parent logs the records it
    forwards with this same function.
    """
    log.info(
        "%s epoch %d/%d: loss=%.4f accuracy=%.4f val_loss=%.4f val_accuracy=%.4f (%.1f s)",
        label,
        record["epoch"],
        max_epochs,
        record["loss"],
        record["accuracy"],
        record["val_loss"],
        record["val_accuracy"],
        record["seconds"],
    )


def derive_seed(seed: int, *indices: int) -> int:
    """A child seed for seed number / restart `indices`; all-zero indices give `seed` itself, so a
    single first attempt trains exactly as the run's seed says. Deterministic, below 2**32."""
    if not any(indices):
        return seed
    digest = hashlib.sha256(json.dumps([seed, *indices]).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def describe_failure(trained: TrainedVariant, margin: float) -> str:
    """Why an attempt is not healthy, with the numbers that decided it."""
    if trained.stalled:
        return (
            f"stalled at chance (best val accuracy {trained.best_val_accuracy:.4f}, "
            f"majority class {trained.val_majority_rate:.4f})"
        )
    return (
        f"under-trained (best val accuracy {trained.best_val_accuracy:.4f}, more than {margin:g} below the "
        f"baseline's {trained.baseline_val_accuracy:.4f})"
    )


def compile_model(model: keras.Model, config: TrainingConfig) -> keras.Model:
    """The recipe's optimiser, loss and metric; XLA and batched steps change speed, not the math."""
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=JIT_COMPILE,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def fit_model(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainingConfig,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """The pipeline's fit loop: up to `config.max_epochs` epochs of `config.batch_size` batches."""
    model.fit(
        x_train,
        y_train.astype("float32"),
        batch_size=config.batch_size,
        epochs=config.max_epochs,
        validation_data=(x_val, y_val.astype("float32")),
        callbacks=callbacks,
        verbose=0,
    )


def train_variant(job: TrainingJob, out_dir: Path, on_epoch: Callable[[dict], None] | None = None) -> TrainedVariant:
    """Trains the job's variant on the stored train split, validating on val each epoch.

    Writes `<out_dir>/<variant>/model.keras` (best val_loss) and `history.json`; returns paths and
    a summary, never the model itself. `on_epoch` receives each epoch's record as it ends. With a
    baseline val accuracy, the summary says whether the model is under-trained against it.
    """
    variant, dataset, seed, baseline_val_accuracy = job.variant, job.dataset, job.seed, job.baseline_val_accuracy
    model_config, training_config = job.model, job.training
    keras.utils.set_random_seed(seed)
    num_words, maxlen = int(dataset.metadata["num_words"]), int(dataset.metadata["maxlen"])
    x_train, y_train, _ = read_split(dataset.split_uris["train"], expected_maxlen=maxlen)
    x_val, y_val, _ = read_split(dataset.split_uris["val"], expected_maxlen=maxlen)
    model = compile_model(build_training_model(variant, num_words, maxlen, model_config), training_config)
    variant_dir = Path(out_dir) / variant
    variant_dir.mkdir(parents=True, exist_ok=True)
    model_path = variant_dir / "model.keras"
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
        "training %s (%d parameters) on %d reviews, validating on %d",
        variant,
        model.count_params(),
        len(y_train),
        len(y_val),
    )
    started = time.perf_counter()
    fit_model(model, x_train, y_train, x_val, y_val, training_config, [progress, stopping, checkpoint])
    train_seconds = time.perf_counter() - started
    model.load_weights(best_weights)  # the checkpoint of the best val_loss
    to_published(variant, model, num_words, maxlen, model_config).save(model_path)
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
    history_path = variant_dir / "history.json"
    storage.write_json(str(history_path), history)
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
    return TrainedVariant(
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


def pick_published(seed_runs: list[TrainedVariant]) -> TrainedVariant:
    """The seed to publish: the lowest best val_loss among the healthy ones (among all when none
    is healthy). Test metrics never choose."""
    healthy = [trained for trained in seed_runs if trained.healthy] or seed_runs
    return min(healthy, key=lambda trained: trained.best_val_loss)


def append_progress(path: str, record: dict) -> None:
    """An `on_epoch` that works across processes: one JSON line per epoch, appended to `path`."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _attempt_summary(trained: TrainedVariant) -> dict:
    return {
        "seed": trained.seed,
        "epochs_run": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "best_val_loss": trained.best_val_loss,
        "best_val_accuracy": trained.best_val_accuracy,
        "stalled": trained.stalled,
        "under_trained": trained.under_trained,
        "train_seconds": trained.train_seconds,
    }


def train_with_restarts(
    job: TrainingJob, out_dir: Path, on_epoch: Callable[[dict], None] | None = None
) -> TrainedVariant:
    """`train_variant`, retrained with a derived seed while it is stalled or under-trained against
    the job's baseline val accuracy, at most `job.training.restarts` times.

    Returns the first healthy attempt (or, when none is, the one with the lowest val_loss, still
    marked), with every attempt listed; its history.json keeps every attempt's epochs. Writes
    `<out_dir>/<variant>/model.keras` and `history.json`.
    """
    variant, seed, training_config = job.variant, job.seed, job.training
    attempts, histories = [], []
    for attempt in range(training_config.restarts + 1):
        attempt_seed = derive_seed(seed, 0, attempt)
        trained = train_variant(
            job.model_copy(update={"seed": attempt_seed}), Path(out_dir) / f"attempt-{attempt}", on_epoch
        )
        attempts.append(trained)
        histories.append(json.loads(Path(trained.history_path).read_text()))
        if trained.healthy:
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
    shutil.copyfile(chosen.model_path, variant_dir / "model.keras")
    history = {
        **histories[attempts.index(chosen)],
        "attempts": [
            {**_attempt_summary(trained), "epochs": record["epochs"]}
            for trained, record in zip(attempts, histories, strict=True)
        ],
    }
    storage.write_json(str(variant_dir / "history.json"), history)
    return chosen.model_copy(
        update={
            "model_path": str(variant_dir / "model.keras"),
            "history_path": str(variant_dir / "history.json"),
            "train_seconds": round(sum(trained.train_seconds for trained in attempts), 2),
            "attempts": [_attempt_summary(trained) for trained in attempts],
        }
    )


def store_trained(trained: TrainedVariant, destination: str) -> TrainedVariant:
    """Copies model.keras and history.json to `destination` (a storage URI), verified; returns the
    record pointing there, so it stays valid after the local scratch folder is gone."""
    stored = {}
    for field, name in (("model_path", "model.keras"), ("history_path", "history.json")):
        uri = storage.join(destination, name)
        storage.write_verified(uri, Path(getattr(trained, field)).read_bytes())
        stored[field] = uri
    return trained.model_copy(update=stored)


def collect_trained(trained: TrainedVariant, folder: Path) -> Path:
    """model.keras and history.json of a trained variant, copied into `folder` (a run's variant folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(storage.read_bytes(trained.model_path))
    (folder / "history.json").write_bytes(storage.read_bytes(trained.history_path))
    return folder
