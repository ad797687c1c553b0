"""SIGTERM to a run's whole process group, as systemd, `kill -- -PGID` or a closing terminal send it,
on a run with its own temporary Prefect server: the run reports its end to that server and exits
within seconds, leaving no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.test_unattended import alive, children_of, processes_where, wait_for_epochs
from tests.helpers import REPO_ROOT, prefect_home, small_run_options

pytestmark = pytest.mark.e2e

EXIT_BOUND_SECONDS = 45  # the hang it guards against waited over a minute on a server already gone


def test_sigterm_to_the_process_group_ends_a_run_with_its_temporary_server_promptly(
    imdb_npz, tmp_path, migrated_prefect_database
):
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--seeds", "2", "--max-epochs", "200", "--patience", "200"
    )
    environment = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL", "PREFECT_HOME")}
    home = prefect_home(tmp_path, migrated_prefect_database)
    environment |= {"PREFECT_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.imdb_pipeline", *options],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_epochs(process, tmp_path / "work", 2)
        before = processes_where(3, process.pid) | children_of(process.pid)  # the server has a session of its own
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=120)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    log = log_path.read_text()
    assert process.returncode == 128 + signal.SIGTERM, log[-3000:]
    assert took < EXIT_BOUND_SECONDS, f"{took:.0f} s from the signal to the exit\n{log[-3000:]}"
    assert log.strip().splitlines()[-1].startswith("error: interrupted by SIGTERM"), log[-3000:]
    assert "Unable to connect" not in log, log[-3000:]  # the server was there to report the end to
    assert not alive(before), "processes of the run outlived it"
