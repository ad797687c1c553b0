"""A variant is one definition: registering a new one is all it takes to configure, build, train,
cache and report it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from flows.cli import build_parser, config_from_args
from tasks.config import ModelConfig, TrainingConfig
from tasks.reporting import model_card
from tasks.storage import cache_keys
from tasks.training import variants
from tasks.training.build import build_model, build_training_model
from tasks.training.fit import train_variant
from tasks.training.jobs import TrainingJob
from tests.helpers import variant_result


def build_mean_embedding(num_words: int, maxlen: int, *, embedding_dim: int) -> keras.Model:
    """Averaged word embeddings into a sigmoid unit: no recurrence at all."""
    ids = keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")
    embedded = keras.layers.Embedding(num_words, embedding_dim, name="embedding")(ids)
    pooled = keras.layers.GlobalAveragePooling1D(name="mean")(embedded)
    return keras.Model(ids, keras.layers.Dense(1, activation="sigmoid", name="sentiment")(pooled))


THROWAWAY = variants.Variant("mean-embedding", "mean of word embeddings, then a sigmoid unit", build_mean_embedding)


@pytest.fixture
def registered():
    variants.register(THROWAWAY)
    yield THROWAWAY
    del variants.VARIANTS[THROWAWAY.name]


def test_a_registered_variant_is_configured_built_trained_cached_and_reported(registered, tiny_dataset, tmp_path):
    config = config_from_args(
        build_parser().parse_args(["--variants", "mean-embedding,embedding", "--embedding-dim", "4"])
    )
    assert config.model.variants == ("mean-embedding", "embedding")
    assert registered.options == ("embedding_dim",)  # read from the builder's keyword-only parameters
    model = build_model("mean-embedding", 50, 20, config.model)
    assert model.count_params() == 50 * 4 + 4 + 1
    assert build_training_model("mean-embedding", 50, 20, config.model).count_params() == model.count_params()

    training = TrainingConfig(batch_size=16, learning_rate=0.01, max_epochs=2)
    job = TrainingJob(variant="mean-embedding", dataset=tiny_dataset, model=config.model, training=training, seed=0)
    trained = train_variant(job, tmp_path)
    assert trained.epochs_run == 2 and trained.parameters == model.count_params()

    key = cache_keys.training_key("d", "mean-embedding", config.model, training, 0)
    assert key == cache_keys.training_key(
        "d", "mean-embedding", config.model.model_copy(update={"rnn_units": 3}), training, 0
    )  # a size it does not read
    assert key != cache_keys.training_key("d", "mean-embedding", ModelConfig(embedding_dim=5), training, 0)

    listed = model_card.model_list({"mean-embedding": variant_result(0.5, parameters=trained.parameters)}, 20)
    assert f"`mean-embedding/model.keras`: {THROWAWAY.description}, 205 parameters" in listed


def test_unknown_and_repeated_registrations_are_refused(registered):
    with pytest.raises(ValueError, match="unknown variant 'nope'; known: onehot, embedding, mean-embedding"):
        ModelConfig(variants=("nope",))
    with pytest.raises(ValueError, match="already registered"):
        variants.register(THROWAWAY)

    def other_form(num_words: int, maxlen: int, *, rnn_units: int) -> keras.Model:
        raise AssertionError("never built")

    mismatched = variants.Variant("mismatched", "d", build_mean_embedding, build_for_training=other_form)
    with pytest.raises(ValueError, match="training form's options"):
        variants.register(mismatched)
    assert "mismatched" not in variants.VARIANTS


def test_every_registered_variant_reads_only_model_config_fields():
    for variant in variants.VARIANTS.values():
        assert set(variant.options) <= set(ModelConfig.model_fields) - {"variants"}, variant.name
        model = build_model(variant.name, 30, 8, ModelConfig())
        ids = np.random.default_rng(0).integers(0, 30, size=(3, 8)).astype("int32")
        assert model.predict(ids, verbose=0).shape == (3, 1)
