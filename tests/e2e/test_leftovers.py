"""`make runs ARGS="--clean --older-than AGE"` lists, and with `--yes` removes, what interrupted runs
left behind: incomplete run prefixes (local and on a real S3 server) and stale scratch; a complete
run and anything younger than the age are never touched."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.registry import publishing
from tasks.storage import fs, layout
from tools.verify import main as verify_main

HOUR = 3600


def run_id(hours_ago: float, suffix: str) -> str:
    return fs.new_run_id(datetime.now(UTC) - timedelta(hours=hours_ago))[:-6] + suffix


def publish_complete_run(root: str, run: str, tmp_path: Path) -> str:
    local = tmp_path / run
    (local / "embedding").mkdir(parents=True)
    (local / "embedding" / "model.keras").write_bytes(b"weights")
    (local / "report.md").write_text("# report")
    publishing.publish_run(local, layout.run_uri(root, run), {"run_id": run})
    return layout.run_uri(root, run)


def publish_half_run(root: str, run: str) -> str:
    """A run whose publish stopped after one file: no manifest."""
    fs.write_verified(fs.join(layout.run_uri(root, run), "embedding", "model.keras"), b"weights")
    return layout.run_uri(root, run)


def scratch(folder: Path, hours_ago: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "progress.jsonl").write_text("{}\n")
    stamp = time.time() - hours_ago * HOUR
    for path in (folder / "progress.jsonl", folder):
        os.utime(path, (stamp, stamp))
    return folder


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_prefix")


def test_clean_removes_only_old_leftovers_and_never_a_complete_run(storage_root, tmp_path, capsys):
    complete = publish_complete_run(storage_root, run_id(50, "aaaaaa"), tmp_path)
    old_half = publish_half_run(storage_root, run_id(3, "bbbbbb"))
    young_half = publish_half_run(storage_root, run_id(0.2, "cccccc"))  # may still be publishing
    work = tmp_path / "work"
    old_scratch = [scratch(work / run_id(5, "dddddd"), 5), scratch(work / "training" / "train-key-1234abcd", 4)]
    young_scratch = scratch(work / "training" / "train-key-5678abcd", 0.1)
    clean = ["--all", storage_root, "--clean", "--older-than", "2h", "--work-dir", str(work)]

    assert verify_main(clean) == 0  # a dry run by default
    out = capsys.readouterr().out
    assert f"would remove: incomplete run {old_half} (3.0 h old)" in out
    assert all(f"would remove: scratch {folder} " in out for folder in old_scratch)
    assert complete not in out and young_half not in out and str(young_scratch) not in out
    assert "dry run: nothing was removed; add --yes to remove these" in out
    assert fs.exists(old_half) and all(folder.exists() for folder in old_scratch)

    assert verify_main([*clean, "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"removed: incomplete run {old_half} (3.0 h old)" in out
    assert not fs.exists(old_half) and not any(folder.exists() for folder in old_scratch)
    assert [run["uri"] for run in publishing.list_runs(storage_root)] == [complete, young_half]
    assert publishing.verify_run(complete) == [] and young_scratch.exists()

    assert verify_main(clean) == 0
    assert "no leftovers older than 2 h" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--clean"], "--clean needs --all STORAGE_ROOT and --older-than AGE"),
        (["--clean", "--older-than", "2 hours"], "invalid parse_age value: '2 hours'"),
        (["--yes"], "--yes and --older-than only go with --clean"),
    ],
)
def test_clean_without_an_age_or_yes_without_clean_is_refused(argv, words, tmp_path, capsys):
    (tmp_path / "runs" / run_id(5, "eeeeee")).mkdir(parents=True)
    with pytest.raises(SystemExit) as stopped:
        verify_main(["--all", str(tmp_path), *argv])
    assert stopped.value.code == 2 and words in capsys.readouterr().err
    assert (tmp_path / "runs").exists() and list((tmp_path / "runs").iterdir())
