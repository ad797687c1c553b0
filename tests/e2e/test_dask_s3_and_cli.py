"""Dask runs beyond the cluster itself (see test_dask.py, whose helpers they use; a file of their
own so that both test processes share the Dask tests): a run to S3 with the credentials only in
the workers' environment, two command-line runs on the same workers one after another, each with
its own temporary Prefect server, and two runs on the same workers at once, each reporting to a
Prefect server of its own."""

from __future__ import annotations

import pytest

from tests.e2e.test_dask import SEEDS, SWEEP, TRAININGS, run_on_dask
from tests.helpers import (
    REPO_ROOT,
    dask_trainings,
    flow_run_log,
    latest_flow_run_log,
    prefect_home,
    server_client,
    small_run_options,
    wait_for_text,
)
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_dask_run_to_s3_reads_and_writes_only_through_s3(
    dask_processes, s3_server, s3_prefix, imdb_npz, tmp_path, capsys, monkeypatch
):
    storage_environment = s3_server.environment()
    with monkeypatch.context() as started_without:
        for name in storage_environment:  # the workers would inherit this process's credentials
            started_without.delenv(name, raising=False)
        cluster = dask_processes(storage_environment)  # the only way the credentials reach the workers
    run_uri = run_on_dask(cluster.address, imdb_npz, tmp_path, capsys, "--storage", s3_prefix)
    assert run_uri.startswith(f"{s3_prefix}/runs/")
    trainings = dask_trainings(latest_flow_run_log())
    assert set(trainings) == TRAININGS
    assert verify_main([run_uri]) == 0
    assert not (tmp_path / "store").exists()
    assert not [path for path in (tmp_path / "work").rglob("*") if path.is_file()]


def test_command_line_runs_without_a_prefect_server_train_on_the_same_workers_one_after_another(
    dask_processes, imdb_npz, tmp_path, migrated_prefect_database
):
    """What `make dask` then `make run` twice does: each run starts its own temporary Prefect server
    (a new port each time), which its trainings on the long-lived workers must reach."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    cluster = dask_processes()
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home(tmp_path, migrated_prefect_database))
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", *SWEEP, "--dask-address", cluster.address
    )
    for extra in ([], ["--refresh"]):  # the second run trains again rather than reuse the first's results
        result = subprocess.run(
            [sys.executable, "-m", "flows.imdb_pipeline", *options, *extra],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert verify_main([result.stdout.strip().splitlines()[-1].removeprefix("run: ")]) == 0
        assert result.stderr.count(": training on Dask worker tcp://127.0.0.1:") == 2  # two points


def trainings_seen_by(client) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What a Prefect server holds of its latest pipeline run: the state of each train task run,
    by name, and the trainings its log says ran on which Dask workers."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    flows = FlowFilter(name=FlowFilterName(any_=["imdb-rnn-pipeline"]))
    (flow_run,) = client.read_flow_runs(flow_filter=flows, sort=FlowRunSort.START_TIME_DESC, limit=1)
    task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    states = {run.name: run.state.name for run in task_runs if run.name.startswith("train-")}
    return states, dask_trainings(flow_run_log(client, flow_run.id))


def test_two_runs_at_once_on_one_cluster_each_reporting_to_its_own_prefect_server(
    prefect_server, imdb_npz, tmp_path, capsys
):
    """One run in this process reports to the session's Prefect server, the other, a command line,
    to a second server; both train on the same two workers at the same time. Each publishes a run
    that verifies, and each server holds all four of its run's trainings, completed and logged."""
    import subprocess
    import sys

    from distributed import LocalCluster
    from prefect import get_client

    _, environment = prefect_server
    longer = ("--max-epochs", "6", "--patience", "6")  # the two runs' trainings overlap on the workers
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        workers = {worker.worker_address for worker in cluster.workers.values()}
        address = ("--dask-address", cluster.scheduler_address)
        other_options = small_run_options(
            str(imdb_npz), tmp_path / "other", "--variants", "embedding", *SWEEP, *SEEDS, *longer, *address
        )
        other_log, other_out = tmp_path / "other.log", tmp_path / "other.out"
        with other_log.open("wb") as log, other_out.open("wb") as out:
            other = subprocess.Popen(
                [sys.executable, "-m", "flows.imdb_pipeline", *other_options],
                cwd=REPO_ROOT,
                env={**environment, "TF_CPP_MIN_LOG_LEVEL": "2"},
                stdout=out,
                stderr=log,
            )
        try:
            wait_for_text(other, other_log, "on the Dask cluster at")  # the other run's train stage began
            run_uri = run_on_dask(cluster.scheduler_address, imdb_npz, tmp_path / "this", capsys, *longer)
            assert other.wait(timeout=600) == 0, other_log.read_text()[-3000:]
        finally:
            if other.poll() is None:
                other.kill()
    other_uri = other_out.read_text().strip().splitlines()[-1].removeprefix("run: ")
    assert verify_main([run_uri]) == 0 and verify_main([other_uri]) == 0
    with get_client(sync_client=True) as this_server, server_client(environment) as other_server:
        for client in (this_server, other_server):
            states, trainings = trainings_seen_by(client)
            assert len(states) == 4 and set(states.values()) == {"Completed"}, states
            assert set(trainings) == TRAININGS and {started[-1] for started in trainings.values()} <= workers
