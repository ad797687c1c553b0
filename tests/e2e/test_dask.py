"""Trainings and sweeps on a Dask cluster (--dask-address): a distributed.LocalCluster, then real
`dask scheduler` / `dask worker` processes as a user runs them, one of them killed mid-training.
Every run must publish a run that verifies, trained by the workers. (A run to S3 and command-line
runs on the same workers are in test_dask_s3_and_cli.py, so that both test processes share them.)"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from flows.imdb_pipeline import main
from tests.helpers import dask_trainings, latest_flow_run_log, listening_addresses, small_run_options
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

SWEEP = ("--sweep", "rnn_units=4,8")  # two points...
SEEDS = ("--seeds", "2")  # ...times two seeds: four trainings of the one variant
TRAININGS = {f"embedding seed {seed} rnn_units={units}" for seed in (3, 664384129) for units in (4, 8)}


def run_on_dask(address: str, source: Path, tmp_path: Path, capsys, *extra: str) -> str:
    """Runs the pipeline with its trainings on `address`; returns the published run's URI."""
    options = small_run_options(str(source), tmp_path, "--variants", "embedding", *SWEEP, *SEEDS, *extra)
    assert main([*options, "--dask-address", address]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("run: ")
    return lines[-1].removeprefix("run: ")


def assert_sweep_published(run_dir: Path) -> None:
    """The report's sweep table has both points, and the published one has the lowest val_loss."""
    report = (run_dir / "report.md").read_text()
    rows = [line.split(" | ") for line in report.splitlines() if line.startswith("| embedding | rnn_units=")]
    assert [row[1] for row in rows] == ["rnn_units=4", "rnn_units=8"] and all(row[2] == "2" for row in rows)
    published = [row for row in rows if row[-1].startswith("yes")]
    assert len(published) == 1 and float(published[0][3]) == min(float(row[3]) for row in rows)
    assert f"- embedding: {published[0][1]}" in report and "![sweep](sweep.png)" in report
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "embedding" in metrics
    assert (run_dir / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_a_sweep_on_a_local_cluster_trains_on_its_workers_and_publishes_the_best_point(imdb_npz, tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        workers = {worker.worker_address for worker in cluster.workers.values()}
        run_uri = run_on_dask(cluster.scheduler_address, imdb_npz, tmp_path, capsys)
    trainings = dask_trainings(latest_flow_run_log())
    assert set(trainings) == TRAININGS
    assert {worker for started in trainings.values() for worker in started} <= workers
    assert verify_main([run_uri]) == 0
    assert_sweep_published(Path(run_uri))
    assert not [path for path in (tmp_path / "work").rglob("*") if path.is_file()]  # nothing left in scratch


def test_dask_scheduler_and_worker_processes_run_every_training_and_the_run_verifies(
    dask_processes, imdb_npz, tmp_path, capsys
):
    import psutil

    cluster = dask_processes()
    processes = [psutil.Process(process.pid) for process in (cluster.scheduler, *cluster.workers)]
    pids = {process.pid for parent in processes for process in (parent, *parent.children(recursive=True))}
    listening = listening_addresses(pids)
    assert listening and {host for host, _ in listening} == {"127.0.0.1"}  # no dashboard, nothing off loopback
    run_uri = run_on_dask(cluster.address, imdb_npz, tmp_path, capsys)
    trainings = dask_trainings(latest_flow_run_log())
    assert set(trainings) == TRAININGS and all(len(started) == 1 for started in trainings.values())
    used = {started[0] for started in trainings.values()}
    assert len(used) == 2, used  # four trainings, two single-threaded workers: both took some
    log = latest_flow_run_log()
    assert all(f"{training} epoch 3/3:" in log for training in TRAININGS)  # each epoch, relayed from its worker
    assert verify_main([run_uri]) == 0
    assert_sweep_published(Path(run_uri))


def test_a_training_whose_worker_is_killed_is_run_again_on_another_and_the_run_completes(
    dask_processes, imdb_npz, tmp_path, capsys
):
    cluster = dask_processes()
    victim_log = tmp_path / "dask" / "worker-0.log"
    killed = threading.Event()

    def kill_worker_0_mid_training() -> None:
        from distributed import Client

        from tasks.training.worker import DASK_TOPIC

        # The worker logs its address when it starts; its trainings send their epochs as events.
        victim = re.search(r"Start worker at:\s+(tcp://[\d.:]+)", victim_log.read_text())[1]
        started_there: set[str] = set()
        training_there = threading.Event()

        def watch(event) -> None:
            message = event[1]
            if message.get("started") == victim:
                started_there.add(message["training"])
            elif "epoch" in message and message["training"] in started_there:
                training_there.set()

        with Client(cluster.address, set_as_default=False) as client:
            client.subscribe_topic(DASK_TOPIC, watch)
            training_there.wait(timeout=300)
        cluster.kill_worker(0)  # its nanny and its worker process, SIGKILL, mid-training
        killed.set()

    killer = threading.Thread(target=kill_worker_0_mid_training, daemon=True)
    killer.start()
    # Enough epochs that the first training is still running when its worker is killed.
    run_uri = run_on_dask(cluster.address, imdb_npz, tmp_path, capsys, "--max-epochs", "30", "--patience", "30")
    killer.join(timeout=10)
    assert killed.is_set()
    trainings = dask_trainings(latest_flow_run_log())
    assert set(trainings) == TRAININGS
    again = {label: started for label, started in trainings.items() if len(started) > 1}
    assert again, trainings  # the killed worker's training started a second time...
    survivor = next(started[-1] for started in trainings.values() if len(started) == 1)
    assert all(started[-1] == survivor for started in again.values())  # ...on the worker still alive
    assert verify_main([run_uri]) == 0
