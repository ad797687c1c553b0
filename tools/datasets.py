"""The pipeline's data stages for the tools that train outside a flow (bench, seeds)."""

from __future__ import annotations

from tasks.config import DataConfig
from tasks.data.sources import SourceInfo, resolve_source
from tasks.data.split import split_source
from tasks.data.store import DatasetInfo, dataset_metadata, store_dataset


def prepare_dataset(config: DataConfig, seed: int, storage_root: str) -> tuple[DatasetInfo, SourceInfo]:
    """Download, split and pad-and-store in one call, without a flow or its cache: the data set the
    pipeline itself would store for `config` and `seed`."""
    source = resolve_source(config)
    splits = split_source(source.kind, source.local_path, config.num_words, config.val_fraction, seed)
    metadata = dataset_metadata(config, seed, source.uri, source.sha256)
    return store_dataset(splits, config.maxlen, metadata, storage_root), source
