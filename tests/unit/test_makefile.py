"""The Makefile's variables reach the commands as data: a path holding a quote, `;` or `$(...)` is
passed as that path, never run by the shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def make(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("target", "variable", "echoed"),
    [("verify", "RUN", True), ("reproduce", "RUN", True), ("runs", "STORAGE", True), ("rollback", "STORAGE", False)],
)
def test_a_hostile_path_is_passed_as_a_path_and_never_run(tmp_path, target, variable, echoed):
    marker = tmp_path / "ran"
    hostile = f'{tmp_path}/x"; touch "{marker}"; echo "`touch {marker}`'
    completed = make(target, f"{variable}={hostile}")
    assert not marker.exists(), completed.stdout + completed.stderr
    if echoed:  # the command names the path it was given, whole
        assert hostile in completed.stdout + completed.stderr
