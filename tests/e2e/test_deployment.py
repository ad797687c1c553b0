"""Scheduled retraining: infra/prefect.yaml applied with `make deploy` to a real Prefect server
(`make server`), two runs triggered (one by `make retrain`) and run one after the other by
`make worker`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import SMALL_MIN_SPLIT_ROWS, server_client

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "imdb-rnn-pipeline/weekly-retraining"
PREFECT = str(Path(sys.executable).parent / "prefect")


def make_deploy(port: int, environment: dict, *variables: str) -> list[dict]:
    """`make deploy` against the test server (`variables` such as SOURCE=... passed to make);
    returns the deployments infra/prefect.yaml declares, as written."""
    deployed = subprocess.run(  # -o: never rebuild .venv from a test
        ["make", "-o", ".venv/.installed", "deploy", f"PREFECT_PORT={port}", *variables],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    return yaml.safe_load((REPO_ROOT / "infra" / "prefect.yaml").read_text())["deployments"]


def test_make_deploy_stores_the_schedule_and_make_worker_runs_triggered_runs_one_at_a_time(
    prefect_server, imdb_npz, tmp_path
):
    port, environment = prefect_server
    written = make_deploy(port, environment)[0]

    with server_client(environment) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == (written["schedules"][0]["cron"], "UTC")
        assert deployment.schedules[0].active
        assert deployment.parameters == json.loads(
            json.dumps(written["parameters"]).replace("{{ $IMDB_PIPELINE_SOURCE }}", "auto")
        )
        assert set(deployment.tags) == set(written["tags"])
        assert deployment.work_pool_name == "imdb-process"
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.entrypoint == "flows/imdb_pipeline.py:imdb_rnn_pipeline"

        small = {
            "seed": 3,
            "data": {"source": str(imdb_npz), "num_words": 50, "maxlen": 20},
            "model": {"variants": ["embedding"]},
            "training": {"max_epochs": 2, "learning_rate": 0.01, "baseline_margin": 1.0},
            "checks": {"min_split_rows": SMALL_MIN_SPLIT_ROWS},
            "storage": {"root": str(tmp_path / "store"), "work_dir": str(tmp_path / "work")},
        }
        first = client.create_flow_run_from_deployment(deployment.id, parameters={"config": small})

    # `make worker` runs the pool's flow runs; `make retrain` triggers a second run while the first
    # is queued or running, and follows it to its end. The deployment's limit of 1 (ENQUEUE) makes
    # the second wait for the first: they never overlap.
    worker = start_make(["worker", f"PREFECT_PORT={port}"], environment, tmp_path / "worker.log")
    try:
        retrain = subprocess.run(
            [
                "make",
                "-s",
                "-o",
                ".venv/.installed",
                "retrain",
                f"PREFECT_PORT={port}",
                f"ARGS=--params '{json.dumps({'config': small})}' --watch-interval 2",
            ],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
        assert "Completed" in retrain.stdout + retrain.stderr
        with server_client(environment) as client:
            deadline = time.monotonic() + 300
            while not client.read_flow_run(first.id).state.is_final():
                assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "worker.log").read_text()[
                    -3000:
                ]
                time.sleep(2)
            runs = [
                run
                for run in client.read_flow_runs()  # not the schedule's own runs, weeks ahead
                if run.deployment_id == deployment.id and run.parameters == {"config": small}
            ]
            ours = {run.id for run in runs}  # the second run's training is cached: no progress artifact
            keys = {artifact.key for artifact in client.read_artifacts() if artifact.flow_run_id in ours}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

    assert len(runs) == 2 and all(run.state.is_completed() for run in runs), [run.state for run in runs]
    earlier, later = sorted(runs, key=lambda run: run.start_time)
    assert earlier.end_time <= later.start_time, "two retrainings overlapped"
    for run in runs:  # scheduled and triggered runs carry the same tags as CLI runs
        assert {"source:imdb.npz", "variant:embedding", *written["tags"]} <= set(run.tags), run.tags
    assert {"imdb-training-embedding", "imdb-run-report", "imdb-variant-metrics", "imdb-run-files"} <= keys
    published = list((tmp_path / "store" / "runs").iterdir())
    assert len(published) == 2 and all((run / "manifest.json").exists() for run in published)
    assert (tmp_path / "store" / "champion.json").exists()


def start_make(arguments: list[str], environment: dict, log_path: Path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", *arguments],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


RESCORING = "imdb-batch-scoring/rescore-on-promotion"
EMIT_PROMOTION = """
import sys
from tasks.registry.records import ChampionRecord
from tasks.runtime.ui import announce_promotion
record, champion_uri = ChampionRecord.model_validate_json(sys.argv[1]), sys.argv[2]
announce_promotion(record, champion_uri, record.metric, "promoted by the deployment test")
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
    written = make_deploy(port, environment)[1]
    texts, labels = review_texts(50, seed=3)
    pd.DataFrame({"review": texts, "label": labels}).to_csv(tmp_path / "reviews.csv", index=False)
    config = {
        "input": str(tmp_path / "reviews.csv"),
        "storage": {"root": str(published_champion), "work_dir": str(tmp_path / "work")},
        "output": str(tmp_path / "scored"),
    }

    with server_client(environment) as client:
        deployment = client.read_deployment_by_name(RESCORING)
        assert deployment.entrypoint == "flows/batch_scoring.py:imdb_batch_scoring"
        assert deployment.parameters == written["parameters"] and deployment.work_pool_name == "imdb-process"
        automations = [
            a
            for a in client.read_automations()
            if any(getattr(action, "deployment_id", None) == deployment.id for action in a.actions)
        ]
        assert [a.trigger.expect for a in automations] == [{"imdb-rnn-pipeline.champion.promoted"}]
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={"config": config}))
        for earlier in _flow_runs_of(environment, deployment.id):  # triggered by another test's promotion
            client.delete_flow_run(earlier.id)
    assert not _flow_runs_of(environment, deployment.id)

    record = json.loads((published_champion / "champion.json").read_text())
    emitted = subprocess.run(
        [sys.executable, "-c", EMIT_PROMOTION, json.dumps(record), str(published_champion / "champion.json")],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert emitted.returncode == 0, emitted.stderr[-2000:]
    deadline = time.monotonic() + 120
    while not (runs := _flow_runs_of(environment, deployment.id)) and time.monotonic() < deadline:
        time.sleep(2)
    assert len(runs) == 1, "the promotion event did not trigger the re-scoring deployment"

    worker = subprocess.run(
        [PREFECT, "worker", "start", "--pool", "imdb-process", "--run-once"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with server_client(environment) as client:
        assert client.read_flow_run(runs[0].id).state.is_completed()
    [batch] = list((tmp_path / "scored" / "predictions").iterdir())
    summary = json.loads((batch / "summary.json").read_text())
    assert summary["rows"] == 50 and summary["run_id"] == record["run_id"] and summary["accuracy"] >= 0.8
