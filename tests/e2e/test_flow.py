"""The whole flow end to end, under one session-scoped Prefect test harness, on generated data
downloaded over HTTP from a local server (the real download path)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

from flows.imdb_pipeline import main
from tests.helpers import (
    drift_events,
    latest_flow_run_log,
    named_events,
    run_error_line,
    sha256,
    small_run_options,
    stage_states,
    write_imdb_npz,
)

pytestmark = pytest.mark.e2e

VARIANT_FILES = ["accuracy.png", "history.json", "loss.png", "metrics.json", "model.keras"]
RUN_FILES = sorted(
    [
        "comparison.png",
        "data_checks.json",
        "data_labels.png",
        "data_lengths.png",
        "manifest.json",
        "metrics.json",
        "model_card.md",
        "report.md",
    ]
    + [f"{variant}/{name}" for variant in ("embedding", "onehot") for name in VARIANT_FILES]
)


def test_flow_publishes_a_complete_verifiable_run(prefect_harness, imdb_npz, http_server, tmp_path, capsys):
    base, _ = http_server
    options = small_run_options(f"{base}/imdb.npz", tmp_path, "--source-sha256", sha256(imdb_npz))
    assert main(options) == 0
    output = capsys.readouterr().out.strip().splitlines()
    assert output[-1].startswith("run: ")
    run_dir = Path(output[-1].removeprefix("run: "))
    assert run_dir.parent == tmp_path / "store" / "runs"
    assert any(line.startswith("onehot ") for line in output) and any(line.startswith("embedding ") for line in output)

    published = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    assert published == RUN_FILES
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert sorted(entry["path"] for entry in manifest["files"]) == [f for f in RUN_FILES if f != "manifest.json"]
    for entry in manifest["files"]:
        assert sha256(run_dir / entry["path"]) == entry["sha256"]
        assert (run_dir / entry["path"]).stat().st_size == entry["bytes"]
    assert manifest["source"]["sha256"] == sha256(imdb_npz)
    assert manifest["config"]["data"]["maxlen"] == 20
    data_dir = tmp_path / "store" / "data" / manifest["dataset_key"]
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "data_checks.json",
        "profile.json",
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]
    checks = json.loads((run_dir / "data_checks.json").read_text())
    assert json.loads((data_dir / "data_checks.json").read_text()) == {"statistics": checks["statistics"]}
    assert {name: split["rows"] for name, split in checks["statistics"]["splits"].items()} == {
        "train": 192,
        "val": 48,
        "test": 120,
    }
    assert [finding["level"] for finding in checks["checks"]] == ["ok"] * 5 and checks["drift"] is None
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]  # local copies go once published

    test_table = pq.read_table(data_dir / "test.parquet")
    token_ids = np.array(test_table.column("tokens").to_pylist(), dtype="int32")
    labels = test_table.column("label").to_numpy()
    all_metrics = json.loads((run_dir / "metrics.json").read_text())
    for variant in ("onehot", "embedding"):
        model = keras.models.load_model(run_dir / variant / "model.keras")
        scores = model.predict(token_ids, verbose=0).reshape(-1)
        accuracy = float(np.mean((scores > 0.5) == labels))
        assert accuracy == pytest.approx(all_metrics[variant]["accuracy"])
        history = json.loads((run_dir / variant / "history.json").read_text())
        assert len(history["epochs"]) == 3
    report = (run_dir / "report.md").read_text()
    assert "| onehot | 481 | 3 | 3 |" in report and "| embedding | 1,009 | 3 | 3 |" in report  # params, seed, epochs
    assert manifest["dataset_key"] in report and "![comparison](comparison.png)" in report
    assert "## Data" in report and "| train | 192 |" in report and "![review lengths](data_lengths.png)" in report
    card = (run_dir / "model_card.md").read_text()
    for words in (
        "## Intended use",
        "## Test metrics",
        "## Under-trained, stalls and restarts",
        "## How to score",
        "the last 20 tokens",
        "47 most frequent words",
        "safe_mode=True",
    ):
        assert words in card

    # the baseline stands beside the variants in metrics.json, the summary, the report and the card
    bar = all_metrics["baseline"]
    assert bar["examples"] == test_table.num_rows and 0.9 < bar["accuracy"] <= 1 and 0.9 < bar["val_accuracy"] <= 1
    row = f"| baseline | 51 | - | - | - | bar | {bar['val_accuracy']:.4f} | {bar['loss']:.4f} | {bar['accuracy']:.4f} |"
    assert row in report and row in card
    assert any(
        line.split()
        == [
            "baseline",
            "51",
            "-",
            "-",
            "-",
            "bar",
            f"{bar['val_accuracy']:.4f}",
            f"{bar['loss']:.4f}",
            f"{bar['accuracy']:.4f}",
            f"{bar['roc_auc']:.4f}",
            "n/a",
        ]
        for line in output
    )
    beaten = [v for v in ("onehot", "embedding") if all_metrics[v]["accuracy"] < bar["accuracy"]]
    verdict = (
        "**The baseline beats every RNN variant**"
        if len(beaten) == 2
        else f"**The baseline beats {beaten[0]}**"
        if beaten
        else "Every RNN variant beats the baseline"
    )
    assert verdict in report and verdict in card


def test_several_seeds_train_side_by_side_and_the_best_val_loss_is_published(
    prefect_harness, imdb_npz, tmp_path, capsys
):
    from tasks.training.jobs import derive_seed

    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "2", "--seeds", "2")
    assert main(options) == 0
    out = capsys.readouterr().out
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    result = json.loads((run_dir / "manifest.json").read_text())
    history = json.loads((run_dir / "embedding" / "history.json").read_text())
    assert stage_states(("train-embedding-seed-3", f"train-embedding-seed-{derive_seed(3, 1)}")) == {
        "train-embedding-seed-3": "Completed",
        f"train-embedding-seed-{derive_seed(3, 1)}": "Completed",
    }
    card = (run_dir / "model_card.md").read_text()
    seeds = [
        line for line in card.splitlines() if line.startswith("| embedding | ") and line.split(" | ")[1].isdigit()
    ]  # not the summary row
    assert len(seeds) == 2  # both seeds, with their test accuracy, in the card (and the report)
    best_val_losses = {int(line.split(" | ")[1]): float(line.split(" | ")[5]) for line in seeds}
    published_seed = min(best_val_losses, key=best_val_losses.get)
    assert history["seed"] == published_seed and result["config"]["training"]["seeds"] == 2
    accuracies = [float(line.split(" | ")[6]) for line in seeds]
    spread = card.split("- embedding over 2 seeds: accuracy ", 1)[1].split(",", 1)[0]
    mean, std = (float(part) for part in spread.split(" ± "))
    assert mean == pytest.approx(np.mean(accuracies), abs=1e-4) and std == pytest.approx(np.std(accuracies), abs=1e-4)
    assert f"{spread} (2)" in out  # the summary table printed at the end shows it too
    log = latest_flow_run_log()  # each seed trained in its own process; its epochs reach the run's log
    for seed in (3, derive_seed(3, 1)):
        for epoch in (1, 2):
            assert f"embedding seed {seed} epoch {epoch}/2: loss=" in log, log[-3000:]


def test_a_variant_out_of_epochs_is_not_restarted_and_is_published_marked_and_never_promoted(
    prefect_harness, imdb_npz, tmp_path, capsys, caplog
):
    """One epoch leaves the RNN far below the baseline's val accuracy on the generated data: with the
    default margin it is under-trained, but it ran its whole budget without early stopping, so a
    restart (with no more epochs) cannot help: the guard says so instead of restarting, and the gate
    refuses it."""
    options = small_run_options(
        str(imdb_npz),
        tmp_path,
        "--variants",
        "embedding",
        "--max-epochs",
        "1",
        "--learning-rate",
        "0.001",
        "--restarts",
        "1",
        "--baseline-margin",
        "0.03",
        "--promote",
        "always",
    )
    with caplog.at_level("WARNING", logger="tasks.training.fit"):
        assert main(options) == 0
    out = capsys.readouterr().out
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    guard = "UNDER-TRAINED: out of epochs (1 attempt)"
    assert metrics["embedding"]["under_trained"] and metrics["embedding"]["guard"] == guard
    assert metrics["embedding"]["val_accuracy"] < metrics["baseline"]["val_accuracy"] - 0.03
    history = json.loads((run_dir / "embedding" / "history.json").read_text())
    assert [attempt["under_trained"] for attempt in history["attempts"]] == [True]
    assert "out of epochs (all 1 ran without early stopping); no restart" in caplog.text
    assert "restart 1/1" not in caplog.text
    assert any(
        line.split()[:7] == ["embedding", "1,009", str(history["seed"]), "1", "1", "UNDER-TRAINED:", "out"]
        for line in out.splitlines()
    )
    assert "champion: kept (every variant is under-trained" in out
    assert not (tmp_path / "store" / "champion.json").exists()
    assert guard in (run_dir / "report.md").read_text()


def _truncated_npz(tmp_path: Path) -> str:
    path = write_imdb_npz(tmp_path / "whole.npz", train=20, test=10)
    broken = tmp_path / "truncated.npz"
    broken.write_bytes(path.read_bytes()[:-200])
    return str(broken)


@pytest.mark.parametrize(
    "case, message",
    [
        ("checksum", "does not match the expected"),
        ("unreachable", "Connection refused"),
        ("truncated", "cannot read imdb.npz"),
        ("missing", "does not exist"),
        ("unwritable", "is not writable"),
    ],
)
def test_bad_input_fails_with_one_line_and_publishes_nothing(
    case, message, prefect_harness, imdb_npz, http_server, closed_port_url, tmp_path, capsys
):
    base, _ = http_server
    source, extra = str(imdb_npz), []
    if case == "checksum":
        source, extra = f"{base}/imdb.npz", ["--source-sha256", "1" * 64]
    elif case == "unreachable":
        source = closed_port_url
    elif case == "truncated":
        source = _truncated_npz(tmp_path)
    elif case == "missing":
        source = str(tmp_path / "absent.npz")
    options = small_run_options(source, tmp_path, *extra)
    if case == "unwritable":
        (tmp_path / "blocker").write_text("a file, not a folder")
        options += ["--storage", str(tmp_path / "blocker" / "store")]
    assert main(options) == 1
    captured = capsys.readouterr()
    assert message in run_error_line(captured)
    assert "run: " not in captured.out
    assert not (tmp_path / "store" / "runs").exists()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_the_prefect_ui_shows_progress_report_metrics_links_and_events(prefect_harness, imdb_npz, tmp_path, capsys):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    assert main(small_run_options(str(imdb_npz), tmp_path, "--max-epochs", "2")) == 0
    run_uri = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: ")
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        assert flow_run.name.endswith("-imdb.npz-onehot+embedding")
        assert {"source:imdb.npz", "variant:onehot", "variant:embedding"} <= set(flow_run.tags)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
        by_key = {artifact.key: artifact for artifact in artifacts}
        assert set(by_key) == {
            "imdb-training-onehot",
            "imdb-training-embedding",
            "imdb-run-report",
            "imdb-variant-metrics",
            "imdb-run-files",
            "imdb-data-checks",
        }
        for variant in ("onehot", "embedding"):
            progress = by_key[f"imdb-training-{variant}"]
            assert progress.type == "progress" and float(progress.data) == 100.0
            # the last epochs as a table, then the variant's two curves inline
            assert "| 2 | " in progress.description and progress.description.count("](data:image/png;base64,") == 2
        report = by_key["imdb-run-report"].data
        assert by_key["imdb-run-report"].type == "markdown" and run_uri.rsplit("/", 1)[-1] in report
        assert (
            report.count("](data:image/png;base64,") == 7 and ".png)" not in report
        )  # every plot inline, data plots too
        table = by_key["imdb-variant-metrics"]
        assert table.type == "table" and "test_accuracy" in str(table.data)
        assert [record["variant"] for record in json.loads(table.data)] == ["onehot", "embedding", "baseline"]
        for record in json.loads(table.data):
            assert record["test_loss"] == round(record["test_loss"], 4)
        files = by_key["imdb-run-files"].data
        for path in (
            "embedding/model.keras",
            "onehot/loss.png",
            "manifest.json",
            "report.md",
            "model_card.md",
            "data_checks.json",
            "data_lengths.png",
        ):
            assert f"`{run_uri}/{path}`" in files

        promoted = named_events(
            client, "imdb-rnn-pipeline.champion.promoted", lambda event: event.payload.get("run_uri") == run_uri
        )
        assert promoted and promoted[0].payload["variant"] in ("onehot", "embedding")
        data_artifact = by_key["imdb-data-checks"]
        assert data_artifact.type == "markdown" and "OK train/test overlap: passed" in data_artifact.data
        assert "not measured (no champion yet)" in data_artifact.data

    # Reviews five times as long: another data set than the champion's, drifted in length.
    arrays = dict(np.load(write_imdb_npz(tmp_path / "long.npz", seed=1), allow_pickle=True))  # generated here
    for key in ("x_train", "x_test"):
        arrays[key] = np.array([review * 5 for review in arrays[key]] + [[]], dtype=object)[:-1]
    np.savez(tmp_path / "long.npz", **arrays)
    assert (
        main(
            small_run_options(
                str(tmp_path / "long.npz"), tmp_path, "--variants", "embedding", "--max-epochs", "1", "--maxlen", "100"
            )
        )
        == 0
    )
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    drift = json.loads((run_dir / "data_checks.json").read_text())["drift"]
    assert "length" in drift["drifted"] and drift["distances"]["length"] > 0.1
    assert "**drift above 0.1** in length" in (run_dir / "report.md").read_text()
    events = drift_events(drift["dataset_key"])
    assert events and events[0].payload["distances"]["length"] == pytest.approx(drift["distances"]["length"])
    assert events[0].payload["reference_dataset_key"] == drift["reference_dataset_key"]


def test_a_failed_run_emits_an_event_for_automations(prefect_harness, tmp_path, capsys):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    assert main(small_run_options(str(tmp_path / "absent.npz"), tmp_path)) == 1
    with get_client(sync_client=True) as client:
        failed_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        assert failed_run.state.is_failed()
        matching = named_events(
            client, "imdb-rnn-pipeline.run.failed", lambda e: e.resource.id == f"prefect.flow-run.{failed_run.id}"
        )
    assert matching and "does not exist" in matching[0].payload["message"]


def test_reruns_are_served_from_cache_per_stage_and_variant(prefect_harness, imdb_npz, tmp_path, capsys):
    stages = ("download", "split", "pad-and-store", "train-embedding")
    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "2")
    assert main(options) == 0
    assert set(stage_states(stages).values()) == {"Completed"}
    assert main(options) == 0
    assert stage_states(stages) == dict.fromkeys(stages, "Cached")
    runs = sorted((tmp_path / "store" / "runs").iterdir())
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert metrics[0] == metrics[1]  # the cached model is the same model
    keys = {json.loads((run / "manifest.json").read_text())["dataset_key"] for run in runs}
    assert len(runs) == 2 and len(keys) == 1  # one stored data set, reused
    assert len(list((tmp_path / "store" / "data").iterdir())) == 1

    both = small_run_options(str(imdb_npz), tmp_path, "--variants", "onehot,embedding", "--max-epochs", "2")
    assert main(both) == 0
    states = stage_states((*stages, "train-onehot"))
    assert states["train-embedding"] == "Cached" and states["train-onehot"] == "Completed"

    assert main([*options, "--refresh"]) == 0
    assert set(stage_states(stages).values()) == {"Completed"}
    capsys.readouterr()


def test_the_progress_artifact_moves_every_epoch(prefect_harness, imdb_npz, tmp_path, capsys, monkeypatch):
    """After each epoch's update, the artifact as the Prefect API serves it (read back right then)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId

    from tasks.runtime import ui

    seen, real_update = [], ui.update_progress_artifact

    def update_and_read_back(artifact_id, progress, description=None, **options):
        result = real_update(artifact_id, progress, description=description, **options)
        with get_client(sync_client=True) as client:
            [served] = client.read_artifacts(artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id])))
        seen.append((served.key, float(served.data), served.description))
        return result

    monkeypatch.setattr(ui, "update_progress_artifact", update_and_read_back)
    assert (
        main(
            small_run_options(
                str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "3", "--patience", "5"
            )
        )
        == 0
    )
    capsys.readouterr()
    assert [key for key, _, _ in seen] == ["imdb-training-embedding"] * 4  # three epochs, then the finish
    assert [round(progress, 1) for _, progress, _ in seen] == [33.3, 66.7, 100.0, 100.0]
    for epoch, (_, _, description) in enumerate(seen[:3], start=1):
        assert description.startswith(f"embedding epoch {epoch}/3 (")  # one seed: the variant names it
        table_rows = [line for line in description.splitlines() if line.startswith("| ") and line[2].isdigit()]
        assert [row.split(" | ")[0] for row in table_rows] == [f"| {n}" for n in range(1, epoch + 1)]
    assert seen[3][2].startswith("embedding: done after 3 epochs")


def test_a_surprise_keeps_its_traceback_in_the_run_log_and_ends_with_one_error_line(
    prefect_harness, imdb_npz, tmp_path, capsys, monkeypatch
):
    from tasks.training import baseline

    def broken_baseline(dataset, max_rows):
        raise RuntimeError("a bug nobody expected")

    monkeypatch.setattr(baseline, "fit_bag_of_words", broken_baseline)
    assert main(small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: unexpected RuntimeError: a bug nobody expected"
    log = latest_flow_run_log()  # what the UI and a worker's log show
    assert "Traceback (most recent call last)" in log and "in broken_baseline" in log, log[-3000:]
    assert "RuntimeError: a bug nobody expected" in log


def test_auto_records_why_it_fell_back_in_the_manifest_and_report(
    prefect_harness, closed_port_url, tmp_path, capsys, monkeypatch
):
    """The canonical file unreachable (a closed port stands in for its URL): the run trains on the
    offline corpus and says why in its manifest and report."""
    from tasks.data import sources

    monkeypatch.setattr(sources, "CANONICAL_URL", closed_port_url)
    options = small_run_options("auto", tmp_path, "--variants", "embedding", "--max-epochs", "1")
    assert main(options) == 0
    out = capsys.readouterr().out
    assert out.startswith("data: offline corpus: 25,000 real IMDB reviews")
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("run: "))
    source = json.loads((run_dir / "manifest.json").read_text())["source"]
    assert source["kind"] == "offline" and "127.0.0.1" in source["fallback_reason"]
    assert (
        f"- fell back to the offline corpus because: {source['fallback_reason']}" in (run_dir / "report.md").read_text()
    )
