"""Model shapes, parameter counts and the one-hot variant's equivalence with the seed's formulation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tasks.config import ModelConfig
from tasks.training.build import build_model, build_training_model, to_published
from tasks.training.variants import DEFAULT_VARIANTS


@pytest.mark.parametrize("variant, parameters", [("onehot", 4_081), ("embedding", 8_209)])
def test_reference_parameter_counts(variant, parameters):
    model = build_model(variant, num_words=500, maxlen=100, config=ModelConfig())
    assert model.count_params() == parameters
    assert model.input_shape == (None, 100)
    assert model.output_shape == (None, 1)


def test_onehot_model_equals_simplernn_on_to_categorical_input():
    num_words, maxlen = 30, 12
    ours = build_model("onehot", num_words, maxlen, ModelConfig())
    seed_model = keras.Sequential(
        [keras.Input((maxlen, num_words)), keras.layers.SimpleRNN(8), keras.layers.Dense(1, activation="sigmoid")]
    )
    seed_model.set_weights(ours.get_weights())
    ids = np.random.default_rng(0).integers(0, num_words, size=(16, maxlen)).astype("int32")
    expected = seed_model.predict(keras.utils.to_categorical(ids, num_words), verbose=0)
    np.testing.assert_allclose(ours.predict(ids, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", DEFAULT_VARIANTS)
def test_saved_models_reload_with_plain_keras_in_safe_mode(variant, tmp_path):
    model = build_model(variant, 40, 10, ModelConfig())
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    ids = np.random.default_rng(1).integers(0, 40, size=(4, 10)).astype("int32")
    np.testing.assert_allclose(reloaded.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_onehot_trains_as_an_identical_gather_with_the_same_weights():
    num_words, maxlen = 500, 100
    gather = build_training_model("onehot", num_words, maxlen, ModelConfig())
    assert gather.count_params() == 4_081
    gather.set_weights(
        [np.random.default_rng(i).normal(size=w.shape).astype("float32") for i, w in enumerate(gather.get_weights())]
    )
    published = to_published("onehot", gather, num_words, maxlen, ModelConfig())
    assert published.count_params() == 4_081
    assert [layer.__class__.__name__ for layer in published.layers][1:3] == ["CategoryEncoding", "SimpleRNN"]
    ids = np.random.default_rng(7).integers(0, num_words, size=(32, maxlen)).astype("int32")
    np.testing.assert_allclose(gather.predict(ids, verbose=0), published.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


def test_variants_without_a_training_form_are_published_as_trained():
    model = build_training_model("embedding", 40, 10, ModelConfig())
    assert to_published("embedding", model, 40, 10, ModelConfig()) is model


def test_a_seeded_gather_model_starts_from_the_seed_formulations_weights():
    keras.utils.set_random_seed(42)
    seed_model = keras.Sequential(
        [keras.Input((100, 500)), keras.layers.SimpleRNN(8), keras.layers.Dense(1, activation="sigmoid")]
    )
    keras.utils.set_random_seed(42)
    gather = build_training_model("onehot", 500, 100, ModelConfig())
    for expected, actual in zip(seed_model.get_weights(), gather.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
