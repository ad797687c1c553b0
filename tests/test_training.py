"""Training on tiny data, and test metrics on known predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks import data, evaluation, features
from tasks.config import ModelConfig, TrainingConfig
from tasks.training import train_variant

MAXLEN = 20


@pytest.fixture(scope="module")
def tiny_dataset(imdb_npz, tmp_path_factory):
    splits = data.split_source("npz", imdb_npz, 50, 0.25, seed=0)
    metadata = {"num_words": 50, "maxlen": MAXLEN, "val_fraction": 0.25, "seed": 0, "source": "t", "source_sha256": "t"}
    return features.store_dataset(splits, MAXLEN, metadata, str(tmp_path_factory.mktemp("store")))


@pytest.mark.parametrize("variant", ["onehot", "embedding"])
def test_training_lowers_the_loss_and_keeps_the_best_checkpoint(variant, tiny_dataset, tmp_path):
    config = TrainingConfig(batch_size=16, learning_rate=0.01, max_epochs=4, patience=10)
    trained = train_variant(variant, tiny_dataset, ModelConfig(), config, seed=0, out_dir=tmp_path)
    history = json.loads((tmp_path / variant / "history.json").read_text())
    epochs = history["epochs"]
    assert [record["epoch"] for record in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert all(record["seconds"] > 0 for record in epochs)
    assert set(epochs[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    best = min(epochs, key=lambda record: record["val_loss"])
    assert trained.best_epoch == history["best_epoch"] == best["epoch"]
    # the published checkpoint is the best val_loss epoch: it scores val to that loss
    x_val, y_val, _ = features.read_split(tiny_dataset.split_uris["val"])
    model = evaluation.load_model(trained.model_path)
    val_loss = evaluation.classification_metrics(y_val, evaluation.score(model, x_val))["loss"]
    assert val_loss == pytest.approx(best["val_loss"], abs=2e-3)


def test_early_stopping_stops_after_patience(tiny_dataset, tmp_path):
    config = TrainingConfig(batch_size=16, learning_rate=0.5, max_epochs=30, patience=0)
    trained = train_variant("embedding", tiny_dataset, ModelConfig(), config, seed=0, out_dir=tmp_path)
    assert trained.stopped_early
    assert trained.epochs_run == trained.best_epoch + 1 < 30


def test_training_is_seeded(tiny_dataset, tmp_path):
    config = TrainingConfig(batch_size=16, max_epochs=1)
    runs = [train_variant("embedding", tiny_dataset, ModelConfig(), config, seed=5, out_dir=tmp_path / str(i))
            for i in range(2)]
    histories = [json.loads((tmp_path / str(i) / "embedding" / "history.json").read_text()) for i in range(2)]
    assert histories[0]["epochs"][0]["loss"] == pytest.approx(histories[1]["epochs"][0]["loss"], rel=1e-5)
    assert runs[0].parameters == runs[1].parameters == 1_009  # 50*16 + (16*8 + 8*8 + 8) + 9


def test_metrics_on_known_predictions():
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.8, 0.4, 0.9])
    metrics = evaluation.classification_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["roc_auc"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9]))
    assert metrics["loss"] == pytest.approx(expected_loss)
    assert metrics["majority_rate"] == pytest.approx(0.6)
    assert metrics["examples"] == 5


def test_metrics_with_one_class_have_no_roc_auc():
    metrics = evaluation.classification_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert metrics["roc_auc"] is None
    assert metrics["accuracy"] == 0.5
    # p = 0.5 exactly is negative, as in Keras' BinaryAccuracy
    assert evaluation.classification_metrics(np.array([0]), np.array([0.5]))["accuracy"] == 1.0
