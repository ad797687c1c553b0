"""What an interrupted run does: SIGTERM (a worker cancelling the run, a service manager stopping
it) and SIGINT (Ctrl+C) stop it within seconds, end its flow run as Crashed (Cancelled only when
Prefect's runner announced the cancel on its control channel first, which its process worker does
not), remove its scratch folder, and publish nothing.

Prefect turns SIGTERM into a TerminationSignal and SIGINT into a KeyboardInterrupt inside the
flow, and marks the flow run Crashed; once the flow has ended, it sends SIGTERM to the process
again for the handler installed before it, which `interruptible` provides so the command line
can end with one line instead of dying on the signal.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from uuid import UUID

from prefect import Flow, State
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal

# Scratch folders of the flow runs in this process, removed when their run is interrupted.
_scratch: dict[UUID, list[Path]] = {}


class RunInterrupted(BaseException):
    """The process received a stop signal (a BaseException, as KeyboardInterrupt is)."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.number = number


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM raises RunInterrupted in the main thread while this is active (SIGINT already
    raises KeyboardInterrupt); the previous handler is restored afterwards."""

    def raise_interrupted(number: int, frame: FrameType | None) -> None:
        raise RunInterrupted(number)

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruption_signal(error: BaseException) -> int | None:
    """The signal behind an exception that ended a run, or None when it was not an interruption."""
    if isinstance(error, RunInterrupted):
        return error.number
    if isinstance(error, TerminationSignal):
        return error.signal
    if isinstance(error, KeyboardInterrupt):
        return signal.SIGINT
    return None


_published: list[str] = []  # the run this process published, once its manifest is written


def note_published(run_uri: str) -> None:
    """Call once a run's manifest is written: an interruption after it must not say nothing was published."""
    _published.append(run_uri)


def describe_interruption(number: int) -> str:
    name = signal.Signals(number).name
    if _published:
        return (
            f"interrupted by {name} after run {_published[-1]} was published (its manifest is written and "
            "`make verify` checks it); promoting it may not have finished: `make champion` shows the champion"
        )
    return (
        f"interrupted by {name}: the run stopped and nothing was published; "
        "a rerun reuses every stage that had finished"
    )


def remove_scratch_when_interrupted(run_dir: Path) -> None:
    """Registers the current flow run's scratch folder for `remove_scratch` (call inside the flow)."""
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        _scratch.setdefault(context.flow_run.id, []).append(run_dir)


def remove_scratch(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """An on_crashed / on_cancellation hook: the interrupted run's scratch goes; nothing in it
    was published. (A failed run keeps it: its files may be published by hand.)"""
    for folder in _scratch.pop(flow_run.id, []):
        shutil.rmtree(folder, ignore_errors=True)
