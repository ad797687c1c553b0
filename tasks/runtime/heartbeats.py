"""Flow runs whose process died without a word (SIGKILL, an out-of-memory kill, a lost machine) are
marked Crashed by Prefect itself: every run sends a heartbeat event every HEARTBEAT_SECONDS
(PREFECT_FLOWS_HEARTBEAT_FREQUENCY, set by `environment.set_prefect_defaults`), and a proactive
automation crashes a flow run that has sent one but then, within its window (MISSED_HEARTBEATS
periods, 90 s, unless $IMDB_CRASH_WINDOW_SECONDS says otherwise), neither another nor a final state.
It covers only this project's flows (PROJECT_FLOWS, matched by the flow each event names): another
team's flows on the same server, which may beat less often or not at all, are left alone.

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
# The flows whose runs the automation may crash (tests/unit/test_environment.py checks that they are
# the flows of flows/). Each heartbeat and state event names its flow as a related resource.
PROJECT_FLOWS = ("imdb-rnn-pipeline", "imdb-batch-scoring", "imdb-data-watch")
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
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(PROJECT_FLOWS)},
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
    """Creates the automation unless the server has it; one that watches other events or flows
    than `zombie_automation` (an earlier definition, such as one that covered every flow on the
    server) is replaced. Its window is kept: whoever created it chose it. True when it was created
    or replaced now."""
    wanted = zombie_automation()
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION_NAME)
        if any(_watches_the_same(each, wanted) for each in existing):
            return False
        for each in existing:
            client.delete_automation(each.id)
        client.create_automation(wanted)
    log.info("%s the automation %r", "replaced" if existing else "created", AUTOMATION_NAME)
    return True


def _watches_the_same(existing: AutomationCore, wanted: AutomationCore) -> bool:
    """The same trigger but for its window, and the same state set."""
    return existing.trigger.model_dump(exclude={"within"}) == wanted.trigger.model_dump(exclude={"within"}) and [
        getattr(action, "state", None) for action in existing.actions
    ] == [getattr(action, "state", None) for action in wanted.actions]


def ensure_zombie_automation_hook(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """An on_running hook: a run is covered even on a server nobody ran `make deploy` against."""
    ensure_zombie_automation()


if __name__ == "__main__":
    print("created" if ensure_zombie_automation() else "exists", AUTOMATION_NAME)
