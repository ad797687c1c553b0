"""Scheduled retraining: infra/prefect.yaml applied with `make deploy` to a real Prefect server
(`make server`), and a triggered run picked up by a process worker (`--run-once`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import SMALL_MIN_SPLIT_ROWS, server_client

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "imdb-rnn-pipeline/weekly-retraining"
PREFECT = str(Path(sys.executable).parent / "prefect")


def test_make_deploy_stores_the_schedule_and_a_worker_completes_a_triggered_run(prefect_server, imdb_npz, tmp_path):
    port, environment = prefect_server
    deployed = subprocess.run(["make", "deploy", f"PREFECT_PORT={port}"], cwd=REPO_ROOT, env=environment,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    written = yaml.safe_load((REPO_ROOT / "infra" / "prefect.yaml").read_text())["deployments"][0]

    with server_client(environment) as client:
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
                 "model": {"variants": ["embedding"]}, "training": {"max_epochs": 2, "learning_rate": 0.01, "baseline_margin": 1.0},
                 "checks": {"min_split_rows": SMALL_MIN_SPLIT_ROWS},
                 "storage": {"root": str(tmp_path / "store"), "work_dir": str(tmp_path / "work")}}
        flow_run = client.create_flow_run_from_deployment(deployment.id, parameters={"config": small})

    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "imdb-process", "--run-once"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    with server_client(environment) as client:
        finished = client.read_flow_run(flow_run.id)
        assert finished.state.is_completed(), finished.state
        keys = {artifact.key for artifact in client.read_artifacts() if artifact.flow_run_id == flow_run.id}
    assert {"imdb-training-embedding", "imdb-run-report", "imdb-variant-metrics", "imdb-run-files"} <= keys
    runs = list((tmp_path / "store" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "manifest.json").exists()
    assert (tmp_path / "store" / "champion.json").exists()


RESCORING = "imdb-batch-scoring/rescore-on-promotion"
EMIT_PROMOTION = """
import json, sys
from tasks.orchestration.ui import announce_promotion
record, champion_uri = json.loads(sys.argv[1]), sys.argv[2]
announce_promotion(record, champion_uri, record["metric"], "promoted by the deployment test")
"""


def _flow_runs_of(environment: dict, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with server_client(environment) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def test_a_promotion_event_triggers_the_rescoring_deployment(prefect_server, published_champion, tmp_path):
    import json
    import time

    import pandas as pd
    from prefect.client.schemas.actions import DeploymentUpdate

    from tests.helpers import review_texts

    port, environment = prefect_server
    deployed = subprocess.run(["make", "deploy", f"PREFECT_PORT={port}"], cwd=REPO_ROOT, env=environment,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    written = yaml.safe_load((REPO_ROOT / "infra" / "prefect.yaml").read_text())["deployments"][1]
    texts, labels = review_texts(50, seed=3)
    pd.DataFrame({"review": texts, "label": labels}).to_csv(tmp_path / "reviews.csv", index=False)
    config = {"input": str(tmp_path / "reviews.csv"),
              "storage": {"root": str(published_champion), "work_dir": str(tmp_path / "work")},
              "output": str(tmp_path / "scored")}

    with server_client(environment) as client:
        deployment = client.read_deployment_by_name(RESCORING)
        assert deployment.entrypoint == "flows/batch_scoring.py:imdb_batch_scoring"
        assert deployment.parameters == written["parameters"] and deployment.work_pool_name == "imdb-process"
        automations = [a for a in client.read_automations() if any(
            getattr(action, "deployment_id", None) == deployment.id for action in a.actions)]
        assert [a.trigger.expect for a in automations] == [{"imdb-rnn-pipeline.champion.promoted"}]
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={"config": config}))
        for earlier in _flow_runs_of(environment, deployment.id):  # triggered by another test's promotion
            client.delete_flow_run(earlier.id)
    assert not _flow_runs_of(environment, deployment.id)

    record = json.loads((published_champion / "champion.json").read_text())
    emitted = subprocess.run([sys.executable, "-c", EMIT_PROMOTION, json.dumps(record),
                              str(published_champion / "champion.json")],
                             cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert emitted.returncode == 0, emitted.stderr[-2000:]
    deadline = time.monotonic() + 120
    while not (runs := _flow_runs_of(environment, deployment.id)) and time.monotonic() < deadline:
        time.sleep(2)
    assert len(runs) == 1, "the promotion event did not trigger the re-scoring deployment"

    worker = subprocess.run([PREFECT, "worker", "start", "--pool", "imdb-process", "--run-once"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with server_client(environment) as client:
        assert client.read_flow_run(runs[0].id).state.is_completed()
    [batch] = list((tmp_path / "scored" / "predictions").iterdir())
    summary = json.loads((batch / "summary.json").read_text())
    assert summary["rows"] == 50 and summary["run_id"] == record["run_id"] and summary["accuracy"] >= 0.8
