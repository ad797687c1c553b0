"""`make seeds`' command line and its screening table, without training (the sweep itself runs in
tests/e2e/test_quality.py)."""

from __future__ import annotations

from tools import seeds


def test_seeds_sweep_refuses_an_unknown_preset(capsys):
    assert seeds.main(["--presets", "fast"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_screening_counts_healthy_attempts_a_screen_would_confuse_with_failures():
    def result(*attempts):
        return {
            "preset": "reference",
            "variant": "embedding",
            "attempts": [{"stalled": False, "under_trained": not healthy} for healthy, _ in attempts],
            "early_val_accuracy": [curve for _, curve in attempts],
        }

    results = [
        result((False, [0.50, 0.52]), (True, [0.51, 0.60])),
        result((True, [0.55, 0.70])),
        result((True, [0.49])),
    ]  # stopped after one epoch
    first, second = seeds.screening_rows(results)[:2]
    assert (first["healthy"], first["unhealthy"]) == ([0.51, 0.55, 0.49], [0.50])
    assert first["healthy_not_above_a_failure"] == 1  # 0.49: a screen after epoch 1 would drop it first
    assert second["healthy"] == [0.60, 0.70] and second["healthy_not_above_a_failure"] == 0
