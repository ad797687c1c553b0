"""`make bench` on tiny data: it runs both implementations and writes its outputs (timing is not
asserted here: the benchmark reports it, a test would only flake)."""

from __future__ import annotations

import json
import statistics

import pytest

from tests.helpers import SMALL_MIN_SPLIT_ROWS
from tools import bench


def test_bench_runs_on_tiny_data_and_writes_results(tmp_path, capsys):
    out = tmp_path / "bench"
    history = tmp_path / "history.jsonl"
    assert (
        bench.main(
            [
                "--section",
                "training",
                "--rows",
                "64",
                "--epochs",
                "2",
                "--warmup",
                "0",
                "--variants",
                "onehot",
                "--out",
                str(out),
                "--history",
                str(history),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == {"num_words": 500, "maxlen": 100, "batch_size": 64, "learning_rate": 0.0001, "seed": 42}
    assert (results["rows"], results["epochs"], results["warmup"]) == (64, 2, 0)
    by_implementation = {r["implementation"]: r for r in results["results"]}
    assert [r["variant"] for r in results["results"]] == ["onehot", "onehot"]
    assert set(by_implementation) == {"baseline", "ours"}
    for result in results["results"]:
        assert result["parameters"] == 4_081
        assert len(result["epoch_seconds"]) == 2 and all(seconds > 0 for seconds in result["epoch_seconds"])
        assert result["median_epoch_seconds"] == pytest.approx(statistics.median(result["epoch_seconds"]), abs=1e-3)
        # Right answers out of the 16 test reviews (a quarter of --rows 64): a whole number of 16ths.
        correct = result["test_accuracy"] * 16
        assert correct == pytest.approx(round(correct), abs=1e-9) and 0 <= round(correct) <= 16
        assert result["peak_rss_mib"] > 100  # TensorFlow alone is more
    base, ours = by_implementation["baseline"], by_implementation["ours"]
    [row] = results["comparison"]
    assert row["variant"] == "onehot" and row["parameters"] == [4_081, 4_081]
    assert row["epoch_seconds"] == [base["median_epoch_seconds"], ours["median_epoch_seconds"]]
    assert row["time_ratio"] == pytest.approx(ours["median_epoch_seconds"] / base["median_epoch_seconds"], abs=1e-3)
    assert row["peak_rss_mib"] == [base["peak_rss_mib"], ours["peak_rss_mib"]]
    assert row["memory_ratio"] == pytest.approx(ours["peak_rss_mib"] / base["peak_rss_mib"], abs=1e-3)
    assert row["test_accuracy"] == [round(base["test_accuracy"], 4), round(ours["test_accuracy"], 4)]
    assert row["accuracy_delta"] == pytest.approx(ours["test_accuracy"] - base["test_accuracy"], abs=1e-4)
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")
    table = (out / "results.md").read_text()
    printed = capsys.readouterr().out
    assert table.count("\n") == 3 and table in printed
    [entry] = [json.loads(line) for line in history.read_text().splitlines()]
    assert entry["section"] == "training" and entry["numbers"] == {
        "onehot time_ratio": row["time_ratio"],
        "onehot memory_ratio": row["memory_ratio"],
    }
    assert "history of `training`" in printed and entry["code"] in printed
    cells = [cell.strip() for cell in table.splitlines()[2].strip("|").split("|")]
    for value in (
        f"{row['time_ratio']:.3f}",
        f"{row['memory_ratio']:.3f}",
        f"{row['test_accuracy'][0]:.4f} / {row['test_accuracy'][1]:.4f}",
    ):
        assert value in cells, (value, cells)
    assert not (out / "data.npz").exists()


def test_bench_measures_batch_scoring_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    assert (
        bench.main(
            ["--section", "scoring", "--rows", "300", "--out", str(out), "--history", str(tmp_path / "history.jsonl")]
        )
        == 0
    )
    results = json.loads((out / "scoring.json").read_text())["results"]
    assert [(r["variant"], r["reviews"]) for r in results] == [("onehot", 300), ("embedding", 300)]
    assert all(r["reviews_per_second"] > 0 and r["encode_per_second"] > 0 for r in results)
    assert "| onehot | 300 |" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["scoring.json"]  # input and published copies removed


def test_bench_runs_the_pipeline_of_two_codes_first_and_cached_side_by_side(imdb_npz, tmp_path, capsys):
    """Both codes here are this commit's: the section's mechanics, not a speed-up, are under test."""
    out, history = tmp_path / "bench", tmp_path / "history.jsonl"
    run_args = (
        f"--source {imdb_npz} --num-words 50 --maxlen 20 --max-epochs 2 --batch-size 32 --learning-rate 0.01 "
        f"--seed 3 --baseline-margin 1 --min-split-rows {SMALL_MIN_SPLIT_ROWS}"
    )
    out.mkdir()
    assert (
        bench.main(
            [
                "--section",
                "run",
                "--baseline-commit",
                "HEAD",
                "--run-args",
                run_args,
                "--out",
                str(out),
                "--history",
                str(history),
            ]
        )
        == 0
    )
    summary = json.loads((out / "run.json").read_text())
    earlier, ours = summary["results"]["HEAD"], summary["results"]["ours"]
    for runs in (earlier, ours):
        assert runs["first"]["wall_seconds"] > runs["cached"]["wall_seconds"] > 0
        assert set(runs["first"]["test_accuracy"]) == {"onehot", "embedding"}
        assert runs["cached"]["test_accuracy"] == runs["first"]["test_accuracy"]
    assert ours["cached"]["split"]["train"] < ours["first"]["split"]["train"] / 5  # nothing trained again
    split = ours["first"]["split"]
    assert {"start-up", "train", "publish"} <= set(split)
    assert sum(value for name, value in split.items() if name != "wall") == pytest.approx(split["wall"], abs=0.5)
    goals = {goal["goal"]: goal for goal in summary["goals"]}
    assert goals["test accuracies"]["met"]  # the same code on the same data and seed
    assert goals["first run"]["measured"] == pytest.approx(
        ours["first"]["wall_seconds"] / earlier["first"]["wall_seconds"]
    )
    printed = capsys.readouterr().out
    assert "| commit HEAD |" in printed and "| this tree |" in printed and "history of `run`" in printed
    [entry] = [json.loads(line) for line in history.read_text().splitlines()]
    assert entry["numbers"]["our first s"] == ours["first"]["wall_seconds"]
