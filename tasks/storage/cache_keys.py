"""Cache keys that make reruns cheap: each depends only on content and the parameters that shape a
stage's output, never on the run, so the same inputs give the same key on any machine.
"""

from __future__ import annotations

import ast
import hashlib
import json
import threading
from pathlib import Path

import tasks
from tasks.config import BASELINE_MAX_ROWS, DataConfig, ModelConfig, PipelineConfig, TrainingConfig
from tasks.training.variants import get as get_variant

# The module each cached stage runs: its code, and that of every tasks module it imports, is part
# of the stage's key, so editing any of them recomputes instead of reusing.
SPLIT_MODULE = "tasks.data.split"
STORE_MODULE = "tasks.data.prepare"  # storing, and the vocabulary stored beside the splits
TRAINING_MODULE = "tasks.training.fit"
BASELINE_MODULE = "tasks.training.baseline"
# The pipeline's flow: its code, and that of every project module it imports, is what a run ran.
PIPELINE_MODULE = "flows.imdb_pipeline"
PACKAGE = "tasks"
PACKAGE_DIR = Path(tasks.__file__).parent
# Packages beside `tasks` whose modules a code hash follows too: the flows import tasks, never the reverse.
SIBLING_PACKAGES = ("flows",)
# Schema of the cached results themselves; bump when their shape changes.
CACHE_FORMAT = 1
# Options that steer how or where a run works, never what it trains and publishes: whether it may
# skip, whether caches are reused, where its trainings run, where its files, scratch and downloads
# live (a run is compared only with runs under its own root), how long a read or a training may take.
NOT_SHAPING_A_RUN: dict = {
    "skip_unchanged": True,
    "refresh": True,
    "dask_address": True,
    "storage": True,
    "data": {"cache_dir", "download_timeout_seconds", "source_url_env"},
    "training": {"timeout_seconds"},
}


def _digest(*parts: object) -> str:
    canonical = json.dumps([CACHE_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _module_file(module: str, package_dir: Path) -> Path | None:
    """The source file of a `tasks.` module under `package_dir`, or of a sibling package's module
    beside it; None for a name that is not a module."""
    top = module.partition(".")[0]
    base = package_dir.parent / top if top in SIBLING_PACKAGES else package_dir
    folder = base.joinpath(*module.split(".")[1:])
    for path in (folder.with_suffix(".py"), folder / "__init__.py"):
        if path.is_file():
            return path
    return None


# CPython 3.11's parser is not safe across threads: two trainings computing their keys at once in
# the flow's task threads failed with "SystemError: AST constructor recursion depth mismatch".
_PARSING = threading.Lock()


def _imports(path: Path) -> set[str]:
    """Every `tasks.` (or sibling package's) module named by an import anywhere in the file (also
    inside functions)."""
    names: set[str] = set()
    with _PARSING:
        tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.partition(".")[0] in (PACKAGE, *SIBLING_PACKAGES) and "." in name}


def stage_modules(module: str, package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """`module` and every tasks module it imports, directly or through another, with the packages
    that hold them (importing `tasks.data.store` runs `tasks/data/__init__.py` too), read from the
    code itself: moving or splitting a module never drops it from a stage's key."""
    found: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_file(name, package_dir)
        if name in found or path is None:
            continue
        found[name] = path
        pending.extend(_imports(path))
        pending.append(name.rpartition(".")[0])
    return dict(sorted(found.items()))


def code_hash(module: str, package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of the code behind a stage (see `stage_modules`), so changed code is never served from cache."""
    digest = hashlib.sha256()
    for name, path in stage_modules(module, package_dir).items():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def download_key(config: DataConfig, cached_sha256: str) -> str:
    """The download's key: the source named, its expected checksum, and the checksum of the local
    copy (a changed copy gives a new key; without a copy the download is not cached at all)."""
    return "download-" + _digest(config.source, config.source_sha256, config.cache_dir, cached_sha256)


def split_key(source_sha256: str, config: DataConfig, seed: int, own_reviews: bool = False) -> str:
    """The split's key; own reviews add the options only they read (other sources keep their keys)."""
    parts: tuple = (source_sha256, config.num_words, config.val_fraction, seed, code_hash(SPLIT_MODULE))
    if own_reviews:
        parts = (*parts, config.test_fraction, config.text_column, config.label_column)
    return "split-" + _digest(*parts)


def store_key(metadata: dict, storage_root: str) -> str:
    """Pad-and-store's key: its inputs (source checksum, parameters), the root and the code."""
    return "store-" + _digest(metadata, storage_root, code_hash(STORE_MODULE))


def baseline_key(dataset_key: str, max_rows: int = BASELINE_MAX_ROWS) -> str:
    """The baseline's key: the data set, how many training reviews it may fit on, and the code."""
    return "baseline-" + _digest(dataset_key, max_rows, code_hash(BASELINE_MODULE))


def training_key(
    dataset_key: str,
    variant: str,
    model: ModelConfig,
    training: TrainingConfig,
    seed: int,
    baseline_val_accuracy: float | None = None,
) -> str:
    """Data set + variant config + recipe + seed + the baseline it is judged against + code
    version: all that decides the weights and which restart is kept.

    Which other variants and seeds run beside it, the layer sizes only other variants read, how
    long training may take, the preset's name (its values count) and the baseline's cap (its val
    accuracy counts) do not."""
    recipe = training.model_dump(exclude={"timeout_seconds", "seeds", "recipe", "baseline_max_rows"})
    layers = get_variant(variant).option_values(model)
    return "train-" + _digest(
        dataset_key, variant, layers, recipe, seed, baseline_val_accuracy, code_hash(TRAINING_MODULE)
    )


def pipeline_code_hash() -> str:
    """A hash of the code a run runs: the flow's module and every project module it imports."""
    return code_hash(PIPELINE_MODULE)


def config_key(config: PipelineConfig) -> str:
    """A run's config as a key, without the options that do not shape what it trains and publishes
    (NOT_SHAPING_A_RUN): two runs with the same key, code and data publish the same models."""
    return "config-" + _digest(config.model_dump(mode="json", exclude=NOT_SHAPING_A_RUN))
