"""`make seeds` on tiny generated data: every preset, variant and seed is trained and tabulated."""

from __future__ import annotations

import json

import pytest

from tasks.training.jobs import derive_seed
from tools import seeds


def test_seeds_sweep_writes_the_quality_table_with_the_guards_cost(imdb_npz, tmp_path, capsys):
    """Two epochs on the generated data are far below its baseline (val 1.0), and early stopping ends
    every attempt there: every first attempt is under-trained and stopped early, so every job
    restarts once, and the table must count that restart and its time."""
    out = tmp_path / "MODEL_QUALITY.md"
    argv = [
        "--source",
        str(imdb_npz),
        "--seeds",
        "1",
        "--presets",
        "reference,robust",
        "--variants",
        "embedding",
        "--max-epochs",
        "3",
        "--patience",
        "1",
        "--start-from-epoch",
        "0",
        "--min-delta",
        "10",  # no val_loss drop counts: early stopping ends every attempt after its second epoch
        "--restarts",
        "1",
        "--jobs",
        "2",
        "--work-dir",
        str(tmp_path / "work"),
        "--out",
        str(out),
    ]
    assert seeds.main(argv) == 0
    results = json.loads((tmp_path / "work" / "quality.json").read_text())
    assert results["baseline"]["val"]["accuracy"] > 0.95
    assert sorted((r["preset"], r["seed"]) for r in results["results"]) == [("reference", 42), ("robust", 42)]
    for result in results["results"]:
        assert [attempt["seed"] for attempt in result["attempts"]] == [42, derive_seed(42, 0, 1)]
        assert result["attempts"][0]["under_trained"] and not result["healthy"]
        assert result["train_seconds"] == pytest.approx(sum(a["train_seconds"] for a in result["attempts"]), abs=0.02)
        assert result["first_attempt_train_seconds"] == result["attempts"][0]["train_seconds"]
        assert [len(curve) for curve in result["early_val_accuracy"]] == [2, 2]
    rows = {row["preset"]: row for row in results["rows"]}
    assert set(rows) == {"reference", "robust"}
    for preset, row in rows.items():
        (result,) = [r for r in results["results"] if r["preset"] == preset]
        assert row["seeds"] == 1 and row["restarts"] == 1 and row["unhealthy_published"] == 1
        assert row["worst_test_accuracy"] == row["median_test_accuracy"] == result["test_accuracy"]
        assert row["first_worst_test_accuracy"] == result["first_attempt_test_accuracy"]
        assert row["training_minutes"] > row["first_training_minutes"] > 0
        assert row["extra_training"] == pytest.approx(row["training_minutes"] / row["first_training_minutes"] - 1)
    text = out.read_text()
    assert "| preset | variant | seeds | median published test acc | worst published test acc | restarts |" in text
    assert "up to 1 times" in text and "UNDER-TRAINED" in text
    # every attempt failed, so the screening table has only failures, for the two epochs trained
    assert "| reference | embedding | 1 | none | " in text and "| robust | embedding | 2 | none | " in text
    assert "| reference | embedding | 3 | none | none | n/a |" in text
    assert text.count("| reference | embedding |") == 5  # a summary row, 3 screening rows and one row per seed
    assert "worst published test acc" in capsys.readouterr().out
