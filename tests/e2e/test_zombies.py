"""A run whose process is killed outright (SIGKILL) is marked Crashed by Prefect once its
heartbeats stop: a test of its own file, since it waits out the heartbeat window (the tests'
shortest, 60 s)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.test_unattended import start_pipeline
from tests.helpers import small_run_options, wait_for_text

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_run_killed_outright_is_marked_crashed_by_prefect_once_its_heartbeats_stop(imdb_npz, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    from tasks.runtime.heartbeats import AUTOMATION_NAME, HEARTBEAT_SECONDS, crash_window_seconds

    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1000", "--patience", "1000"
    )
    log_path = tmp_path / "run.log"
    process = start_pipeline(options, log_path)
    wait_for_text(process, log_path, "embedding epoch 2/1000")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        assert client.read_automations_by_name(AUTOMATION_NAME)  # the run made sure it exists
    os.killpg(process.pid, signal.SIGKILL)  # no handler runs: nothing reports the end
    process.wait()
    killed = time.monotonic()
    assert flow_run.state.name == "Running"
    window = crash_window_seconds()
    with get_client(sync_client=True) as client:
        while (state := client.read_flow_run(flow_run.id).state).name == "Running":
            assert time.monotonic() - killed < window + 2 * HEARTBEAT_SECONDS + 30, "still Running"
            time.sleep(2)
    assert state.name == "Crashed" and f"no heartbeat for {window} s" in state.message
    print(f"SIGKILL: the flow run was marked Crashed {time.monotonic() - killed:.0f} s after the kill")
