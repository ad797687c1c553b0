"""Which snapshots of a prefix are new: judged against runs published by the real publishing code on a
temporary storage root (their manifests record what they read), without Prefect."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import PipelineConfig
from tasks.data import sources
from tasks.data.store import DatasetInfo
from tasks.data.watch import describe, find_new_snapshots
from tasks.registry.publishing import RunContext, publish_run, run_details
from tasks.storage import fs
from tasks.storage.layout import run_uri


def write_snapshot(prefix: Path, name: str, rows: int = 2, start: int = 0) -> Path:
    folder = prefix / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"review number {start + row},{row % 2}" for row in range(rows)]
    (folder / "reviews.csv").write_text("text,label\n" + "\n".join(lines) + "\n")
    return folder


def publish_trained_run(store: str | Path, source: str, window: str, run_id: str, tmp_path: Path) -> None:
    """A run published as the pipeline publishes one, having read `source` through `window`."""
    local = tmp_path / f"work-{run_id}"
    local.mkdir()
    (local / "report.md").write_text("# a run\n")
    context = RunContext(
        run_id=run_id,
        run_dir=local,
        config=PipelineConfig.model_validate({"data": {"source": source, "window": window}}),
        source=sources.reviews_source(source, window),
        dataset=DatasetInfo(key="k", uri="u", split_uris={}, rows={}, metadata={}),
    )
    publish_run(local, run_uri(str(store), run_id), run_details(context))


@pytest.fixture
def prefix(tmp_path) -> Path:
    folder = tmp_path / "reviews"
    write_snapshot(folder, "date=2026-12-01", start=0)
    write_snapshot(folder, "date=2026-12-02", start=10)
    return folder


def test_every_snapshot_is_new_while_no_run_is_published(prefix, tmp_path):
    result = find_new_snapshots(str(prefix), str(tmp_path / "store"))
    assert result.watched and result.new == result.snapshots == ["date=2026-12-01", "date=2026-12-02"]
    assert describe(result).endswith("2 of 2 snapshot(s) not trained on yet: date=2026-12-01, date=2026-12-02")


def test_a_run_that_read_every_snapshot_leaves_none_new(prefix, tmp_path):
    store = tmp_path / "store"
    publish_trained_run(store, str(prefix), "all", "run-1", tmp_path)
    result = find_new_snapshots(str(prefix), str(store))
    assert result.new == [] and len(result.snapshots) == 2
    assert "every one trained on" in describe(result)


def test_only_the_snapshots_a_run_read_count_and_a_later_one_is_new(prefix, tmp_path):
    store = tmp_path / "store"
    publish_trained_run(store, str(prefix), "latest", "run-1", tmp_path)
    assert find_new_snapshots(str(prefix), str(store)).new == ["date=2026-12-01"]
    write_snapshot(prefix, "date=2026-12-03", start=20)
    assert find_new_snapshots(str(prefix), str(store)).new == ["date=2026-12-01", "date=2026-12-03"]


def test_a_run_on_the_snapshot_folder_itself_counts_as_training_on_it(prefix, tmp_path):
    store = tmp_path / "store"
    publish_trained_run(store, str(prefix / "date=2026-12-02"), "all", "run-1", tmp_path)
    assert find_new_snapshots(str(prefix), str(store)).new == ["date=2026-12-01"]


def test_a_snapshot_whose_files_changed_or_grew_counts_as_new(prefix, tmp_path):
    store = tmp_path / "store"
    publish_trained_run(store, str(prefix), "all", "run-1", tmp_path)
    changed = prefix / "date=2026-12-01" / "reviews.csv"
    changed.write_text(changed.read_text().replace("review number 0", "review number zero"))
    (prefix / "date=2026-12-02" / "more.csv").write_text("text,label\nanother one,1\n")
    assert find_new_snapshots(str(prefix), str(store)).new == ["date=2026-12-01", "date=2026-12-02"]


def test_an_incomplete_run_or_an_unreadable_manifest_trained_on_nothing(prefix, tmp_path):
    store = tmp_path / "store"
    publish_trained_run(store, str(prefix), "all", "run-1", tmp_path)
    (store / "runs" / "run-1" / "manifest.json").rename(store / "runs" / "run-1" / "report-copy.json")
    assert len(find_new_snapshots(str(prefix), str(store)).new) == 2
    (store / "runs" / "run-1" / "manifest.json").write_text("{not json")
    assert len(find_new_snapshots(str(prefix), str(store)).new) == 2


@pytest.mark.parametrize("source", ["auto", "keras", "offline", "missing", "https://host/imdb.npz", "data/imdb.npz"])
def test_a_source_that_is_not_a_folder_of_own_reviews_is_nothing_to_watch(source, tmp_path):
    result = find_new_snapshots(str(tmp_path / source) if source == "missing" else source, str(tmp_path))
    assert not result.watched and result.new == [] and "not a folder of own reviews" in (result.reason or "")
    assert describe(result).startswith("nothing to watch: ")


def test_an_empty_prefix_is_nothing_to_watch_yet(tmp_path):
    (tmp_path / "reviews").mkdir()
    result = find_new_snapshots(str(tmp_path / "reviews"), str(tmp_path / "store"))
    assert not result.watched and "no data files" in (result.reason or "")


def test_uris_are_shown_without_credentials():
    assert (
        fs.without_credentials("s3://KEY:SECRET@bucket/reviews/?X-Amz-Signature=abc#x")
        == "s3://***@bucket/reviews/?X-Amz-Signature=***#***"
    )
    assert fs.without_credentials("https://user:pw@host:8443/a.csv?token=t") == "https://***@host:8443/a.csv?token=***"
    assert fs.without_credentials("s3://bucket/reviews/") == "s3://bucket/reviews/"
    assert fs.without_credentials("/data/reviews/") == "/data/reviews/"
    assert fs.without_credentials("file:///data/reviews") == "file:///data/reviews"
