"""A sweep on this machine (no Dask): every point x seed trains as its own task, in a child process
each, and the run shows the sweep in its report, its files and the UI's table artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.imdb_pipeline import main
from tests.helpers import latest_task_runs, small_run_options
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_local_sweep_trains_each_point_once_and_shows_the_table(imdb_npz, tmp_path, capsys):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    options = small_run_options(str(imdb_npz), tmp_path, "--sweep", "embedding_dim=4,8", "learning_rate=0.01,0.02")
    assert main(options) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    assert verify_main([str(run_dir)]) == 0
    names = sorted(run.name for run in latest_task_runs() if run.name.startswith("train-"))
    # one-hot reads no embedding: 2 points for it, 4 for embedding, one seed each
    assert names == sorted(
        [f"train-onehot-seed-3-learning_rate={rate}" for rate in ("0.01", "0.02")]
        + [
            f"train-embedding-seed-3-embedding_dim={dim}-learning_rate={rate}"
            for dim in (4, 8)
            for rate in ("0.01", "0.02")
        ]
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= {"onehot", "embedding"}
    report = (run_dir / "report.md").read_text()
    assert report.count("| embedding | embedding_dim=") == 4 and report.count("| onehot | learning_rate=") == 2
    assert (run_dir / "sweep.png").is_file()
    flow_run_id = latest_task_runs()[0].flow_run_id
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["imdb-sweep"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    rows = json.loads(table.data)
    assert [row["variant"] for row in rows] == ["onehot"] * 2 + ["embedding"] * 4
    for variant in ("onehot", "embedding"):
        published = [row for row in rows if row["variant"] == variant and row["published"] == "yes"]
        assert len(published) == 1
        lowest = min(float(row["best_val_loss"]) for row in rows if row["variant"] == variant)
        assert float(published[0]["best_val_loss"]) == lowest
