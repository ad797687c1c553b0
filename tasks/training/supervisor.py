"""A training in a child process (`tasks.training.worker`), its epochs reaching the parent through a file.

Trainings side by side then neither share TensorFlow's global random state nor wait for each
other's Python, and the pipeline's own process never loads TensorFlow. The child is a plain
`python -m` process rather than a multiprocessing one, which would first re-import the flow's
module. The parent supervises each child: it enforces `--training-timeout` by terminating it,
stops every child when the run is interrupted (SIGTERM, SIGINT), and a child dies with its parent
even when the parent is killed outright (SIGKILL), so none is ever orphaned.

Importing TensorFlow is most of a training process's start. So a run can start its training
processes warm, ahead of their jobs (`warm_training_processes`), at its start: they import
TensorFlow while the data stages run, on a core the data stages leave idle, then wait for a job;
each training of the stage takes one, or starts a process of its own when none is left. A warm
process is supervised like any other from the moment it starts: it is stopped by `stop_children`,
dies with its parent, and the unused ones are ended when the run leaves the block.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import tasks
from tasks.errors import PipelineError
from tasks.training.jobs import TrainedVariant, TrainingJob, timed_out
from tasks.training.worker import JOB_FILE, PROGRESS_FILE, RESULT_FILE, SCRATCH_FROM_STDIN

log = logging.getLogger(__name__)

# How often the parent forwards a child's epochs to the UI and checks its deadline.
CHILD_POLL_SECONDS = 0.2
# A child asked to stop (SIGTERM) holds no state worth saving; past this it is killed (SIGKILL).
STOP_GRACE_SECONDS = 3.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The folder `tasks` is imported from: the child imports it from there too, wherever the run started.
CODE_ROOT = str(Path(tasks.__file__).resolve().parent.parent)

_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set once the run is interrupted: no new child starts
_warm: list[tuple[subprocess.Popen, int | None]] = []  # started ahead of their jobs, with their thread cap


class TrainingStopped(BaseException):
    """A child's training was stopped because the run was interrupted (a BaseException, like the
    signal that caused it, so Prefect reports the task run as crashed, not failed)."""


def train_in_child_process(
    job: TrainingJob, scratch: Path, on_epoch: Callable[[dict], None], threads: int | None = None
) -> TrainedVariant:
    """`fit.train_with_restarts(job, scratch)` in a child process; each epoch reaches `on_epoch`.
    `threads` caps TensorFlow's thread pools in it (None: one thread per core, TensorFlow's default).

    Raises TrainingTimedOut after `job.training.timeout_seconds` (the child is terminated first),
    TrainingStopped when the run was interrupted, and the child's own exception when it failed.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / JOB_FILE).write_text(job.model_dump_json())
    progress_file = scratch / PROGRESS_FILE
    deadline, forwarded = time.monotonic() + job.training.timeout_seconds, 0
    with _supervised(scratch, threads) as child:
        while child.poll() is None:
            forwarded = _forward_progress(progress_file, forwarded, on_epoch)
            if _stopping.is_set():
                raise TrainingStopped(f"{job.variant} seed {job.seed}: stopped, the run was interrupted")
            if time.monotonic() > deadline:
                raise timed_out(job)
            time.sleep(CHILD_POLL_SECONDS)
        _forward_progress(progress_file, forwarded, on_epoch)
    return _child_result(job, scratch / RESULT_FILE, child.returncode)


def _child_command(scratch: str) -> list[str]:
    return [sys.executable, "-m", "tasks.training.worker", scratch, str(os.getpid())]


@contextmanager
def warm_training_processes(count: int, threads: int | None) -> Iterator[None]:
    """Starts `count` training processes now, each importing TensorFlow then waiting for a job (with
    `threads` threads, as `train_in_child_process` takes them); trainings inside the block take
    them first. On the way out, however it is left, the ones no training took are ended.

    Call from a thread that lives as long as the block (the flow's): a child dies with the thread
    that started it."""
    with _children_lock:
        for _ in range(count):
            child = _start_child(_child_command(SCRATCH_FROM_STDIN), threads, stdin=subprocess.PIPE)
            _warm.append((child, threads))
    log.info("%d training process(es) started ahead of the train stage, loading TensorFlow", count)
    try:
        yield
    finally:
        with _children_lock:
            unused = [child for child, _ in _warm]
            _warm.clear()
        for child in unused:
            _end_child(child)


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
        if child.poll() is None:
            child.terminate()


@contextmanager
def _supervised(scratch: Path, threads: int | None) -> Iterator[subprocess.Popen]:
    """A child training the job in `scratch`: a warm one handed the folder, else one started now;
    tracked, and on the way out, however it is left, ended."""
    with _children_lock:
        if _stopping.is_set():
            raise TrainingStopped("the run was interrupted before this training started")
        child = _take_warm(scratch, threads) or _start_child(_child_command(str(scratch)), threads)
    try:
        yield child
    finally:
        _end_child(child)


def _start_child(command: list[str], threads: int | None, stdin: int | None = None) -> subprocess.Popen:
    """Starts and tracks a child; call holding `_children_lock`."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [CODE_ROOT, os.environ.get("PYTHONPATH")]))}
    if threads is not None:  # read by TensorFlow when it starts
        environment |= {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads)}
    child = subprocess.Popen(command, env=environment, stdin=stdin)
    _children.add(child)
    return child


def _take_warm(scratch: Path, threads: int | None) -> subprocess.Popen | None:
    """A warm child with `threads` threads, handed `scratch`; None when none is left alive. Call
    holding `_children_lock`."""
    while (index := next((i for i, (_, cap) in enumerate(_warm) if cap == threads), None)) is not None:
        child = _warm.pop(index)[0]
        try:
            if child.poll() is None and child.stdin is not None:
                child.stdin.write(f"{scratch}\n".encode())
                child.stdin.close()
                return child
        except OSError:  # it died while warming (the pipe is broken): end it, try the next
            pass
        _children.discard(child)
        if child.poll() is None:
            child.kill()
        child.wait()
    return None


def _end_child(child: subprocess.Popen) -> None:
    with _children_lock:
        _children.discard(child)
    if child.stdin is not None and not child.stdin.closed:
        child.stdin.close()  # a warm child that never got a job exits at end of input
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
    child.wait()


def _forward_progress(progress_file: Path, forwarded: int, on_epoch: Callable[[dict], None]) -> int:
    """The child's new epochs to `on_epoch` and its new log lines to this process's loggers, which
    reach the run's log; returns how many lines are done."""
    text = progress_file.read_text() if progress_file.exists() else ""
    complete = text[: text.rfind("\n") + 1].splitlines()  # a line still being written waits
    for line in complete[forwarded:]:
        entry = json.loads(line)
        if "log" in entry:
            logging.getLogger(entry["log"]["logger"]).log(entry["log"]["level"], "%s", entry["log"]["message"])
        else:
            on_epoch(entry)
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
