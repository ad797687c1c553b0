"""Where a training runs outside the flow's process, importing only what training needs
(TensorFlow, never Prefect or the flow).

Its own process: `python -m tasks.training.worker SCRATCH PARENT_PID`, or, started ahead of its job
(warm), `python -m tasks.training.worker - PARENT_PID`, which first imports TensorFlow, then reads
SCRATCH from its stdin (none, at end of input: it exits). It reads the job from
`SCRATCH/job.json`, trains it (with restarts), appends each epoch and each log line to
`SCRATCH/progress.jsonl` and leaves `SCRATCH/result.pickle`: `(True, TrainedVariant)` or
`(False, exception)`. It dies with its parent, and leaves SIGINT to it.

A Dask worker: `train_on_dask_worker`, a plain function the run submits, sends its start, epochs
and log lines to the run as Dask events and keeps its result in the run's storage. No Prefect
code runs on the workers, so runs that share a cluster share nothing of Prefect's there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pickle
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tasks.errors import PipelineError
from tasks.runtime.parent_death import death_signal_setter
from tasks.storage.layout import TRAINING_SCRATCH_FOLDER
from tasks.training import jobs
from tasks.training.jobs import TrainedVariant, TrainingJob, append_progress

log = logging.getLogger("tasks.training.worker")  # run as __main__, its logs still belong under tasks

JOB_FILE, PROGRESS_FILE, RESULT_FILE = "job.json", "progress.jsonl", "result.pickle"
SCRATCH_FROM_STDIN = "-"
# The Dask event topic of every training on a worker; each message names its training, so runs
# sharing a cluster (and the scheduler's one bounded log of the topic) tell theirs apart.
DASK_TOPIC = "imdb-rnn-pipeline.training"


def main(argv: list[str]) -> int:
    parent = int(argv[1])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C reaches the whole group; the parent decides
    if argv[0] == SCRATCH_FROM_STDIN:
        # A failure here is raised again below, with the job, and handed to the parent.
        with contextlib.suppress(Exception):
            _load_tensorflow()
        line = sys.stdin.readline().strip()
        if not line:  # the parent needed no training after all
            return 0
        scratch = Path(line)
    else:
        scratch = Path(argv[0])
    logging.getLogger("tasks").addHandler(ProgressLogHandler(scratch / PROGRESS_FILE))
    logging.getLogger("tasks").setLevel(logging.INFO)
    if argv[0] == SCRATCH_FROM_STDIN:
        log.info("a warm process: started with the run, it loaded TensorFlow alongside the data stages")
    job = TrainingJob.model_validate_json((scratch / JOB_FILE).read_text())
    try:
        from tasks.training import fit  # TensorFlow loads here, after the parent-death guard is in place

        on_epoch = functools.partial(append_progress, str(scratch / PROGRESS_FILE))
        outcome: tuple[bool, object] = (True, fit.train_with_restarts(job, scratch, on_epoch))
    except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it
        outcome = (False, error)
    _write_outcome(scratch / RESULT_FILE, outcome)
    return 0


def _load_tensorflow() -> None:
    """What every training does first and needs no job for: importing TensorFlow and Keras (most of
    a training process's start) and starting TensorFlow's runtime. Nothing here draws a random
    number or builds a model, so a warm process trains exactly as a fresh one."""
    import keras

    from tasks.training import fit  # noqa: F401 - imported for its cost, used once the job arrives

    keras.ops.zeros(1)


class ProgressLogHandler(logging.Handler):
    """The training's log lines (restarts, its summary), appended to the progress file beside its
    epochs: the parent logs them again, into the run's log."""

    def __init__(self, progress_file: Path) -> None:
        super().__init__()
        self.progress_file = progress_file

    def emit(self, record: logging.LogRecord) -> None:
        entry = {"log": {"logger": record.name, "level": record.levelno, "message": record.getMessage()}}
        with self.progress_file.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")


def train_on_dask_worker(job: TrainingJob, training_id: str, work_dir: str, destination: str) -> TrainedVariant:
    """Runs on a Dask worker: trains `job` (with restarts) in the worker's own scratch folder under
    `work_dir`, keeps the result under `destination` (storage the workers and the run share) and
    returns its record. Its start, each epoch and each log line go to DASK_TOPIC, tagged with
    `training_id`. Past the training's timeout it stops at the next epoch, as the run gives up on
    it then."""
    from distributed import get_worker

    from tasks.training import fit  # TensorFlow loads on the worker, once

    worker = get_worker()

    def send(message: dict) -> None:
        worker.log_event(DASK_TOPIC, {"training": training_id, **message})

    send({"started": worker.address})
    deadline = time.monotonic() + job.training.timeout_seconds

    def on_epoch(record: dict) -> None:
        send({"epoch": json.loads(json.dumps(record))})  # plain values, as Dask events carry them
        if time.monotonic() > deadline:
            raise jobs.timed_out(job)

    scratch = Path(work_dir) / TRAINING_SCRATCH_FOLDER / training_id
    tasks_log = logging.getLogger("tasks")
    forward = EventLogHandler(send, threading.get_ident())
    tasks_log.addHandler(forward)
    tasks_log.setLevel(logging.INFO)
    try:
        return jobs.store_trained(fit.train_with_restarts(job, scratch, on_epoch), destination)
    finally:
        tasks_log.removeHandler(forward)
        shutil.rmtree(scratch, ignore_errors=True)


class EventLogHandler(logging.Handler):
    """The log lines of one training on a Dask worker (those of its thread: a worker may run
    several trainings at once), sent as events the run logs again."""

    def __init__(self, send: Callable[[dict], None], thread: int) -> None:
        super().__init__()
        self.send, self.thread = send, thread

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.send({"log": {"logger": record.name, "level": record.levelno, "message": record.getMessage()}})


def _write_outcome(result_file: Path, outcome: tuple[bool, object]) -> None:
    """Pickled, renamed into place: the parent never reads half a result."""
    try:
        data = pickle.dumps(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        data = pickle.dumps((False, PipelineError(f"{outcome[1].__class__.__name__}: {outcome[1]}")))
    partial = result_file.with_suffix(".partial")
    partial.write_bytes(data)
    partial.rename(result_file)


def _die_with_parent(parent: int) -> None:
    """Ends this process when its parent dies, then checks the parent did not die already."""
    setter = death_signal_setter(signal.SIGKILL)
    if setter is None:
        return
    setter()
    if os.getppid() != parent:
        os._exit(1)


def _exit_now(status: int) -> None:
    """Ends the process without the interpreter's teardown, where TensorFlow's takes about a second
    of a run's train stage: by now the outcome is on disk and every log line is written."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _exit_now(main(sys.argv[1:]))
