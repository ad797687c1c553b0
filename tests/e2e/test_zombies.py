"""A run killed outright (SIGKILL) is marked Crashed by Prefect once its heartbeats stop, and
another team's flow on the same server whose heartbeats stop too is left alone: a test of its own
file, since it waits out the heartbeat window (the tests' shortest, 60 s)."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest

from tests.e2e.test_unattended import start_pipeline
from tests.helpers import named_events, small_run_options, wait_for_text

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

OTHER_FLOW = "another-teams-report"
# Another project's flow on the same server: it sends heartbeats (as the session's environment
# asks every flow to) and runs until it is killed.
OTHER_FLOW_CODE = f"""
import time
from prefect import flow

@flow(name="{OTHER_FLOW}")
def another_teams_report():
    print("other flow running", flush=True)
    time.sleep(900)

another_teams_report()
"""


def latest_run_of(client, flow_name: str):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    flow_filter = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    return client.read_flow_runs(flow_filter=flow_filter, sort=FlowRunSort.START_TIME_DESC, limit=1)[0]


def replace_automation_with_one_for_every_flow(client) -> None:
    """What servers had before the automation was scoped to this project: the run must replace it."""
    from tasks.runtime.heartbeats import AUTOMATION_NAME, zombie_automation

    for existing in client.read_automations_by_name(AUTOMATION_NAME):
        client.delete_automation(existing.id)
    every_flow = zombie_automation()
    every_flow.trigger.match_related = []
    client.create_automation(every_flow)


def test_a_run_killed_outright_is_crashed_once_its_heartbeats_stop_and_another_teams_flow_is_left_alone(
    imdb_npz, tmp_path
):
    from prefect import get_client

    from tasks.runtime.heartbeats import AUTOMATION_NAME, HEARTBEAT_SECONDS, crash_window_seconds, zombie_automation

    with get_client(sync_client=True) as client:
        replace_automation_with_one_for_every_flow(client)
    other_log = tmp_path / "other.log"
    other = start_pipeline([], other_log, code=OTHER_FLOW_CODE)
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1000", "--patience", "1000"
    )
    log_path = tmp_path / "run.log"
    process = start_pipeline(options, log_path)
    wait_for_text(other, other_log, "other flow running")
    wait_for_text(process, log_path, "embedding epoch 2/1000")
    with get_client(sync_client=True) as client:
        flow_run = latest_run_of(client, "imdb-rnn-pipeline")
        other_run = latest_run_of(client, OTHER_FLOW)
        (automation,) = client.read_automations_by_name(AUTOMATION_NAME)  # the run replaced the wide one
        assert automation.trigger.match_related == zombie_automation().trigger.match_related
        # The automation watches a run from its first heartbeat after the automation was created:
        # both runs must have sent one since, or neither would be crashed whatever its scope.
        replaced = datetime.now(UTC)
        for run in (flow_run, other_run):
            assert named_events(
                client,
                "prefect.flow-run.heartbeat",
                lambda event, run=run: event.resource.id == f"prefect.flow-run.{run.id}" and event.occurred > replaced,
                timeout=2 * HEARTBEAT_SECONDS + 15,
            ), f"no heartbeat from {run.name} since the automation was replaced: nothing would be tested"
    for each in (process, other):
        os.killpg(each.pid, signal.SIGKILL)  # no handler runs: nothing reports the end
        each.wait()
    killed = time.monotonic()
    assert flow_run.state.name == other_run.state.name == "Running"
    window = crash_window_seconds()
    # Both sent their last heartbeat before the kill: an automation that covered the other flow
    # would have crashed it by now too.
    settled = killed + window + HEARTBEAT_SECONDS
    with get_client(sync_client=True) as client:
        while (state := client.read_flow_run(flow_run.id).state).name == "Running" or time.monotonic() < settled:
            assert time.monotonic() - killed < window + 2 * HEARTBEAT_SECONDS + 30, f"still {state.name}"
            time.sleep(2)
        other_state = client.read_flow_run(other_run.id).state
    assert state.name == "Crashed" and f"no heartbeat for {window} s" in state.message
    assert other_state.name == "Running", f"another team's flow was marked {other_state.name}: {other_state.message}"
    print(f"SIGKILL: the run was marked Crashed within {time.monotonic() - killed:.0f} s; the other flow stays Running")
