"""The pipeline's data stages for the tools that train outside a flow (bench, seeds)."""

from __future__ import annotations

from tasks.config import DataConfig
from tasks.data import prepare
from tasks.data.sources import SourceInfo, resolve_source
from tasks.data.store import DatasetInfo


def prepare_dataset(config: DataConfig, seed: int, storage_root: str) -> tuple[DatasetInfo, SourceInfo]:
    """Download, split and pad-and-store in one call, without a flow or its cache: the data set the
    pipeline itself would store for `config` and `seed`, for every kind of source."""
    source = resolve_source(config)
    plan = prepare.split_resolved(source, config, seed, storage_root)
    return prepare.store_splits(plan, source, config, seed, storage_root), source
