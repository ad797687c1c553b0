"""The SimpleRNN variants. Every published model takes padded token ids of shape (None, maxlen), so
one scoring code serves all, and uses only built-in Keras layers, so plain `keras` loads it.

A variant may train in a faster but mathematically identical form: the one-hot SimpleRNN's input
kernel W times a one-hot vector e_t is row t of W, so training gathers rows of W (an Embedding
holding W) instead of multiplying 500-wide one-hot vectors. Same weights, same parameter count,
same outputs; the trained weights are copied into the plain one-hot model for publishing.
Adding a variant is one entry in VARIANTS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from tasks.config import ModelConfig

ModelBuilder = Callable[[int, int, ModelConfig], keras.Model]


def _token_ids(maxlen: int) -> keras.KerasTensor:
    return keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")


def build_onehot(num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """SimpleRNN on one-hot vectors of the ids, then a sigmoid unit (4,081 parameters by default).

    The one-hot encoding happens inside the model, batch by batch, so no (n, maxlen, num_words)
    array of a whole split ever exists.
    """
    ids = _token_ids(maxlen)
    one_hot = keras.layers.CategoryEncoding(num_tokens=num_words, output_mode="one_hot", name="one_hot")(ids)
    hidden = keras.layers.SimpleRNN(config.rnn_units, name="rnn")(one_hot)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="onehot_simplernn")


@keras.saving.register_keras_serializable(package="imdb_rnn_pipeline")
class InputFreeSimpleRNNCell(keras.layers.Layer):
    """SimpleRNN's cell for inputs that already are `W x_t`: h_t = tanh(x_t + b + U h_{t-1})."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units
        # Drawn in SimpleRNNCell's order (its dropout seed, then kernel, recurrent and bias
        # initialisers), so a seeded run starts from exactly the weights SimpleRNN would have.
        # The kernel's initialiser is applied by the Embedding that holds the input kernel.
        self.seed_generator = keras.random.SeedGenerator()
        self.kernel_initializer = keras.initializers.get("glorot_uniform")
        self.recurrent_initializer = keras.initializers.get("orthogonal")
        self.bias_initializer = keras.initializers.get("zeros")

    def build(self, input_shape) -> None:
        # Same weight order as SimpleRNNCell's recurrent kernel and bias.
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer=self.recurrent_initializer,
                                                name="recurrent_kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias")

    def call(self, inputs, states):
        hidden = keras.ops.tanh(inputs + self.bias + keras.ops.matmul(states[0], self.recurrent_kernel))
        return hidden, [hidden]

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


def build_onehot_gather(num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The one-hot SimpleRNN computed by gathering rows of its input kernel (training form)."""
    ids = _token_ids(maxlen)
    cell = InputFreeSimpleRNNCell(config.rnn_units)
    projected = keras.layers.Embedding(num_words, config.rnn_units, embeddings_initializer=cell.kernel_initializer,
                                       name="input_kernel")(ids)
    hidden = keras.layers.RNN(cell, name="rnn")(projected)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="onehot_simplernn_gather")


def build_embedding(num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """Embedding(num_words, embedding_dim) feeding SimpleRNN(units) and a sigmoid unit (8,209 parameters)."""
    ids = _token_ids(maxlen)
    embedded = keras.layers.Embedding(num_words, config.embedding_dim, name="embedding")(ids)
    hidden = keras.layers.SimpleRNN(config.rnn_units, name="rnn")(embedded)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="embedding_simplernn")


@dataclass(frozen=True)
class Variant:
    """How a variant is published, and (when different) the identical form it trains in.

    The training form's weights, in order, must be the published form's weights.
    """

    build: ModelBuilder
    build_for_training: ModelBuilder | None = None


VARIANTS: dict[str, Variant] = {
    "onehot": Variant(build_onehot, build_for_training=build_onehot_gather),
    "embedding": Variant(build_embedding),
}
VARIANT_NAMES = tuple(VARIANTS)


def build_model(variant: str, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The named variant as published, uncompiled (unknown names are refused earlier, by the config)."""
    return VARIANTS[variant].build(num_words, maxlen, config)


def build_training_model(variant: str, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The named variant in the form it trains fastest in (the published form when there is no other)."""
    spec = VARIANTS[variant]
    return (spec.build_for_training or spec.build)(num_words, maxlen, config)


def to_published(variant: str, trained: keras.Model, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The published form of `variant` carrying the weights of its trained form."""
    if VARIANTS[variant].build_for_training is None:
        return trained
    published = build_model(variant, num_words, maxlen, config)
    published.set_weights(trained.get_weights())
    return published
