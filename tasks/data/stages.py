"""Stages 1 and 3-5 as Prefect tasks: storage check, download, split, pad and store, data checks;
and the data watch's look at a prefix and its announcement."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import DataCheckConfig, DataConfig, StorageConfig, WatchConfig
from tasks.data import checks, drift, prepare, sources, store, watch
from tasks.data.sources import SourceInfo
from tasks.data.split import SplitPlan
from tasks.errors import SourceError, SourceUnreachable
from tasks.registry import gate
from tasks.runtime import ui
from tasks.runtime.policies import retry_when
from tasks.storage import cache_keys, fs

DOWNLOAD_RETRY_DELAYS = [2.0, 5.0]  # seconds: ride out a brief network blip, fail fast on a dead host
# A cached download is a verified local copy (an offline fallback has none, so it is never cached
# here: tasks/data/sources.py decides when `auto` probes the canonical file again).
DOWNLOAD_CACHE_EXPIRATION = timedelta(days=1)


@task(name="check-storage", cache_policy=NO_CACHE)
def check_storage(config: StorageConfig) -> None:
    fs.ensure_writable(config.root)


def _download_cache_key(context, parameters: dict) -> str | None:
    """Keyed by the local copy's checksum; without a local copy there is nothing to reuse (None)."""
    config = parameters["config"]
    try:
        path = sources.local_copy_path(config)
    except SourceError:
        return None
    if path is None or not path.is_file():
        return None
    return cache_keys.download_key(config, fs.sha256_of(str(path)))


@task(
    name="download",
    retries=len(DOWNLOAD_RETRY_DELAYS),
    retry_delay_seconds=DOWNLOAD_RETRY_DELAYS,
    retry_condition_fn=retry_when(lambda error: isinstance(error, SourceUnreachable)),
    cache_key_fn=_download_cache_key,
    cache_expiration=DOWNLOAD_CACHE_EXPIRATION,
)
def download(config: DataConfig) -> SourceInfo:
    return sources.resolve_source(config)


def _split_cache_key(context, parameters: dict) -> str:
    # The plan's files live under the storage root: a plan is reused under the same root only.
    key = prepare.plan_key(parameters["source"], parameters["config"], parameters["seed"])
    return cache_keys.store_key({"plan": key}, parameters["storage_config"].root)


@task(name="split", cache_key_fn=_split_cache_key)
def split(
    source: SourceInfo, config: DataConfig, seed: int, storage_config: StorageConfig, dask_address: str | None = None
) -> SplitPlan:
    """Where every review goes and the training words' ranks, as a small plan under the storage's
    cache; the reviews stay in the source (pad-and-store reads them again). With a Dask address,
    one's own files are read on its workers (the same plan)."""
    return prepare.split_resolved(source, config, seed, storage_config.root, dask_address)


def _store_cache_key(context, parameters: dict) -> str:
    source, config = parameters["source"], parameters["config"]
    metadata = prepare.dataset_metadata(source, config, parameters["seed"])
    # The word index shapes the stored vocabulary.json, not the stored ids: it keys the stage, not the data set.
    return cache_keys.store_key(
        {**metadata, "word_index_sha256": source.word_index_sha256, "plan": parameters["plan"].key},
        parameters["storage_config"].root,
    )


@task(name="pad-and-store", cache_key_fn=_store_cache_key)
def pad_and_store(
    plan: SplitPlan,
    source: SourceInfo,
    config: DataConfig,
    seed: int,
    storage_config: StorageConfig,
    dask_address: str | None = None,
) -> store.DatasetInfo:
    """The padded splits stored with their profile; with a Dask address, one's own files are
    encoded on its workers (the same files)."""
    return prepare.store_splits(plan, source, config, seed, storage_config.root, dask_address)


@task(name="check-data", cache_policy=NO_CACHE)
def check_data(
    plan: SplitPlan,
    dataset: store.DatasetInfo,
    config: DataCheckConfig,
    storage_config: StorageConfig,
    run_dir: Path,
) -> checks.DataCheckResult:
    """Statistics, checks and drift of the data set, shown in the UI before a failed check stops the
    run; never cached: a reused data set folder is checked again."""
    champion, _ = gate.read_champion(storage_config.root)
    reference, note = drift.champion_statistics(champion, storage_config.root, dataset.key)
    result = checks.check_dataset(checks.read_profile(dataset), dataset, config, reference, note, plan.ingest)
    ui.show_data_checks(result, dataset.key)
    checks.raise_on_failed_checks(result)
    checks.write_run_files(result, run_dir)
    return result


@task(name="find-new-snapshots", cache_policy=NO_CACHE)
def find_new_snapshots(config: WatchConfig) -> watch.WatchResult:
    """The prefix's snapshots and those no published run has trained on; never cached, since each
    look must see the prefix and the published runs as they are now."""
    return watch.find_new_snapshots(config.source, config.storage.root)


@task(name="announce-new-data", cache_policy=NO_CACHE)
def announce_new_data(result: watch.WatchResult) -> None:
    ui.announce_new_data(result.prefix, result.new, result.snapshots)
