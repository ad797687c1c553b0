"""A training's records, light enough for any process: what to train (`TrainingJob`), what came
out (`TrainedVariant`, with every `Attempt`), seeds, the pick of the published seed, per-epoch log lines, and copying
the result to storage. The Keras side lives in `tasks.training.fit`, imported by training processes only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.config import ModelConfig, TrainingConfig
from tasks.data.store import DatasetInfo
from tasks.errors import StorageError, TrainingTimedOut
from tasks.storage import fs
from tasks.storage.layout import MODEL_NAME, TRAINING_HISTORY_NAME
from tasks.training.evaluation import ClassificationMetrics

log = logging.getLogger(__name__)


class Attempt(BaseModel):
    """One attempt at a training: its seed, how it went, and the guard's verdicts."""

    model_config = ConfigDict(frozen=True)

    seed: int
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    stalled: bool
    under_trained: bool
    train_seconds: float


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
    attempts: list[Attempt] = []  # every attempt, in order
    # Test-set metrics of this model, measured in the training process while the model was still in
    # memory (None: not measured there, so evaluation loads the saved model).
    test_metrics: ClassificationMetrics | None = None
    # Once kept in storage: the sha256 of the model and history stored, checked whenever they are read back.
    model_sha256: str | None = None
    history_sha256: str | None = None

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


def pick_published(seed_runs: list[TrainedVariant]) -> TrainedVariant:
    """The seed to publish: the lowest best val_loss among the healthy ones (among all when none
    is healthy). Test metrics never choose."""
    healthy = [trained for trained in seed_runs if trained.healthy] or seed_runs
    return min(healthy, key=lambda trained: trained.best_val_loss)


def append_progress(path: str, record: dict) -> None:
    """An `on_epoch` that works across processes: one JSON line per epoch, appended to `path`."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def timed_out(job: TrainingJob) -> TrainingTimedOut:
    """The error of a training stopped by its timeout, wherever it ran."""
    return TrainingTimedOut(
        f"training {job.variant} seed {job.seed} took longer than --training-timeout "
        f"{job.training.timeout_seconds} s and was stopped; nothing was published"
    )


def store_trained(trained: TrainedVariant, destination: str) -> TrainedVariant:
    """Copies a trained variant's model and history into a folder of their own under `destination`
    (a storage URI), create-only and verified; returns the record pointing there, with their sha256,
    so it stays valid after the local scratch folder is gone. Each call writes a new folder: two runs
    training the same thing at once never write over, or read back, each other's model."""
    folder = fs.join(destination, uuid.uuid4().hex)
    stored: dict[str, str] = {}
    for field, name in (("model_path", MODEL_NAME), ("history_path", TRAINING_HISTORY_NAME)):
        uri = fs.join(folder, name)
        stored[field.replace("_path", "_sha256")] = fs.write_verified(
            uri, Path(getattr(trained, field)).read_bytes(), create_only=True
        )
        stored[field] = uri
    return trained.model_copy(update=stored)


def read_stored(uri: str, sha256: str | None) -> bytes:
    """A stored model or history, refused when it is not the one recorded when it was kept."""
    data = fs.read_bytes(uri)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise StorageError(f"{uri}: sha256 differs from the one recorded when it was stored (--refresh trains again)")
    return data


def collect_trained(trained: TrainedVariant, folder: Path) -> Path:
    """The model and history of a trained variant, copied into `folder` (a run's variant folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_NAME).write_bytes(read_stored(trained.model_path, trained.model_sha256))
    (folder / TRAINING_HISTORY_NAME).write_bytes(read_stored(trained.history_path, trained.history_sha256))
    return folder
