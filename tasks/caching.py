"""Cache keys that make reruns cheap: each depends only on content and the parameters that shape a
stage's output, never on the run, so the same inputs give the same key on any machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tasks.config import DataConfig, ModelConfig, TrainingConfig

# The modules whose code shapes each cached result: editing one recomputes instead of reusing.
SPLIT_CODE = ("data.py",)
STORE_CODE = ("data.py", "features.py")
TRAINING_CODE = ("models.py", "training.py", "features.py")
BASELINE_CODE = ("baseline.py", "features.py", "evaluation.py")
# Schema of the cached results themselves; bump when their shape changes.
CACHE_FORMAT = 1


def _digest(*parts: object) -> str:
    canonical = json.dumps([CACHE_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def code_version(files: tuple[str, ...]) -> str:
    """A hash of the code behind a stage, so changed code is never served from cache."""
    folder = Path(__file__).parent
    return hashlib.sha256(b"".join((folder / name).read_bytes() for name in files)).hexdigest()[:12]


def download_key(config: DataConfig, cached_sha256: str) -> str:
    """The download's key: the source named, its expected checksum, and the checksum of the local
    copy (a changed copy gives a new key; without a copy the download is not cached at all)."""
    return "download-" + _digest(config.source, config.source_sha256, config.cache_dir, cached_sha256)


def split_key(source_sha256: str, config: DataConfig, seed: int) -> str:
    return "split-" + _digest(source_sha256, config.num_words, config.val_fraction, seed, code_version(SPLIT_CODE))


def store_key(metadata: dict, storage_root: str) -> str:
    """Pad-and-store's key: its inputs (source checksum, parameters), the root and the code."""
    return "store-" + _digest(metadata, storage_root, code_version(STORE_CODE))


def baseline_key(dataset_key: str) -> str:
    return "baseline-" + _digest(dataset_key, code_version(BASELINE_CODE))


def training_key(dataset_key: str, variant: str, model: ModelConfig, training: TrainingConfig, seed: int,
                 baseline_val_accuracy: float | None = None) -> str:
    """Data set + variant config + recipe + seed + the baseline it is judged against + code
    version: all that decides the weights and which restart is kept.

    Which other variants and seeds run beside it, how long training may take, and the preset's
    name (its values count) do not."""
    recipe = training.model_dump(exclude={"timeout_seconds", "seeds", "recipe"})
    layers = model.model_dump(exclude={"variants"})
    return "train-" + _digest(dataset_key, variant, layers, recipe, seed, baseline_val_accuracy,
                              code_version(TRAINING_CODE))
