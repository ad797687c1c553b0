"""Training on tiny data, and test metrics on known predictions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
import pytest

from tasks import config as config_module
from tasks.config import ModelConfig, TrainingConfig
from tasks.data import prepare, store
from tasks.training import baseline, evaluation, fit, guard, jobs
from tasks.training.fit import train_variant
from tests.helpers import TINY_MAXLEN, split_npz

MAXLEN = TINY_MAXLEN


def job(variant: str, dataset, config: TrainingConfig, seed: int, baseline_val_accuracy: float | None = None):
    return jobs.TrainingJob(
        variant=variant,
        dataset=dataset,
        model=ModelConfig(),
        training=config,
        seed=seed,
        baseline_val_accuracy=baseline_val_accuracy,
    )


# One variant compiled with XLA (asked for), the other not (auto, on data this small).
@pytest.mark.parametrize(("variant", "xla", "compiled"), [("onehot", "on", "on"), ("embedding", "auto", "off")])
def test_training_lowers_the_loss_and_keeps_the_best_checkpoint(variant, xla, compiled, tiny_dataset, tmp_path, caplog):
    config = TrainingConfig(batch_size=16, learning_rate=0.01, max_epochs=4, patience=10, xla=xla)
    with caplog.at_level(logging.INFO, logger=fit.__name__):
        trained = train_variant(job(variant, tiny_dataset, config, 0), tmp_path)
    assert f"validating on {tiny_dataset.rows['val']}, XLA {compiled}" in caplog.text
    history = json.loads((tmp_path / variant / "history.json").read_text())
    epochs = history["epochs"]
    assert [record["epoch"] for record in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert all(record["seconds"] > 0 for record in epochs)
    assert set(epochs[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    best = min(epochs, key=lambda record: record["val_loss"])
    assert trained.best_epoch == history["best_epoch"] == best["epoch"]
    # the published checkpoint is the best val_loss epoch: it scores val to that loss
    x_val, y_val, _ = store.read_split(tiny_dataset.split_uris["val"])
    model = evaluation.load_model(trained.model_path)
    val_loss = evaluation.classification_metrics(y_val, evaluation.score(model, x_val)).loss
    assert val_loss == pytest.approx(best["val_loss"], abs=2e-3)


def test_xla_compiles_epochs_large_enough_to_repay_it_unless_told_otherwise():
    auto, least = TrainingConfig(), config_module.XLA_MIN_EPOCH_IDS
    assert not auto.uses_xla(least - 1) and auto.uses_xla(least)
    assert TrainingConfig(xla="on").uses_xla(1) and not TrainingConfig(xla="off").uses_xla(100 * least)
    assert auto.uses_xla(16_000 * 100)  # the recipe's training split


def test_early_stopping_stops_after_patience(tiny_dataset, tmp_path):
    config = TrainingConfig(batch_size=16, learning_rate=0.5, max_epochs=30, patience=0)
    trained = train_variant(job("embedding", tiny_dataset, config, 0), tmp_path)
    assert trained.stopped_early
    assert trained.epochs_run == trained.best_epoch + 1 < 30


def model_weights(model_path: str) -> list[np.ndarray]:
    return evaluation.load_model(model_path).get_weights()


@pytest.fixture(scope="module")
def one_class_val_dataset(imdb_npz, tmp_path_factory):
    """Val reviews all positive: always guessing positive scores 1.0, so every model stalls."""
    splits = split_npz(imdb_npz, 50, 0.25, seed=0)
    val = splits["val"]
    splits["val"] = val.take(np.flatnonzero(val.labels == 1))
    metadata = {
        "num_words": 50,
        "maxlen": MAXLEN,
        "val_fraction": 0.25,
        "seed": 0,
        "source": "one-class",
        "source_sha256": "t",
    }
    return prepare.store_reviews(splits, MAXLEN, metadata, str(tmp_path_factory.mktemp("one-class")))


def test_a_wider_stall_margin_counts_more_models_as_stalled():
    assert not guard.is_stalled(0.54, 0.506, margin=0.02)
    assert guard.is_stalled(0.54, 0.506, margin=0.1)
    assert not guard.is_stalled(0.78, 0.506, margin=0.1)


# Early stopping after the second epoch, whatever the data: no val_loss drop counts as improvement.
STOPS_EARLY = {"max_epochs": 4, "patience": 1, "min_delta": 10.0}


def test_a_model_at_chance_is_stalled_and_retrained_with_derived_seeds(one_class_val_dataset, tmp_path):
    config = TrainingConfig(batch_size=16, learning_rate=0.01, restarts=1, **STOPS_EARLY)
    trained = fit.train_with_restarts(job("embedding", one_class_val_dataset, config, 11), tmp_path)
    assert trained.stalled and trained.val_majority_rate == 1.0
    seeds = [attempt.seed for attempt in trained.attempts]
    assert seeds == [11, jobs.derive_seed(11, 0, 1)] and len(set(seeds)) == 2  # no more than 1 restart
    assert all(attempt.stalled for attempt in trained.attempts)
    history = json.loads(Path(trained.history_path).read_text())
    assert [attempt["seed"] for attempt in history["attempts"]] == seeds  # every attempt kept
    assert all(len(attempt["epochs"]) == 2 for attempt in history["attempts"])
    assert trained.seed in seeds and Path(trained.model_path).is_file()


def test_a_stalled_attempt_is_replaced_by_the_first_that_learns(tiny_dataset, tmp_path, monkeypatch):
    verdicts = iter([True, False, False])  # the detector says: the first attempt stalled
    monkeypatch.setattr(fit, "is_stalled", lambda accuracy, majority, margin: next(verdicts))
    config = TrainingConfig(batch_size=16, learning_rate=0.01, restarts=2, **STOPS_EARLY)
    trained = fit.train_with_restarts(job("onehot", tiny_dataset, config, 3), tmp_path)
    assert [attempt.stalled for attempt in trained.attempts] == [True, False]  # stops at the first success
    assert not trained.stalled and trained.seed == jobs.derive_seed(3, 0, 1)
    published = json.loads(Path(trained.history_path).read_text())
    assert published["seed"] == trained.seed and len(published["attempts"]) == 2
    for first, second in zip(
        model_weights(trained.model_path),
        model_weights(str(tmp_path / "attempt-1" / "onehot" / "model.keras")),
        strict=True,
    ):
        np.testing.assert_array_equal(first, second)


def test_an_attempt_that_stops_early_under_trained_is_restarted_and_recorded(
    tiny_dataset, tmp_path, monkeypatch, caplog
):
    """The first attempt learns slowly (a learning rate of 0.003) and early stopping ends it after two
    epochs: far below the baseline's val accuracy, so the guard (default margin) restarts it, and
    the full second attempt is published."""
    bar = baseline.fit_bag_of_words(tiny_dataset).val.accuracy
    real_fit, attempts = fit.fit_model, []

    def stall_the_first_attempt(model, train, val, config, seed, callbacks):
        attempts.append(config.max_epochs)
        if len(attempts) == 1:
            model.optimizer.learning_rate = 0.003
            stopping = next(callback for callback in callbacks if isinstance(callback, keras.callbacks.EarlyStopping))
            stopping.patience, stopping.min_delta = 1, 10.0  # no gain counts: it stops after epoch 2
        real_fit(model, train, val, config, seed, callbacks)

    monkeypatch.setattr(fit, "fit_model", stall_the_first_attempt)
    # A margin of 0.05: on these 60 val reviews the full second attempt ends 0-2 reviews short of the
    # baseline's 1.0 depending on its shuffle, while the stopped first one ends 5 or more short.
    config = TrainingConfig(
        batch_size=16, learning_rate=0.01, max_epochs=8, patience=10, restarts=2, baseline_margin=0.05
    )
    with caplog.at_level("WARNING", logger="tasks.training.fit"):
        trained = fit.train_with_restarts(job("onehot", tiny_dataset, config, 3, bar), tmp_path)
    first, second = trained.attempts
    assert first.under_trained and not first.stalled and first.epochs_run == 2
    assert first.best_val_accuracy < bar - config.baseline_margin
    assert not second.under_trained and second.best_val_accuracy >= bar - config.baseline_margin
    assert trained.healthy and trained.seed == second.seed == jobs.derive_seed(3, 0, 1)
    history = json.loads(Path(trained.history_path).read_text())
    assert [(a["seed"], a["under_trained"]) for a in history["attempts"]] == [(3, True), (second.seed, False)]
    assert history["baseline_val_accuracy"] == bar and len(history["attempts"][0]["epochs"]) == 2
    # a set: after a flow test in the same session, Prefect's handlers may deliver a record twice
    (line,) = {record.getMessage() for record in caplog.records if "restart" in record.getMessage()}
    assert line == (
        f"onehot seed 3 under-trained (best val accuracy {first.best_val_accuracy:.4f}, more than 0.05 "
        f"below the baseline's {bar:.4f}): restart 1/2 with seed {second.seed}"
    )


def test_an_attempt_out_of_epochs_is_not_restarted(tiny_dataset, tmp_path, caplog):
    """One epoch is far below the baseline, but all of the budget ran: a restart gets no more."""
    bar = baseline.fit_bag_of_words(tiny_dataset).val.accuracy
    config = TrainingConfig(batch_size=16, learning_rate=1e-4, max_epochs=1, restarts=3)
    with caplog.at_level("WARNING", logger="tasks.training.fit"):
        trained = fit.train_with_restarts(job("onehot", tiny_dataset, config, 3, bar), tmp_path)
    assert trained.under_trained and not trained.stopped_early and len(trained.attempts) == 1
    assert "out of epochs (all 1 ran without early stopping); no restart" in caplog.text


def test_under_trained_needs_a_baseline_and_a_gap_beyond_the_margin():
    assert guard.is_under_trained(0.70, 0.79, margin=0.05)
    assert not guard.is_under_trained(0.75, 0.79, margin=0.05)  # 0.04 below: within the margin
    assert not guard.is_under_trained(0.50, None, margin=0.05)  # no baseline, no verdict
    assert not guard.is_under_trained(0.10, 0.79, margin=1.0)  # margin 1 turns the guard off


def test_the_published_seed_is_the_best_val_loss_that_did_not_stall():
    def run(seed, loss, stalled):
        return jobs.TrainedVariant(
            variant="v",
            model_path="m",
            history_path="h",
            parameters=1,
            epochs_run=1,
            best_epoch=1,
            stopped_early=False,
            train_seconds=1,
            trained_at=0,
            seed=seed,
            best_val_loss=loss,
            stalled=stalled,
        )

    runs = [run(1, 0.50, False), run(2, 0.30, True), run(3, 0.40, False)]
    assert jobs.pick_published(runs).seed == 3  # the stalled seed's lower loss does not count
    assert jobs.pick_published([run(1, 0.6, True), run(2, 0.5, True)]).seed == 2
    under_trained = run(4, 0.20, False).model_copy(update={"under_trained": True})
    assert jobs.pick_published([*runs, under_trained]).seed == 3  # nor does an under-trained one's


def test_derived_seeds_are_deterministic_and_distinct():
    assert jobs.derive_seed(42, 0) == jobs.derive_seed(42, 0, 0) == 42
    derived = {jobs.derive_seed(42, index, attempt) for index in range(5) for attempt in range(3)}
    assert len(derived) == 15 and all(0 <= seed < 2**32 for seed in derived)
    assert jobs.derive_seed(42, 1) == jobs.derive_seed(42, 1)


def test_metrics_on_known_predictions():
    labels = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.8, 0.4, 0.9])
    metrics = evaluation.classification_metrics(labels, probabilities)
    assert metrics.accuracy == pytest.approx(3 / 5)
    assert metrics.confusion_matrix == [[1, 1], [1, 2]]
    assert metrics.roc_auc == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9]))
    assert metrics.loss == pytest.approx(expected_loss)
    assert metrics.majority_rate == pytest.approx(0.6)
    assert metrics.examples == 5


def test_metrics_with_one_class_have_no_roc_auc():
    metrics = evaluation.classification_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert metrics.roc_auc is None
    assert metrics.accuracy == 0.5
    # p = 0.5 exactly is negative, as in Keras' BinaryAccuracy
    assert evaluation.classification_metrics(np.array([0]), np.array([0.5])).accuracy == 1.0
