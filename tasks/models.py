"""The SimpleRNN variants. Every model takes padded token ids of shape (None, maxlen), so one
scoring code serves all; adding a variant is one entry in VARIANTS.
"""

from __future__ import annotations

from collections.abc import Callable

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


def build_embedding(num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """Embedding(num_words, embedding_dim) feeding SimpleRNN(units) and a sigmoid unit (8,209 parameters)."""
    ids = _token_ids(maxlen)
    embedded = keras.layers.Embedding(num_words, config.embedding_dim, name="embedding")(ids)
    hidden = keras.layers.SimpleRNN(config.rnn_units, name="rnn")(embedded)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="embedding_simplernn")


VARIANTS: dict[str, ModelBuilder] = {
    "onehot": build_onehot,
    "embedding": build_embedding,
}
VARIANT_NAMES = tuple(VARIANTS)


def build_model(variant: str, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The named variant, uncompiled (unknown names are refused earlier, by the config)."""
    return VARIANTS[variant](num_words, maxlen, config)
