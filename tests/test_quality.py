"""`make seeds` on tiny generated data: every preset, variant and seed is trained and tabulated."""

from __future__ import annotations

import json

from tasks import quality
from tasks.training import derive_seed


def test_seeds_sweep_writes_the_quality_table(imdb_npz, tmp_path, capsys):
    out = tmp_path / "MODEL_QUALITY.md"
    argv = ["--source", str(imdb_npz), "--seeds", "1", "--presets", "reference,robust", "--variants", "embedding",
            "--max-epochs", "2", "--jobs", "2", "--work-dir", str(tmp_path / "work"), "--out", str(out)]
    assert quality.main(argv) == 0
    results = json.loads((tmp_path / "work" / "quality.json").read_text())
    seeds = [derive_seed(42, 0)]
    assert sorted((r["preset"], r["seed"]) for r in results["results"]) == sorted(
        (preset, seed) for preset in ("reference", "robust") for seed in seeds)
    rows = {row["preset"]: row for row in results["rows"]}
    assert set(rows) == {"reference", "robust"} and all(row["seeds"] == 1 for row in rows.values())
    for preset, row in rows.items():
        accuracies = [r["test_accuracy"] for r in results["results"] if r["preset"] == preset]
        assert row["worst_test_accuracy"] == min(accuracies) <= row["median_test_accuracy"] <= max(accuracies)
    text = out.read_text()
    assert "| preset | variant | seeds | median test accuracy | worst test accuracy |" in text
    assert text.count("| reference | embedding |") == 2  # one summary row and one row per seed
    assert "worst test accuracy" in capsys.readouterr().out


def test_seeds_sweep_refuses_an_unknown_preset(capsys):
    assert quality.main(["--presets", "fast"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
