"""The data passes on a Dask cluster (--dask-address): one's own files read, counted, encoded and
described file by file on the workers must give the plan, the Parquet files (byte for byte) and the
profile that the same passes give on this machine; on a distributed.LocalCluster and on real
`dask scheduler` / `dask worker` processes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.config import DataConfig
from tasks.data import prepare
from tasks.data.sources import resolve_source
from tests.helpers import review_texts

pytestmark = pytest.mark.e2e

FILES = 4  # pieces: more than workers, so some worker encodes two


def write_snapshots(prefix: Path) -> str:
    """Four files of generated reviews in two snapshots, a few repeated across files (duplicates)."""
    texts, labels = review_texts(800, seed=11)
    for index in range(FILES):
        rows = slice(index * 200, index * 200 + 220)  # 20 rows repeated in the next file
        folder = prefix / f"2026-12-0{1 + index // 2}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({"text": texts[rows], "label": labels[rows].astype("int8")})
        pq.write_table(table, folder / f"part-{index}.parquet")
    return str(prefix)


def stored(source: str, root: Path, dask_address: str | None) -> tuple[dict, dict, dict]:
    """The plan's row counts and file checksums, each split file's sha256, and the profile."""
    config = DataConfig(source=source, num_words=60, maxlen=20)
    resolved = resolve_source(config)
    plan = prepare.split_resolved(resolved, config, 3, str(root), dask_address)
    dataset = prepare.store_splits(plan, resolved, config, 3, str(root), dask_address)
    files = {name: hashlib.sha256(Path(uri).read_bytes()).hexdigest() for name, uri in dataset.split_uris.items()}
    planned = {
        "rows": plan.rows,
        "pieces": plan.piece_rows,
        "assignment": plan.assignment_sha256,
        "words": plan.word_index_sha256,
        "ingest": plan.ingest,
    }
    return planned, files, json.loads(Path(str(dataset.profile_uri)).read_text())


def assert_same_as_here(source: str, tmp_path: Path, dask_address: str) -> None:
    here = stored(source, tmp_path / "here", None)
    there = stored(source, tmp_path / "there", dask_address)
    assert here[0]["pieces"] == [220, 220, 220, 200] and here[0]["ingest"]["duplicates_dropped"] == 60
    assert there == here
    assert not list((tmp_path / "there" / "cache" / "splits").glob("*/parts/*")), "part files are removed"


def test_a_local_cluster_gives_the_plan_files_and_profile_of_this_machine(tmp_path):
    from distributed import LocalCluster

    source = write_snapshots(tmp_path / "reviews")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        assert_same_as_here(source, tmp_path, cluster.scheduler_address)


def test_scheduler_and_worker_processes_give_the_plan_files_and_profile_of_this_machine(dask_processes, tmp_path):
    source = write_snapshots(tmp_path / "reviews")
    cluster = dask_processes()
    assert_same_as_here(source, tmp_path, cluster.address)
