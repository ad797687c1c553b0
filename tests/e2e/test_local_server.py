"""The temporary Prefect server of a command-line run without PREFECT_API_URL: it serves the run
and never outlives it, whether the run ends, fails, or is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO_ROOT, prefect_home, small_run_options, wait_for_text


def processes_with_home(home: Path) -> list[int]:
    """Live processes whose environment holds PREFECT_HOME=home: the run, its server, its trainings."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") and b"Z" not in _state(entry):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def _state(entry: Path) -> bytes:
    return (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]


def wait_until_gone(home: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with_home(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def cli_environment(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_a_run_without_a_configured_server_completes_on_its_own_server_which_ends_with_it(imdb_npz, tmp_path):
    home = tmp_path / "prefect-home"  # no database yet: the cold start of a first run, migrations and all
    completed = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", *small_run_options(str(imdb_npz), tmp_path)],
        cwd=REPO_ROOT,
        env=cli_environment(home),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.splitlines()[-1].startswith("run: ")
    assert "Error logging to API" not in completed.stderr  # its logs reached the server before it stopped
    assert (home / "prefect.db").exists()  # the server kept its state in the run's PREFECT_HOME
    assert wait_until_gone(home, 10) == []


def test_a_killed_run_takes_its_server_and_trainings_with_it(imdb_npz, tmp_path, migrated_prefect_database):
    home, log = prefect_home(tmp_path, migrated_prefect_database), tmp_path / "run.log"
    options = small_run_options(str(imdb_npz), tmp_path, "--max-epochs", "400", "--patience", "400")
    with log.open("w") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "flows.imdb_pipeline", *options],
            cwd=REPO_ROOT,
            env=cli_environment(home),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_text(run, log, "epoch 2/400", 300)  # the server is up and both trainings are running
            assert len(processes_with_home(home)) >= 4  # the run, its server, two trainings
            run.send_signal(signal.SIGKILL)
            run.wait(30)
        finally:
            if run.poll() is None:
                run.kill()
    assert wait_until_gone(home, 15) == []
