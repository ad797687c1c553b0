"""The Prefect server stopped and started again while a deployment run trains: the run goes on,
publishes a whole run and reads Completed on the restarted server, as docs/operations/failures.md
says (its own file, so it runs beside the other long deployment test)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tasks.registry import publishing
from tasks.runtime.heartbeats import WINDOW_VARIABLE
from tests.e2e.test_deployment_faults import (
    OUTAGE_SECONDS,
    deploy_and_trigger,
    restartable_server,  # noqa: F401 - a fixture this test uses
    start_worker,
)
from tests.helpers import server_client

pytestmark = pytest.mark.e2e


def test_the_server_restarting_mid_training_leaves_the_run_to_complete_and_publish_whole(
    restartable_server,  # noqa: F811 - the fixture imported above
    imdb_npz,
    tmp_path,
):
    server = restartable_server
    # The outage and the restart after it can outlast the tests' short crash window, and a run that
    # lives through them is no zombie: the automation that `make deploy` creates keeps its default.
    server.environment.pop(WINDOW_VARIABLE)
    flow_run = deploy_and_trigger(server, imdb_npz, tmp_path, max_epochs=150, patience=150)
    store, work = tmp_path / "store", tmp_path / "work"
    worker, worker_log = start_worker(server, tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not list(work.glob("training/*")):  # training has started
            assert worker.poll() is None and time.monotonic() < deadline, worker_log.read_text()[-3000:]
            time.sleep(0.5)
        server.stop()
        time.sleep(OUTAGE_SECONDS)
        server.start()
        worker.wait(timeout=600)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    log = worker_log.read_text()

    runs = publishing.list_runs(str(store))
    with server_client(server.environment) as client:
        deadline = time.monotonic() + 240  # a run whose process died unseen is crashed by the heartbeat automation
        while not (state := client.read_flow_run(flow_run.id).state).is_final():
            assert time.monotonic() < deadline, f"still {state.name} after the server came back:\n{log[-3000:]}"
            time.sleep(2)
    print(f"server outage of {OUTAGE_SECONDS} s mid-training: flow run {state.name} ({state.message}); runs {runs}")
    assert state.is_completed(), f"{state.name} ({state.message}):\n{log[-3000:]}"
    assert len(runs) == 1 and runs[0]["complete"] and publishing.verify_run(runs[0]["uri"]) == []
