"""The data watch on a real Prefect server: `make deploy SOURCE=<prefix>` points both deployments at a
prefix of two snapshots, the watch deployment's run (by `prefect worker`) announces them, a burst of
such events starts exactly one retraining run, and once a published run has trained on the snapshots
the watcher announces nothing. No training: the triggered run is only checked to be scheduled."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tasks.runtime.ui import DATA_ARRIVED_EVENT, data_resource_id
from tests.e2e.test_deployment import DEPLOYMENT, PREFECT, REPO_ROOT, make_deploy
from tests.helpers import flow_run_log, server_client, wait_for
from tests.unit.test_data_watch import publish_trained_run, write_snapshot

pytestmark = pytest.mark.e2e

WATCH = "imdb-data-watch/watch-reviews"
BURST = 3  # events emitted right after the watcher's own, as several snapshots landing together would
# Enough for the server's trigger service to have acted on every event of the burst (it acts on each
# as it arrives, in well under a second here): a second run would have appeared by then.
SETTLE_SECONDS = 10
EMIT_BURST = """
import sys
from tasks.runtime.ui import announce_new_data
for index in range(int(sys.argv[2])):
    announce_new_data(sys.argv[1], [f"date=2026-12-0{3 + index}"], ["date=2026-12-01"])
"""
MARKER = "imdb-rnn-pipeline.test.marker"
EMIT_MARKER = f"""
from prefect.events import emit_event
emit_event(event="{MARKER}", resource={{"prefect.resource.id": "imdb-rnn-pipeline.test"}})
"""


def _runs_of(client, deployment_id, automated_only: bool = True) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return [run for run in runs if not (automated_only and run.auto_scheduled)]  # not the cron's or interval's own


def _events_named(client, name: str, resource_id: str | None = None) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    resource = EventResourceFilter(id=[resource_id]) if resource_id else EventResourceFilter()
    return client.read_events(EventFilter(event=EventNameFilter(name=[name]), resource=resource), limit=50).events


def _arrived_events(client, prefix: Path) -> list:
    return _events_named(client, DATA_ARRIVED_EVENT, data_resource_id(str(prefix)))


def test_the_watcher_announces_new_snapshots_and_a_burst_starts_one_retraining(prefect_server, tmp_path):
    port, environment = prefect_server
    prefix, store = tmp_path / "reviews", tmp_path / "store"
    write_snapshot(prefix, "date=2026-12-01", start=0)
    write_snapshot(prefix, "date=2026-12-02", start=10)
    make_deploy(port, environment, f"SOURCE={prefix}")

    with server_client(environment) as client:
        retraining, watch = client.read_deployment_by_name(DEPLOYMENT), client.read_deployment_by_name(WATCH)
        # The templated source reached both deployments as the string given.
        assert retraining.parameters["config"]["data"]["source"] == str(prefix)
        assert watch.parameters["config"]["source"] == str(prefix)
        assert watch.schedules[0].schedule.interval == timedelta(minutes=15)
        assert watch.entrypoint == "flows/data_watch.py:imdb_data_watch" and watch.work_pool_name == "imdb-process"
        # The interval's own runs would look at the prefix against outputs/: the test starts its own.
        client.update_deployment_schedule(watch.id, watch.schedules[0].id, active=False)
        for earlier in [*_runs_of(client, watch.id, False), *_runs_of(client, retraining.id)]:
            client.delete_flow_run(earlier.id)
        look = client.create_flow_run_from_deployment(
            watch.id, parameters={"config": {"source": str(prefix), "storage": {"root": str(store)}}}
        )

    worker = subprocess.run(
        [PREFECT, "worker", "start", "--pool", "imdb-process", "--run-once"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    with server_client(environment) as client:
        assert client.read_flow_run(look.id).state.is_completed()
        log = flow_run_log(client, look.id)
        assert "2 of 2 snapshot(s) not trained on yet: date=2026-12-01, date=2026-12-02" in log, log[-2000:]
        (event,) = wait_for(lambda: _arrived_events(client, prefix), 60, "the watcher's event did not arrive")
        assert event.payload == {
            "prefix": str(prefix),
            "new_snapshots": ["date=2026-12-01", "date=2026-12-02"],
            "snapshots": 2,
        }
        assert event.resource.id == f"imdb-rnn-pipeline.data.{prefix}"

    emitted = subprocess.run(
        [sys.executable, "-c", EMIT_BURST, str(prefix), str(BURST)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert emitted.returncode == 0, emitted.stderr[-2000:]
    with server_client(environment) as client:
        wait_for(lambda: len(_arrived_events(client, prefix)) == 1 + BURST, 60, "the burst did not arrive")
        (run,) = wait_for(lambda: _runs_of(client, retraining.id), 60, "no retraining run was triggered")
        time.sleep(SETTLE_SECONDS)
        runs = _runs_of(client, retraining.id)
        assert [other.id for other in runs] == [run.id], f"{len(runs)} retraining runs for one burst of events"
        # schedule_after: the run waits, so that snapshots landing meanwhile are read by it.
        assert run.state.is_scheduled() and run.expected_start_time - event.occurred > timedelta(minutes=9)
        client.delete_flow_run(run.id)  # never trained: no worker of a later test picks it up

    # A published run that read both snapshots: the next look announces nothing.
    publish_trained_run(store, str(prefix), "all", "20261207T000000Z-abcdef", tmp_path)
    looked = subprocess.run(
        [sys.executable, "-m", "flows.data_watch", "--source", str(prefix), "--storage", str(store)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert looked.returncode == 0, looked.stderr[-3000:]
    assert looked.stdout.splitlines()[-2:] == [
        f"{prefix}: 2 snapshot(s), every one trained on by a published run",
        "new: ",
    ], looked.stdout
    # Events are stored in batches: a marker sent after the look has ended arrives after anything
    # the look sent, so once it is readable an announcement would be too.
    marked = subprocess.run(
        [sys.executable, "-c", EMIT_MARKER], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert marked.returncode == 0, marked.stderr[-2000:]
    with server_client(environment) as client:
        wait_for(lambda: _events_named(client, MARKER), 60, "the marker event did not arrive")
        assert len(_arrived_events(client, prefix)) == 1 + BURST


def test_with_nothing_to_watch_the_watcher_says_so_and_completes(prefect_server, tmp_path):
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    _, environment = prefect_server
    looked = subprocess.run(
        [sys.executable, "-m", "flows.data_watch", "--storage", str(tmp_path / "store")],  # --source auto
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert looked.returncode == 0, looked.stderr[-3000:]
    assert looked.stdout.splitlines()[-2:] == ["nothing to watch: auto is not a folder of own reviews", "new: "]
    with server_client(environment) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["imdb-data-watch"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        assert run.state.is_completed()
        assert "nothing to watch: auto is not a folder of own reviews" in flow_run_log(client, run.id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        task_names = {task.name.rsplit("-", 1)[0] for task in tasks}
    assert task_names == {"find-new-snapshots"}  # no announce-new-data: nothing emitted


def test_snapshots_written_to_s3_are_watched_there(s3_server, s3_prefix, tmp_path, capsys):
    from tasks.data.watch import find_new_snapshots
    from tools.snapshots import main as write_snapshots

    prefix, store = f"{s3_prefix}/reviews", f"{s3_prefix}/store"
    for _ in range(3):
        assert write_snapshots(["--into", prefix, "--count", "2", "--s3-endpoint-url", s3_server.endpoint]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {prefix}/date=2026-12-01/reviews.csv",
        f"wrote {prefix}/date=2026-12-02/reviews.parquet",
        f"all 2 snapshots are written under {prefix}: nothing to write",
    ]
    assert find_new_snapshots(prefix, store).new == ["date=2026-12-01", "date=2026-12-02"]
    publish_trained_run(store, prefix, "latest", "20261207T000000Z-abcdef", tmp_path)
    assert find_new_snapshots(prefix, store).new == ["date=2026-12-01"]
