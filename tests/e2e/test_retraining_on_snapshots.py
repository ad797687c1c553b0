"""Retraining that follows the data, end to end on real services and no mocks: snapshots of the
bundled corpus land on SeaweedFS (`make snapshots`), `make deploy SOURCE=s3://...` points the
deployments of a real Prefect server at them, and `make worker` runs what the watcher's event
triggers. Two snapshots train and promote a first champion; the watcher's next look and a
`--skip-unchanged` run do nothing; a third snapshot retrains on the new window, and its gate scores
the champion on the new test split. Each step's duration is printed (`pytest -s` shows them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from tasks.registry.publishing import list_runs
from tasks.storage import fs
from tests.e2e.test_data_watch import WATCH, _runs_of
from tests.e2e.test_deployment import DEPLOYMENT, REPO_ROOT, make_deploy, start_make
from tests.helpers import SMALL_MIN_SPLIT_ROWS, flow_run_log, server_client, wait_for
from tools.snapshots import main as write_snapshot

pytestmark = pytest.mark.e2e

SNAPSHOTS = 20  # the corpus cut in 20 parts: 1,250 real reviews per snapshot
TRIGGER_QUIET = timedelta(seconds=20)  # the deployed hour, shortened: snapshot 3 lands minutes later
RUN_TIMEOUT = 900  # seconds for one triggered retraining, on two busy cores
SMALL = {  # every option the CLI's --skip-unchanged run passes too, so the two configs are equal
    "seed": 42,
    "skip_unchanged": True,
    "data": {"num_words": 1000, "maxlen": 80},
    "model": {"variants": ["embedding"]},
    "training": {"max_epochs": 3, "learning_rate": 0.01, "restarts": 0, "baseline_margin": 1.0},
    "checks": {"min_split_rows": SMALL_MIN_SPLIT_ROWS},
    "champion": {"promote": "auto"},
}
SMALL_OPTIONS = [
    "--seed", "42", "--num-words", "1000", "--maxlen", "80", "--variants", "embedding", "--max-epochs", "3",
    "--learning-rate", "0.01", "--restarts", "0", "--baseline-margin", "1", "--min-split-rows",
    str(SMALL_MIN_SPLIT_ROWS), "--promote", "auto",
]  # fmt: skip


class Steps:
    """Each step's wall time, printed as it ends."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def done(self, step: str) -> None:
        now = time.monotonic()
        print(f"step took {now - self.started:6.1f} s: {step}", flush=True)
        self.started = now


def _land_snapshot(prefix: str, endpoint: str) -> None:
    assert write_snapshot(["--into", prefix, "--count", str(SNAPSHOTS), "--s3-endpoint-url", endpoint]) == 0


def _shorten_trigger(client, deployment_id) -> None:
    """The retraining's trigger as deployed, with a quiet time of seconds instead of an hour and no
    wait for more snapshots: the steps below land minutes apart, not hours."""
    from prefect.events.schemas.automations import AutomationCore

    (automation,) = [
        automation
        for automation in client.read_automations()
        if any(getattr(action, "deployment_id", None) == deployment_id for action in automation.actions)
    ]
    trigger = automation.trigger.model_copy(update={"within": TRIGGER_QUIET})
    actions = [action.model_copy(update={"schedule_after": timedelta(0)}) for action in automation.actions]
    core = AutomationCore(
        **automation.model_dump(include={"name", "description", "enabled", "tags"}), trigger=trigger, actions=actions
    )
    client.update_automation(automation.id, core)


def _look_and_retrain(client, watch, retraining, known: set) -> object:
    """Runs the watch deployment once; returns the retraining run its event triggered, once final."""
    client.create_flow_run_from_deployment(watch.id)
    started = wait_for(
        lambda: next((run for run in _runs_of(client, retraining.id) if run.id not in known), None),
        120,
        "the watcher's event triggered no retraining",
    )
    run = wait_for(
        lambda: (latest := client.read_flow_run(started.id)).state.is_final() and latest,
        RUN_TIMEOUT,
        "the retraining did not finish",
    )
    assert run.state.is_completed(), flow_run_log(client, run.id)[-4000:]
    known.add(run.id)
    return run


def _latest_published(store: str) -> tuple[dict, dict]:
    """The manifest and the gate's decision of the newest published run."""
    latest = [run for run in list_runs(store) if run["complete"]][-1]
    manifest = fs.read_json(fs.join(latest["uri"], "manifest.json"))
    decision = fs.read_json(fs.join(store, "champion-decisions", f"{manifest['run_id']}.json"))
    return manifest, decision


def _report_artifact(client, flow_run_id) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    (artifact,) = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=["imdb-run-report"])
        )
    )
    return str(artifact.data)


def test_snapshots_that_land_retrain_through_the_watcher_and_nothing_new_retrains_nothing(
    s3_server, prefect_server, s3_prefix, tmp_path
):
    port, server_environment = prefect_server
    environment = {**server_environment, **s3_server.environment()}
    prefix, store = f"{s3_prefix}/reviews", f"{s3_prefix}/store"
    small = {**SMALL, "data": {**SMALL["data"], "source": prefix}, "storage": {"root": store}}
    steps = Steps()
    for _ in range(2):
        _land_snapshot(prefix, s3_server.endpoint)
    first_two = [f"date=2026-12-0{day}" for day in (1, 2)]
    steps.done("snapshots 1 and 2 land")

    make_deploy(port, environment, f"SOURCE={prefix}")
    with server_client(environment) as client:
        retraining, watch = client.read_deployment_by_name(DEPLOYMENT), client.read_deployment_by_name(WATCH)
        assert retraining.parameters["config"]["data"]["source"] == prefix  # the one place the data is set
        for deployment in (retraining, watch):  # the test looks when it wants, not every 15 minutes
            for schedule in deployment.schedules:
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
            for scheduled in _runs_of(client, deployment.id, automated_only=False):
                client.delete_flow_run(scheduled.id)
        from prefect.client.schemas.actions import DeploymentUpdate

        client.update_deployment(retraining.id, DeploymentUpdate(parameters={"config": small}))
        client.update_deployment(
            watch.id, DeploymentUpdate(parameters={"config": {"source": prefix, "storage": {"root": store}}})
        )
        _shorten_trigger(client, retraining.id)
    steps.done("make deploy SOURCE=<prefix>")

    worker = start_make(["worker", f"PREFECT_PORT={port}"], environment, tmp_path / "worker.log")
    known: set = set()
    try:
        with server_client(environment) as client:
            first = _look_and_retrain(client, watch, retraining, known)
            manifest, decision = _latest_published(store)
            assert manifest["source"]["snapshots"] == first_two and decision["promoted"], decision
            assert "no champion yet" in decision["reason"]
            first_report = _report_artifact(client, first.id)
            steps.done("the watcher announces snapshots 1 and 2; the triggered retraining trains and promotes")

            look = client.create_flow_run_from_deployment(watch.id)
            wait_for(lambda: client.read_flow_run(look.id).state.is_final(), 120, "the watcher's look hung")
            assert "every one trained on by a published run" in flow_run_log(client, look.id)
            time.sleep(TRIGGER_QUIET.total_seconds())  # past the trigger's quiet time: an event would start a run
            assert len(_runs_of(client, retraining.id)) == len(known)
            steps.done("the watcher's next look announces nothing and starts no run")

        command = ["-m", "flows.imdb_pipeline", "--source", prefix, "--storage", store, "--skip-unchanged"]
        skipped = subprocess.run(
            [sys.executable, *command, *SMALL_OPTIONS, "--work-dir", str(tmp_path / "work")],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert skipped.returncode == 0, skipped.stderr[-3000:]
        lines = skipped.stdout.strip().splitlines()
        assert lines[-2:] == [
            f"unchanged: same data set {manifest['dataset_key']} as run {manifest['run_id']}",
            f"run: {fs.join(store, 'runs', manifest['run_id'])}",
        ], skipped.stdout
        steps.done("a --skip-unchanged run with the same data, code and config does nothing")

        _land_snapshot(prefix, s3_server.endpoint)
        with server_client(environment) as client:
            second = _look_and_retrain(client, watch, retraining, known)
            manifest_3, decision_3 = _latest_published(store)
            second_report = _report_artifact(client, second.id)
        steps.done("snapshot 3 lands; the watcher announces it; a retraining runs on the new window")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

    assert manifest_3["source"]["snapshots"] == [*first_two, "date=2026-12-03"]
    assert manifest_3["dataset_key"] != manifest["dataset_key"]
    # The champion was trained on another data set: both models scored this run's raw test reviews.
    assert "on this run's raw test reviews, each through its own vocabulary" in decision_3["reason"], decision_3
    assert decision_3["promoted"] or decision_3["reason"].endswith("; kept")
    # The UI shows which snapshots and data set each run used.
    for report, used in ((first_report, manifest), (second_report, manifest_3)):
        assert "snapshots " + ", ".join(f"`{name}`" for name in used["source"]["snapshots"]) in report
        assert f"data set key: `{used['dataset_key']}`" in report
    print(json.dumps({"first": decision["reason"], "third": decision_3["reason"]}, indent=1))
