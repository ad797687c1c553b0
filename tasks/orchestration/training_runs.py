"""A training in a spawned child process, its epochs reaching the parent through a file.

Seeds trained side by side then neither share TensorFlow's global random state nor wait for each
other's Python. The parent supervises each child: it enforces `--training-timeout` by terminating
it, stops every child when the run is interrupted (SIGTERM, SIGINT), and a child dies with its
parent even when the parent is killed outright (SIGKILL), so none is ever orphaned.
"""

from __future__ import annotations

import ctypes
import functools
import json
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from tasks import training
from tasks.errors import PipelineError, TrainingTimedOut
from tasks.training import TrainedVariant, TrainingJob

# How often the parent forwards a child's epochs to the UI and checks its deadline.
CHILD_POLL_SECONDS = 0.2
# A child asked to stop (SIGTERM) holds no state worth saving; past this it is killed (SIGKILL).
STOP_GRACE_SECONDS = 3.0
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal the kernel sends a process when its parent dies
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_children: set[BaseProcess] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set once the run is interrupted: no new child starts


class TrainingStopped(BaseException):
    """A child's training was stopped because the run was interrupted (a BaseException, like the
    signal that caused it, so Prefect reports the task run as crashed, not failed)."""


def train_in_child_process(job: TrainingJob, scratch: Path, on_epoch: Callable[[dict], None]) -> TrainedVariant:
    """`train_with_restarts(job, scratch)` in a spawned process; each epoch reaches `on_epoch`.

    Raises TrainingTimedOut after `job.training.timeout_seconds` (the child is terminated first),
    TrainingStopped when the run was interrupted, and the child's own exception when it failed.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    progress_file, result_file = scratch / "progress.jsonl", scratch / "result.pickle"
    child = multiprocessing.get_context("spawn").Process(
        target=_train_child, args=(job, scratch, progress_file, result_file, os.getpid()), daemon=True
    )
    deadline, forwarded = time.monotonic() + job.training.timeout_seconds, 0
    with _supervised(child):
        while child.is_alive():
            forwarded = _forward_epochs(progress_file, forwarded, on_epoch)
            if _stopping.is_set():
                raise TrainingStopped(f"{job.variant} seed {job.seed}: stopped, the run was interrupted")
            if time.monotonic() > deadline:
                raise timed_out(job)
            child.join(CHILD_POLL_SECONDS)
        _forward_epochs(progress_file, forwarded, on_epoch)
    return _child_result(job, result_file, child.exitcode)


def timed_out(job: TrainingJob) -> TrainingTimedOut:
    return TrainingTimedOut(
        f"training {job.variant} seed {job.seed} took longer than --training-timeout "
        f"{job.training.timeout_seconds} s and was stopped; nothing was published"
    )


@contextmanager
def children_stopped_on_signals() -> Iterator[None]:
    """While seeds train in child processes: SIGTERM and SIGINT first stop every child, then reach
    the handler installed before (Prefect's, which ends the flow run as Crashed or Cancelled).

    Without this, Prefect would wait for the worker threads, and they for their children, until
    training ended. Only the main thread can install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stopping.clear()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {
        number: signal.getsignal(number) for number in STOP_SIGNALS
    }

    def stop_then_chain(number: int, frame: FrameType | None) -> None:
        stop_children()
        chained = previous[number]
        if callable(chained):
            chained(number, frame)
        elif chained == signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, stop_then_chain)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_children() -> None:
    """Terminates every child training now; no new one starts until the next training stage."""
    _stopping.set()
    with _children_lock:
        running = list(_children)
    for child in running:
        if child.is_alive():
            child.terminate()


@contextmanager
def _supervised(child: BaseProcess) -> Iterator[None]:
    """Starts `child` and tracks it; on the way out, however it is left, the child is ended."""
    with _children_lock:
        if _stopping.is_set():
            raise TrainingStopped("the run was interrupted before this training started")
        child.start()
        _children.add(child)
    try:
        yield
    finally:
        with _children_lock:
            _children.discard(child)
        if child.is_alive():
            child.terminate()
            child.join(STOP_GRACE_SECONDS)
        if child.is_alive():
            child.kill()
        child.join()


def _forward_epochs(progress_file: Path, forwarded: int, on_epoch: Callable[[dict], None]) -> int:
    text = progress_file.read_text() if progress_file.exists() else ""
    complete = text[: text.rfind("\n") + 1].splitlines()  # a line still being written waits
    for line in complete[forwarded:]:
        on_epoch(json.loads(line))
    return max(forwarded, len(complete))


def _child_result(job: TrainingJob, result_file: Path, exitcode: int | None) -> TrainedVariant:
    if not result_file.exists():
        if exitcode is not None and exitcode < 0 and _stopping.is_set():
            raise TrainingStopped(f"{job.variant} seed {job.seed}: stopped, the run was interrupted")
        raise PipelineError(
            f"training {job.variant} seed {job.seed}: its process ended with status {exitcode} and no result"
        )
    succeeded, outcome = pickle.loads(result_file.read_bytes())
    if not succeeded:
        raise outcome
    return outcome


def _train_child(job: TrainingJob, scratch: Path, progress_file: Path, result_file: Path, parent: int) -> None:
    """The child's side: dies with its parent, leaves SIGINT to it, writes its outcome atomically."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C reaches the whole group; the parent decides
    try:
        outcome: tuple[bool, object] = (
            True,
            training.train_with_restarts(job, scratch, functools.partial(training.append_progress, str(progress_file))),
        )
    except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it
        outcome = (False, error)
    try:
        data = pickle.dumps(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        data = pickle.dumps((False, PipelineError(f"{outcome[1].__class__.__name__}: {outcome[1]}")))
    partial = result_file.with_suffix(".partial")
    partial.write_bytes(data)
    partial.rename(result_file)


def _die_with_parent(parent: int) -> None:
    """Asks the kernel to kill this process when its parent dies (Linux), then checks the parent
    did not die already; elsewhere the parent's supervision alone ends it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)
