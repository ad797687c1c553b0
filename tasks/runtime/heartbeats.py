"""Flow runs whose process died without a word (SIGKILL, an out-of-memory kill, a lost machine) are
marked Crashed by Prefect itself: every run sends a heartbeat event every HEARTBEAT_SECONDS
(PREFECT_FLOWS_HEARTBEAT_FREQUENCY, set by `environment.set_prefect_defaults`), and a proactive
automation crashes a flow run that has sent one but then, within its window (MISSED_HEARTBEATS
periods, 90 s, unless $IMDB_CRASH_WINDOW_SECONDS says otherwise), neither another nor a final state.

`python -m tasks.runtime.heartbeats` creates the automation on the configured server (`make
deploy` does); every run also makes sure it exists when it starts.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from prefect import Flow, State, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from tasks.errors import PipelineError
from tasks.runtime.environment import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)

AUTOMATION_NAME = "imdb-rnn-pipeline: crash flow runs without heartbeats"
# Three missed heartbeats: one late event (a busy server, a long garbage collection) is not a death.
MISSED_HEARTBEATS = 3
FINAL_STATES = ("Completed", "Failed", "Cancelled", "Crashed")
WINDOW_VARIABLE = "IMDB_CRASH_WINDOW_SECONDS"
# A shorter window would crash live runs whose one heartbeat arrived a little late: two periods
# still forgive one missed heartbeat (Prefect sends none more often than every 30 s).
MIN_WINDOW_SECONDS = 2 * HEARTBEAT_SECONDS


def crash_window_seconds() -> int:
    """The seconds without a heartbeat after which a flow run is crashed: $IMDB_CRASH_WINDOW_SECONDS,
    else MISSED_HEARTBEATS periods; refuses a window under MIN_WINDOW_SECONDS."""
    text = os.environ.get(WINDOW_VARIABLE, "").strip()
    if not text:
        return HEARTBEAT_SECONDS * MISSED_HEARTBEATS
    try:
        window = int(text)
    except ValueError:
        raise PipelineError(f"{WINDOW_VARIABLE}={text!r} is not a whole number of seconds") from None
    if window < MIN_WINDOW_SECONDS:
        raise PipelineError(
            f"{WINDOW_VARIABLE}={window} is shorter than {MIN_WINDOW_SECONDS} s: live runs would be crashed "
            f"between their heartbeats (one every {HEARTBEAT_SECONDS} s)"
        )
    return window


def zombie_automation() -> AutomationCore:
    """Prefect's recipe for zombie flow runs: no heartbeat or final state within the window after a heartbeat."""
    window = crash_window_seconds()
    return AutomationCore(
        name=AUTOMATION_NAME,
        description="A flow run that stopped sending heartbeats has lost its process: mark it Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{state}" for state in FINAL_STATES)},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=window),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {window} s: its process died",
            )
        ],
    )


def ensure_zombie_automation() -> bool:
    """Creates the automation unless the server has it; True when it was created now."""
    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(AUTOMATION_NAME):
            return False
        client.create_automation(zombie_automation())
    log.info("created the automation %r", AUTOMATION_NAME)
    return True


def ensure_zombie_automation_hook(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """An on_running hook: a run is covered even on a server nobody ran `make deploy` against."""
    ensure_zombie_automation()


if __name__ == "__main__":
    print("created" if ensure_zombie_automation() else "exists", AUTOMATION_NAME)
