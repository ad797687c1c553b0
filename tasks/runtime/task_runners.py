"""Where trainings run: on this machine (the flow's own task runner, each training in a child
process), or as Prefect tasks on an existing Dask cluster through prefect-dask's DaskTaskRunner.

Trainings on Dask read the stored data and write their results under the storage root, so the
root must be a path every worker sees at the same place, or S3; a worker's scratch folder holds
only checkpoints of a training still running.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prefect import Task, get_run_logger

from tasks.config import StorageConfig, check_dask_address
from tasks.errors import PipelineError
from tasks.training.jobs import TrainedVariant, TrainingJob

# Deployments (and anyone who would rather not repeat --dask-address) name the scheduler here.
DASK_ADDRESS_VARIABLE = "IMDB_DASK_ADDRESS"
DASK_WORKER = "Dask worker"  # how `where_running` starts inside one
# What distributed says when the scheduler cannot unpickle a submitted task (its cause, such as a
# missing module, is chained): the scheduler needs the project's code, as the workers do.
GRAPH_NOT_DESERIALIZED = "Error during deserialization of the task graph"


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


def where_running() -> str:
    """What runs the calling code: `Dask worker tcp://host:port` inside a Dask worker, else this
    process (`pid N on host`)."""
    try:
        from distributed import get_worker

        return f"{DASK_WORKER} {get_worker().address}"
    except (ImportError, ValueError):  # ValueError: not inside a worker
        return f"pid {os.getpid()} on {socket.gethostname()}"


def train_on_dask(
    address: str, train: Task, jobs: list[TrainingJob], storage_config: StorageConfig
) -> list[TrainedVariant]:
    """Every job as one `train` task run on the Dask cluster at `address`, all submitted at once;
    their results in the jobs' order. A worker that dies mid-training loses nothing the run reads:
    Dask runs the training again on another worker. The storage root must be one the workers
    share (see `shared_storage`)."""
    from prefect_dask import DaskTaskRunner

    with DaskTaskRunner(address=address) as runner:
        runner.client.run(_forget_earlier_prefect_servers)
        workers = len(runner.client.scheduler_info()["workers"])
        get_run_logger().info("%d trainings on the Dask cluster at %s (%d workers)", len(jobs), address, workers)
        # A worker is a process of its own already: each training runs in it, not in a child of it.
        parameters = [{"job": job, "storage_config": storage_config, "in_child_process": False} for job in jobs]
        futures = [runner.submit(train, parameters=each) for each in parameters]
        try:
            return [future.result() for future in futures]
        except RuntimeError as error:
            if GRAPH_NOT_DESERIALIZED not in str(error):
                raise
            cause = error.__cause__ or error.__context__
            raise DaskSetupError(
                f"the Dask scheduler at {address} cannot read this run's tasks"
                + (f" ({cause.__class__.__name__}: {cause})" if cause else "")
                + ": start `dask scheduler` with this checkout on PYTHONPATH, as its workers"
            ) from None


def _forget_earlier_prefect_servers() -> None:
    """Runs in every worker before a run's trainings. Prefect's per-process services (run logs,
    events, concurrency slots) keep the client of the first API they used; a worker outlives runs,
    and a run without a configured server has a temporary one on a new port each time, so its
    task runs would reach the previous, stopped server. Forgetting them makes the next use start
    them afresh with this run's settings, as Prefect does itself in a forked process.

    Prefect has no public call for this: `reset_instances_for_fork` of its internal service base is
    what its own fork handler calls. Draining (the public `drain_all`) would not do: it sends what is
    queued to the stopped server first. tests/unit/test_prefect_internals.py fails when it changes."""
    from prefect._internal.concurrency.services import _QueueServiceBase

    _QueueServiceBase.reset_instances_for_fork()
