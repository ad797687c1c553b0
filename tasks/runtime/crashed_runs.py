"""Flow runs of command-line runs that were killed outright (SIGKILL, the out-of-memory killer);
`python -m tasks.runtime.crashed_runs` (the first step of `make runs`) marks them by hand.

Such a run cannot report its end, and its temporary server dies with it, so Prefect's heartbeat
automation (tasks/runtime/heartbeats.py), which needs a living server, never sees it: the flow run
stays Running in the database of the run's own home (tasks/runtime/server_homes.py). The next
run, or `make runs`, finds such homes (unlocked, never ended), starts a server on each, sets every
flow run in it that has no final state Crashed through Prefect's client, as the automation would,
and says so on one line per flow run. The home is then ended like any other.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

from tasks.runtime.local_server import LocalServer
from tasks.runtime.server_homes import ENDED_NAME, LOCK_NAME, dead_homes

CRASH_MESSAGE = "its process was killed outright (SIGKILL, e.g. out of memory); found by a later run"
# States a flow run leaves only by running on: in a dead run's database, none of them ever will.
UNFINISHED_STATES = ("SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING")


def mark_crashed_runs(prefect_home: Path, startup_timeout: float) -> list[str]:
    """Marks the unfinished flow runs of every dead run's home under `prefect_home` Crashed; returns
    one line per flow run marked. A home another process is marking at the same time is left to it."""
    lines = []
    for home in dead_homes(prefect_home):
        with (home / LOCK_NAME).open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process marks it
            except BlockingIOError:
                continue
            if (home / ENDED_NAME).exists():  # another process marked it meanwhile
                continue
            try:
                marked = _mark_home(home, startup_timeout)
            except Exception as error:  # noqa: BLE001 - a damaged database must not stop the run that found it
                marked = [f"a run killed outright left records that could not be read ({error})"]
            lines += [f"{line}; its records: {home}" for line in marked]
            (home / ENDED_NAME).write_text("crashed\n")
    return lines


def _mark_home(home: Path, startup_timeout: float) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    server = LocalServer(startup_timeout, home)
    try:
        server.wait_until_ready()
        unfinished = FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(name) for name in UNFINISHED_STATES]))
        )
        with (
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            get_client(sync_client=True) as client,
        ):
            lines = []
            for flow_run in client.read_flow_runs(flow_run_filter=unfinished):
                client.set_flow_run_state(flow_run.id, Crashed(message=CRASH_MESSAGE), force=True)
                started = f"{flow_run.start_time:%Y-%m-%d %H:%M:%S %Z}" if flow_run.start_time else "never started"
                lines.append(f"flow run {flow_run.name!r} ({started}) was killed outright: marked Crashed")
            return lines
    finally:
        server.stop()


def main() -> int:
    """`make runs` first: marks the flow runs of runs killed outright Crashed, one `note:` line each."""
    from prefect.settings import get_current_settings

    from tasks.runtime.environment import reload_prefect_settings, set_prefect_defaults

    set_prefect_defaults()
    reload_prefect_settings()
    settings = get_current_settings()
    for line in mark_crashed_runs(Path(settings.home), settings.server.ephemeral.startup_timeout_seconds):
        print(f"note: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
