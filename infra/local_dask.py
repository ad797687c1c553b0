"""A local Dask cluster on 127.0.0.1, started with the same `dask scheduler` and `dask worker`
commands a real cluster runs: `make dask` runs it in the foreground for trying --dask-address; the
tests start their own on free ports. No dashboard; one thread per worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.foreground import wait_then_stop

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 120.0  # a worker imports numpy and friends first: seconds, more on a busy machine
STOP_GRACE_SECONDS = 10.0
# A training is single-threaded best (see --seeds), so a worker runs one training at a time and a
# machine runs one worker per core.
THREADS_PER_WORKER = 1
# Without a dashboard each process still serves health checks over HTTP, by default on every
# interface: kept on loopback like the rest.
LOOPBACK_HTTP = ("--no-dashboard", "--dashboard-address", f"{HOST}:0")
# TensorFlow's C++ start-up chatter in the worker logs is not progress; one TensorFlow thread per
# single-threaded worker, one worker per core: more threads only contend for the same cores.
WORKER_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


@dataclass
class LocalDask:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    log_dir: Path | None = None

    def kill_worker(self, index: int) -> None:
        """Kills a worker outright (SIGKILL to its nanny and its worker process), as a lost machine would."""
        worker = self.workers[index]
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

    def stop(self) -> None:
        """Stops the workers, then the scheduler; whatever does not stop in time is killed."""
        for process in (*self.workers, self.scheduler):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (*self.workers, self.scheduler):
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def dask_command() -> str:
    return str(Path(sys.executable).parent / "dask")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def worker_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a worker needs: this checkout importable (PYTHONPATH), plus `extra`
    (storage credentials, for instance) over the current environment."""
    path = os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))
    return {**os.environ, **WORKER_ENVIRONMENT, "PYTHONPATH": path, **(extra or {})}


def _spawn(command: list[str], log_path: Path | None, environment: dict[str, str]) -> subprocess.Popen:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the process owns it
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a worker and its nanny stop (or die) together
    )


def start(
    workers: int,
    log_dir: Path | None = None,
    environment: dict[str, str] | None = None,
    port: int | None = None,
    scheduler_environment: dict[str, str] | None = None,
) -> LocalDask:
    """Starts a scheduler on 127.0.0.1 (a free port unless `port`) and `workers` single-threaded
    workers, and waits until all have joined. `environment` is added to the workers' environment;
    the scheduler gets the workers' unless `scheduler_environment` is given (its whole environment)."""
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"tcp://{HOST}:{port}"
    env = worker_environment(environment)
    scheduler = _spawn(
        [dask_command(), "scheduler", "--host", HOST, "--port", str(port), *LOOPBACK_HTTP],
        log_dir / "scheduler.log" if log_dir else None,
        env if scheduler_environment is None else scheduler_environment,
    )
    cluster = LocalDask(address, scheduler, log_dir=log_dir)
    try:
        for index in range(workers):
            command = [
                dask_command(),
                "worker",
                address,
                "--host",
                HOST,
                "--nthreads",
                str(THREADS_PER_WORKER),
                *LOOPBACK_HTTP,
                "--name",
                f"worker-{index}",
            ]
            cluster.workers.append(_spawn(command, log_dir / f"worker-{index}.log" if log_dir else None, env))
        wait_for_workers(cluster, workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_workers(cluster: LocalDask, count: int) -> None:
    """Waits until `count` workers have joined the scheduler."""
    from distributed import Client

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if cluster.scheduler.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with status {cluster.scheduler.returncode}")
        try:
            with Client(cluster.address, timeout=5) as client:
                client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"{count} Dask workers did not join {cluster.address} within {START_TIMEOUT_SECONDS:.0f} s")


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)  # runs the `finally` below, so the cluster never outlives this process


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local_dask", description=__doc__)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers (default: one per core)")
    parser.add_argument("--port", type=int, default=8786, help="the scheduler's port (default: 8786)")
    parser.add_argument("--log-dir", type=Path, default=REPO_ROOT / ".dask", help="logs (default: .dask/)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    log_dir = args.log_dir.resolve()
    cluster = start(args.workers, log_dir, port=args.port)
    print(f"Dask scheduler {cluster.address} with {args.workers} single-threaded workers (logs in {log_dir})")
    print("In another shell:")
    print(f'  make run ARGS="--dask-address {cluster.address} --seeds 2 --sweep rnn_units=8,16"')
    print("Ctrl+C stops the cluster.", flush=True)
    wait_then_stop(cluster.scheduler, cluster.stop)


if __name__ == "__main__":
    main()
