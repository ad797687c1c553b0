"""Where trainings run: on this machine (the flow's own task runner, each training in a child
process), or on an existing Dask cluster, each training a plain function on a worker that its
task run, in the flow's process, waits for.

Trainings on Dask read the stored data and write their results under the storage root, so the
root must be a path every worker sees at the same place, or S3; a worker's scratch folder holds
only checkpoints of a training still running.
"""

from __future__ import annotations

import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from prefect import Task, get_run_logger

from tasks.config import StorageConfig, check_dask_address
from tasks.errors import PipelineError
from tasks.training.jobs import TrainedVariant, TrainingJob
from tasks.training.worker import DASK_TOPIC

# Deployments (and anyone who would rather not repeat --dask-address) name the scheduler here.
DASK_ADDRESS_VARIABLE = "IMDB_DASK_ADDRESS"
DASK_WORKER = "Dask worker"  # how the run's log names where a training runs: `Dask worker tcp://...`
# What distributed says when the scheduler cannot unpickle a submitted task (its cause, such as a
# missing module, is chained): the scheduler needs the project's code, as the workers do.
GRAPH_NOT_DESERIALIZED = "Error during deserialization of the task graph"
# How long a training's task run waits for its next event before it looks at the training again.
EVENT_POLL_SECONDS = 0.2


class DaskSetupError(PipelineError):
    """The Dask cluster cannot run this project's tasks as it was started."""


def dask_address(configured: str | None) -> str | None:
    """The scheduler to train on: the config's, else $IMDB_DASK_ADDRESS, else None (this machine)."""
    if configured:
        return configured
    from_environment = os.environ.get(DASK_ADDRESS_VARIABLE, "").strip()
    if not from_environment:
        return None
    try:
        return check_dask_address(from_environment)
    except ValueError as error:
        raise PipelineError(f"{DASK_ADDRESS_VARIABLE}: {error}") from None


def shared_storage(storage_config: StorageConfig) -> StorageConfig:
    """The storage config as Dask workers need it: a relative local root made absolute, since a
    worker's working directory may be another one. S3 and absolute roots are left as they are."""
    root = storage_config.root
    if "://" in root or Path(root).is_absolute():
        return storage_config
    return storage_config.model_copy(update={"root": str(Path(root).resolve())})


def train_on_dask(
    address: str, train: Task, jobs: list[TrainingJob], storage_config: StorageConfig
) -> list[TrainedVariant]:
    """Every job as one `train` task run of this flow, all at once, each waiting for its training,
    which runs as a plain function on a worker of the Dask cluster at `address` (see
    `train_on_worker`); their results in the jobs' order. A worker that dies mid-training loses
    nothing the run reads: Dask runs the training again on another worker. The storage root must
    be one the workers share (see `shared_storage`).

    Only this run's Dask client and task runs know about Prefect: the workers run no Prefect code,
    so runs sharing the cluster (each with its own Prefect server, or one shared) never reach or
    reset each other's Prefect clients there."""
    from distributed import Client
    from prefect.task_runners import ThreadPoolTaskRunner

    with Client(address, set_as_default=False) as client, _DaskRun.open(address, client):
        workers = len(client.scheduler_info()["workers"])
        get_run_logger().info("%d trainings on the Dask cluster at %s (%d workers)", len(jobs), address, workers)
        # One thread per training, each only waiting on the cluster: all are submitted at once.
        with ThreadPoolTaskRunner(max_workers=len(jobs)) as runner:  # type: ignore[var-annotated]
            parameters = [{"job": job, "storage_config": storage_config, "dask_address": address} for job in jobs]
            futures = [runner.submit(train, parameters=each) for each in parameters]
            return [future.result() for future in futures]


def train_on_worker(
    address: str, job: TrainingJob, storage_config: StorageConfig, destination: str, on_event: Callable[[dict], None]
) -> TrainedVariant:
    """One training on a worker of the run's Dask cluster at `address` (opened by `train_on_dask`),
    kept under `destination`; every event it sends (`started`, `epoch`, `log`) reaches `on_event`
    in the calling thread, where the task run's logger and artifacts work."""
    from tasks.training.worker import train_on_dask_worker

    run = _DaskRun.of(address)
    training_id = uuid.uuid4().hex
    events = run.listen(training_id)
    future = run.client.submit(train_on_dask_worker, job, training_id, storage_config.work_dir, destination, pure=False)
    try:
        while not future.done():
            _relay(events, on_event, wait=EVENT_POLL_SECONDS)
        _relay(events, on_event, wait=0)
        return _result(future, address)
    finally:
        future.cancel()
        run.forget(training_id)


def _relay(events: queue.Queue, on_event: Callable[[dict], None], wait: float) -> None:
    try:
        on_event(events.get(timeout=wait) if wait else events.get_nowait())
    except queue.Empty:
        return
    while not events.empty():
        on_event(events.get_nowait())


def _result(future, address: str) -> TrainedVariant:
    try:
        return future.result()
    except RuntimeError as error:
        if GRAPH_NOT_DESERIALIZED not in str(error):
            raise
        cause = error.__cause__ or error.__context__
        raise DaskSetupError(
            f"the Dask scheduler at {address} cannot read this run's tasks"
            + (f" ({cause.__class__.__name__}: {cause})" if cause else "")
            + ": start `dask scheduler` with this checkout on PYTHONPATH, as its workers"
        ) from None


class _DaskRun:
    """This run's client of one Dask cluster, and a queue of events for each of its trainings."""

    _open: ClassVar[dict[str, _DaskRun]] = {}

    def __init__(self, client) -> None:
        self.client = client
        self._queues: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()

    @classmethod
    @contextmanager
    def open(cls, address: str, client) -> Iterator[_DaskRun]:
        run = cls._open[address] = cls(client)
        client.subscribe_topic(DASK_TOPIC, run._deliver)
        try:
            yield run
        finally:
            client.unsubscribe_topic(DASK_TOPIC)
            del cls._open[address]

    @classmethod
    def of(cls, address: str) -> _DaskRun:
        return cls._open[address]

    def listen(self, training_id: str) -> queue.Queue:
        with self._lock:
            return self._queues.setdefault(training_id, queue.Queue())

    def forget(self, training_id: str) -> None:
        with self._lock:
            self._queues.pop(training_id, None)

    def _deliver(self, event: tuple[float, dict]) -> None:
        """Called by the client for every event of the topic, other runs' trainings' included."""
        message = event[1]
        with self._lock:
            events = self._queues.get(message.get("training", ""))
        if events is not None:
            events.put(message)
