"""The storage layer and publishing of runs (local paths and file:// URIs here)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.errors import ObjectExists, StorageError
from tasks.registry import publishing
from tasks.storage import fs, layout


def test_write_and_read_through_paths_and_file_uris(tmp_path):
    for root in (str(tmp_path / "plain"), (tmp_path / "uri").as_uri()):
        uri = fs.join(root, "a", "b.json")
        fs.write_json(uri, {"x": 1})
        assert fs.read_json(uri) == {"x": 1}
        assert fs.exists(uri)
        assert fs.sha256_of(uri) == hashlib.sha256(fs.read_bytes(uri)).hexdigest()
    assert sorted(p.name for p in (tmp_path / "plain" / "a").iterdir()) == ["b.json"]  # no temporary left


def test_unwritable_storage_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=f"storage {blocker}/runs is not writable"):
        fs.ensure_writable(str(blocker / "runs"))
    with pytest.raises(StorageError, match="cannot write"):
        fs.write_bytes(str(blocker / "x.bin"), b"1")


def test_reading_a_missing_object_names_it(tmp_path):
    with pytest.raises(StorageError, match=re.escape("absent.json does not exist")):
        fs.read_json(str(tmp_path / "absent.json"))


def test_run_ids_sort_by_time_and_are_unique():
    ids = {fs.new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id) for run_id in ids)
    # Later runs sort after earlier ones, across a second, a day, a month and a year, whatever their suffixes.
    moments = ["2026-12-31T23:59:58", "2026-12-31T23:59:59", "2027-01-01T00:00:00", "2027-01-01T00:00:10", "2027-01-02"]
    for _ in range(20):  # new random suffixes each time
        in_time_order = [fs.new_run_id(datetime.fromisoformat(moment).replace(tzinfo=UTC)) for moment in moments]
        assert sorted(in_time_order) == in_time_order


def test_publish_writes_every_file_then_a_verifiable_manifest(tmp_path, caplog):
    local = tmp_path / "local"
    (local / "onehot").mkdir(parents=True)
    (local / "onehot" / "model.keras").write_bytes(b"weights")
    (local / "report.md").write_text("# report")
    destination = str(tmp_path / "store" / "runs" / "r1")
    with caplog.at_level(logging.INFO, logger="tasks.registry.publishing"):
        manifest = publishing.publish_run(local, destination, {"run_id": "r1"})
    assert [entry["path"] for entry in manifest["files"]] == ["onehot/model.keras", "report.md"]
    # distinct lines: after a flow test, Prefect's run logging hands tasks.* records to the capture twice
    progress = list(dict.fromkeys(record.getMessage() for record in caplog.records if "%" in record.getMessage()))
    assert progress[0].startswith("published onehot/model.keras (7 bytes") and "47 % of" in progress[0]
    assert progress[1].startswith("published report.md (8 bytes") and "100 % of" in progress[1]
    stored = json.loads((tmp_path / "store" / "runs" / "r1" / "manifest.json").read_text())
    assert stored == manifest and stored["run_id"] == "r1"
    assert publishing.verify_run(destination) == []
    (tmp_path / "store" / "runs" / "r1" / "report.md").write_text("# changed")
    assert publishing.verify_run(destination) == ["report.md: sha256 differs from the manifest"]
    with pytest.raises(StorageError, match="already exists; a run prefix is published once"):
        publishing.publish_run(local, destination, {})


def test_a_run_without_manifest_is_incomplete(tmp_path):
    assert publishing.verify_run(str(tmp_path)) == [f"{tmp_path}/manifest.json is missing: the run is incomplete"]


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/hostname", "a/../../outside.txt", "./report.md", "a//b", ""])
def test_a_manifest_path_outside_the_run_is_refused_and_never_read(tmp_path, path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the run's")
    run = tmp_path / "runs" / "r1"
    (run / "a").mkdir(parents=True)
    (run / "report.md").write_text("report")
    entry = {"path": path, "sha256": hashlib.sha256(b"not the run's").hexdigest(), "bytes": 13}
    (run / "manifest.json").write_text(json.dumps({"files": [entry]}))
    assert publishing.verify_run(str(run)) == [f"{path!r}: not a path inside the run, refused"]


def test_create_only_writes_refuse_an_existing_object(tmp_path):
    uri = str(tmp_path / "once.bin")
    assert fs.write_verified(uri, b"first", create_only=True) == hashlib.sha256(b"first").hexdigest()
    with pytest.raises(ObjectExists, match=re.escape("once.bin already exists")):
        fs.write_bytes(uri, b"second", create_only=True)
    assert fs.read_bytes(uri) == b"first"
    fs.write_bytes(uri, b"third")  # a plain write replaces it, atomically
    assert fs.read_bytes(uri) == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.bin"]


def test_the_layout_under_a_root_is_the_one_published_runs_already_have():
    root = "s3://bucket/imdb/"
    assert layout.dataset_uri(root, "k1") + "/" + layout.split_name("test") == "s3://bucket/imdb/data/k1/test.parquet"
    assert layout.run_uri(root, "r1") == "s3://bucket/imdb/runs/r1"
    assert layout.variant_file("onehot", layout.MODEL_NAME) == "onehot/model.keras"
    assert layout.champion_uri(root) == "s3://bucket/imdb/champion.json"
    assert layout.history_uri(root) == "s3://bucket/imdb/champion-history"
    assert layout.decision_uri(root, "r1") == "s3://bucket/imdb/champion-decisions/r1.json"
    assert layout.predictions_uri(root, "b1") == "s3://bucket/imdb/predictions/b1"
    assert layout.prefect_cache_uri(root) == "s3://bucket/imdb/cache/prefect"
    assert layout.training_cache_uri(root, "key", "embedding") == "s3://bucket/imdb/cache/training/key/embedding"
    assert (layout.MANIFEST_NAME, layout.VOCABULARY_NAME, layout.CHECKS_NAME) == (
        "manifest.json",
        "vocabulary.json",
        "data_checks.json",
    )


def test_a_moved_file_is_renamed_on_one_filesystem_and_copied_across_two(tmp_path):
    source = tmp_path / "scratch" / "train.parquet"
    source.parent.mkdir()
    source.write_bytes(b"split")
    inode = source.stat().st_ino
    target = tmp_path / "store" / "data" / "train.parquet"
    fs.move_file(source, str(target))
    assert target.read_bytes() == b"split" and target.stat().st_ino == inode  # renamed, not copied
    assert not source.exists()
    elsewhere = Path("/dev/shm")
    if not elsewhere.is_dir() or elsewhere.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to move across")
    with tempfile.NamedTemporaryFile(dir=elsewhere, delete=False) as handle:
        handle.write(b"other")
    fs.move_file(handle.name, str(target))
    assert target.read_bytes() == b"other" and not os.path.exists(handle.name)
