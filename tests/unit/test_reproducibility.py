"""Bitwise reproducible training: the same config and seed give the same weights and metrics (a
file apart from test_training.py, whose helper it uses, so that both test processes share the
trainings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.config import TrainingConfig
from tasks.training.fit import train_variant
from tests.unit.test_training import job, model_weights


# Compiled with XLA, as the recipe's trainings are, and without, as small ones are (--xla auto).
@pytest.mark.parametrize(
    "variant, parameters, xla", [("onehot", 481, "on"), ("embedding", 1_009, "on"), ("embedding", 1_009, "off")]
)
def test_the_same_config_and_seed_give_identical_weights_and_metrics(variant, parameters, xla, tiny_dataset, tmp_path):
    """Reproducible on rerun in one process (the flow trains variants one after another)."""
    config = TrainingConfig(batch_size=16, learning_rate=0.01, max_epochs=2, xla=xla)
    runs = [train_variant(job(variant, tiny_dataset, config, 5), tmp_path / str(i)) for i in range(2)]
    other_seed = train_variant(job(variant, tiny_dataset, config, 6), tmp_path / "6")
    histories = [json.loads((tmp_path / str(i) / variant / "history.json").read_text()) for i in range(2)]
    strip = [[{k: v for k, v in record.items() if k != "seconds"} for record in h["epochs"]] for h in histories]
    assert strip[0] == strip[1]  # identical metrics, not merely close
    for first, second in zip(model_weights(runs[0].model_path), model_weights(runs[1].model_path), strict=True):
        np.testing.assert_array_equal(first, second)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(model_weights(runs[0].model_path), model_weights(other_seed.model_path), strict=True)
    )
    # onehot: (50*8 + 8*8 + 8) + 9; embedding: 50*16 + (16*8 + 8*8 + 8) + 9
    assert runs[0].parameters == runs[1].parameters == parameters
