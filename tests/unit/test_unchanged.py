"""Whether a run would only repeat the latest published run, read from manifests the real publishing
code writes under a local storage root."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.config import PipelineConfig, StorageConfig
from tasks.data.sources import SourceInfo
from tasks.data.store import DatasetInfo
from tasks.registry import publishing
from tasks.registry.unchanged import UnchangedRun, find_unchanged
from tasks.storage import layout
from tasks.storage.fs import new_run_id

DATA_SHA256 = "a" * 64


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    return PipelineConfig(seed=7, storage=StorageConfig(root=str(tmp_path / "store"), work_dir=str(tmp_path / "work")))


@functools.cache
def run_id_at(hour: int) -> str:
    """A run id as a run started at that hour gets it (its random suffix drawn once)."""
    return new_run_id(datetime(2026, 1, 5, hour, tzinfo=UTC))


def publish(config: PipelineConfig, run_id: str, sha256: str = DATA_SHA256, **recorded) -> str:
    """Publishes a one-file run as the flow does; `recorded` overrides what its manifest records."""
    local = Path(config.storage.work_dir) / run_id
    local.mkdir(parents=True)
    (local / layout.REPORT_NAME).write_text("# a run\n")
    source = SourceInfo(kind="npz", uri="file:///imdb.npz", local_path="/imdb.npz", sha256=sha256, description="npz")
    dataset = DatasetInfo(key=f"data-{sha256[:4]}", uri="file:///data", split_uris={}, rows={}, metadata={})
    run = publishing.RunContext(run_id=run_id, run_dir=local, config=config, source=source, dataset=dataset)
    destination = layout.run_uri(config.storage.root, run_id)
    details = {key: value for key, value in {**publishing.run_details(run), **recorded}.items() if value is not None}
    publishing.publish_run(local, destination, details)
    return destination


def test_the_same_data_code_and_config_name_the_latest_published_run(config):
    uri = publish(config, run_id_at(3))
    # Options that only say how or where a run works do not make it another run.
    steering = config.model_copy(
        update={
            "skip_unchanged": True,
            "refresh": True,
            "dask_address": "tcp://scheduler:8786",
            "storage": StorageConfig(root=config.storage.root, work_dir="elsewhere"),
        }
    )
    same = find_unchanged(steering, DATA_SHA256)
    assert same == UnchangedRun(run_id=run_id_at(3), run_uri=uri, dataset_key="data-aaaa")
    assert same.message == f"unchanged: same data set data-aaaa as run {run_id_at(3)}"


def test_changed_data_config_or_code_is_no_match(config, caplog):
    publish(config, run_id_at(3))
    caplog.set_level(logging.INFO, logger="tasks")
    assert find_unchanged(config, "b" * 64) is None
    assert find_unchanged(config.model_copy(update={"seed": 8}), DATA_SHA256) is None
    assert "changed since run" in caplog.text and "data" in caplog.text and "config" in caplog.text
    publish(config, run_id_at(4), code_fingerprint="0" * 12)  # written by other code
    assert find_unchanged(config, DATA_SHA256) is None
    assert caplog.records[-1].getMessage() == f"changed since run {run_id_at(4)}: code"


def test_a_manifest_without_fingerprints_never_matches(config, caplog):
    publish(config, run_id_at(3), config_fingerprint=None, code_fingerprint=None)  # as written before they existed
    caplog.set_level(logging.INFO, logger="tasks")
    assert find_unchanged(config, DATA_SHA256) is None
    assert caplog.records[-1].getMessage().endswith("code (not recorded), config (not recorded)")


def test_only_the_newest_complete_run_counts(config):
    publish(config, run_id_at(3))
    interrupted = Path(layout.run_uri(config.storage.root, run_id_at(5)))  # a publish that never wrote its manifest
    interrupted.mkdir(parents=True)
    (interrupted / layout.REPORT_NAME).write_text("# half a run\n")
    assert find_unchanged(config, DATA_SHA256).run_id == run_id_at(3)
    newer = publish(config, run_id_at(4))
    assert find_unchanged(config, DATA_SHA256).run_uri == newer
    publish(config.model_copy(update={"seed": 8}), run_id_at(6))  # an older run matching is no longer enough
    assert find_unchanged(config, DATA_SHA256) is None


def test_no_published_run_is_no_match(config):
    assert find_unchanged(config, DATA_SHA256) is None


@pytest.mark.parametrize("manifest", ["{not json", '{"run_id": "r"}', "[]"], ids=["not-json", "no-fields", "a-list"])
def test_an_unreadable_manifest_is_no_match_and_says_why(config, manifest, caplog):
    publish(config, run_id_at(3))
    broken = Path(layout.run_uri(config.storage.root, run_id_at(4)))
    broken.mkdir(parents=True)
    (broken / layout.MANIFEST_NAME).write_text(manifest)
    assert find_unchanged(config, DATA_SHA256) is None
    assert "is not a readable manifest" in caplog.text and str(broken) in caplog.text
