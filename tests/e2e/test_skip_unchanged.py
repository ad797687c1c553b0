"""`--skip-unchanged`: a run whose data, code and config are those of the latest published run trains
and publishes nothing, names that run and says so in its flow run's state; a changed option trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.imdb_pipeline import main
from tests.helpers import latest_task_runs, small_run_options

pytestmark = pytest.mark.e2e


def latest_flow_run_state():
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0].state


def test_an_unchanged_run_publishes_nothing_and_names_the_latest_run(prefect_harness, imdb_npz, tmp_path, capsys):
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1", "--restarts", "0"
    )
    assert main(options) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    run_dir = Path(first.removeprefix("run: "))
    dataset_key = json.loads((run_dir / "manifest.json").read_text())["dataset_key"]

    assert main([*options, "--skip-unchanged", "--refresh"]) == 0
    unchanged = f"unchanged: same data set {dataset_key} as run {run_dir.name}"
    assert capsys.readouterr().out.strip().splitlines() == [unchanged, first]
    assert list(run_dir.parent.iterdir()) == [run_dir]
    state = latest_flow_run_state()
    assert (state.name, state.message) == ("Completed", unchanged)
    names = [task_run.name for task_run in latest_task_runs()]
    assert any(name.startswith("skip-unchanged") for name in names)
    assert not any(name.startswith(("split", "train")) for name in names)  # stopped before the data was split

    assert main([*options, "--skip-unchanged", "--seed", "4"]) == 0
    retrained = capsys.readouterr().out.strip().splitlines()
    assert not any(line.startswith("unchanged: ") for line in retrained)
    assert retrained[-1] != first and len(list(run_dir.parent.iterdir())) == 2
