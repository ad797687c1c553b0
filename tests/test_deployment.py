"""Scheduled retraining: infra/prefect.yaml applied with `make deploy` to a real Prefect server
started here, and a triggered run picked up by a process worker (`--run-once`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "imdb-rnn-pipeline/weekly-retraining"
PREFECT = str(Path(sys.executable).parent / "prefect")
SERVER_START_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A real Prefect server (SQLite) on 127.0.0.1; yields (port, environment for its clients)."""
    port = _free_port()
    home = tmp_path_factory.mktemp("prefect-server-home")
    environment = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env={**environment, "PREFECT_API_URL": ""}, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None, (home / "server.log").read_text()[-2000:]
        time.sleep(1)
    else:
        pytest.fail("the Prefect server did not start in time")
    yield port, environment
    server.terminate()
    server.wait(timeout=30)
    log.close()


@contextmanager
def _client(environment: dict):
    """A Prefect client talking to the test's server (not to the session harness)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: environment["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            yield client


def test_make_deploy_stores_the_schedule_and_a_worker_completes_a_triggered_run(prefect_server, imdb_npz, tmp_path):
    port, environment = prefect_server
    deployed = subprocess.run(["make", "deploy", f"PREFECT_PORT={port}"], cwd=REPO_ROOT, env=environment,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    written = yaml.safe_load((REPO_ROOT / "infra" / "prefect.yaml").read_text())["deployments"][0]

    with _client(environment) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == (written["schedules"][0]["cron"], "UTC")
        assert deployment.schedules[0].active
        assert deployment.parameters == written["parameters"]
        assert set(deployment.tags) == set(written["tags"])
        assert deployment.work_pool_name == "imdb-process"
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.entrypoint == "flows/imdb_pipeline.py:imdb_rnn_pipeline"

        small = {"seed": 3, "data": {"source": str(imdb_npz), "num_words": 50, "maxlen": 20},
                 "model": {"variants": ["embedding"]}, "training": {"max_epochs": 2, "learning_rate": 0.01},
                 "storage": {"root": str(tmp_path / "store"), "work_dir": str(tmp_path / "work")}}
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={"config": small})

    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "imdb-process", "--run-once"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    with _client(environment) as client:
        finished = client.read_flow_run(flow_run.id)
        assert finished.state.is_completed(), finished.state
        keys = {artifact.key for artifact in client.read_artifacts() if artifact.flow_run_id == flow_run.id}
    assert {"imdb-training-embedding", "imdb-run-report", "imdb-variant-metrics", "imdb-run-files"} <= keys
    runs = list((tmp_path / "store" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "manifest.json").exists()
    assert (tmp_path / "store" / "champion.json").exists()
