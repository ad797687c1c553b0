"""The model variants, each defined once: its name, description, builder, optional training form,
and (from the builder's keyword-only parameters) the ModelConfig fields it reads.

Every published model takes padded token ids of shape (None, maxlen), so one scoring code serves
all, and uses only built-in Keras layers, so plain `keras` loads it.

A variant may train in a faster but mathematically identical form: the one-hot SimpleRNN's input
kernel W times a one-hot vector e_t is row t of W, so training gathers rows of W (an Embedding
holding W) instead of multiplying 500-wide one-hot vectors. Same weights, same parameter count,
same outputs; the trained weights are copied into the plain one-hot model for publishing.

Builders import Keras when they run, not when this module is read: the config validates variant
names, and estimates a run's memory from each variant's footprint, against this registry without
loading TensorFlow. Adding a variant is one `register` call (see the README).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

# Builders take (num_words, maxlen) and, keyword-only, the ModelConfig fields they use.
ModelBuilder = Callable[..., "keras.Model"]


@dataclass(frozen=True)
class Footprint:
    """What one variant holds in memory beyond what every variant holds, in values of 4 bytes: the
    config's memory estimate adds it to the SimpleRNN core all variants share."""

    weights: int = 0  # parameters beyond the shared core (an embedding table)
    evaluation_input: int = 0  # values per review the published form builds as its input (one-hot vectors)


# A footprint takes (num_words, maxlen, options): the options are the variant's ModelConfig fields.
FootprintOf = Callable[[int, int, dict[str, Any]], Footprint]


@dataclass(frozen=True)
class Variant:
    """One trainable variant. The training form's weights, in order, must be the published form's."""

    name: str
    description: str  # one line in reports and model cards
    build: ModelBuilder  # the published form
    build_for_training: ModelBuilder | None = None  # an identical but faster form, if any
    footprint: FootprintOf | None = None  # None: nothing beyond the shared core

    @property
    def options(self) -> tuple[str, ...]:
        """The ModelConfig fields this variant reads: its builder's keyword-only parameters."""
        parameters = inspect.signature(self.build).parameters.values()
        return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def option_values(self, model_config: Any) -> dict[str, Any]:
        """This variant's options, read from a ModelConfig (or anything with those attributes)."""
        return {name: getattr(model_config, name) for name in self.options}

    def footprint_of(self, num_words: int, maxlen: int, model_config: Any) -> Footprint:
        """This variant's memory beyond the shared core, for these sizes (no Keras needed)."""
        if self.footprint is None:
            return Footprint()
        return self.footprint(num_words, maxlen, self.option_values(model_config))


VARIANTS: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Adds `variant` to the registry; refuses a name already taken or a training form whose
    options differ from the published form's."""
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    if variant.build_for_training is not None:
        training_form = Variant(variant.name, variant.description, variant.build_for_training)
        if training_form.options != variant.options:
            raise ValueError(
                f"variant {variant.name!r}: the training form's options {training_form.options} "
                f"differ from the published form's {variant.options}"
            )
    VARIANTS[variant.name] = variant
    return variant


def get(name: str) -> Variant:
    """The registered variant `name`; unknown names are refused earlier, by the config."""
    return VARIANTS[name]


def _token_ids(maxlen: int) -> keras.KerasTensor:
    import keras

    return keras.Input(shape=(maxlen,), dtype="int32", name="token_ids")


def build_onehot(num_words: int, maxlen: int, *, rnn_units: int) -> keras.Model:
    """SimpleRNN on one-hot vectors of the ids, then a sigmoid unit (4,081 parameters by default).

    The one-hot encoding happens inside the model, batch by batch, so no (n, maxlen, num_words)
    array of a whole split ever exists.
    """
    import keras

    ids = _token_ids(maxlen)
    one_hot = keras.layers.CategoryEncoding(num_tokens=num_words, output_mode="one_hot", name="one_hot")(ids)
    hidden = keras.layers.SimpleRNN(rnn_units, name="rnn")(one_hot)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="onehot_simplernn")


def build_onehot_gather(num_words: int, maxlen: int, *, rnn_units: int) -> keras.Model:
    """The one-hot SimpleRNN computed by gathering rows of its input kernel (training form)."""
    import keras

    from tasks.training.layers import InputFreeSimpleRNNCell

    ids = _token_ids(maxlen)
    cell = InputFreeSimpleRNNCell(rnn_units)
    projected = keras.layers.Embedding(
        num_words, rnn_units, embeddings_initializer=cell.kernel_initializer, name="input_kernel"
    )(ids)
    hidden = keras.layers.RNN(cell, name="rnn")(projected)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="onehot_simplernn_gather")


def build_embedding(num_words: int, maxlen: int, *, rnn_units: int, embedding_dim: int) -> keras.Model:
    """Embedding(num_words, embedding_dim) feeding SimpleRNN(units) and a sigmoid unit (8,209 parameters)."""
    import keras

    ids = _token_ids(maxlen)
    embedded = keras.layers.Embedding(num_words, embedding_dim, name="embedding")(ids)
    hidden = keras.layers.SimpleRNN(rnn_units, name="rnn")(embedded)
    output = keras.layers.Dense(1, activation="sigmoid", name="sentiment")(hidden)
    return keras.Model(ids, output, name="embedding_simplernn")


def onehot_footprint(num_words: int, maxlen: int, options: dict[str, Any]) -> Footprint:
    """The published form one-hot encodes a whole batch in memory: num_words values per id."""
    return Footprint(evaluation_input=maxlen * num_words)


def embedding_footprint(num_words: int, maxlen: int, options: dict[str, Any]) -> Footprint:
    """The embedding table, one row per word."""
    return Footprint(weights=num_words * options["embedding_dim"])


register(
    Variant(
        "onehot",
        "SimpleRNN over one-hot word ids, then a sigmoid unit",
        build_onehot,
        build_for_training=build_onehot_gather,
        footprint=onehot_footprint,
    )
)
register(
    Variant("embedding", "Embedding, SimpleRNN, then a sigmoid unit", build_embedding, footprint=embedding_footprint)
)
# The reference recipe compares these two; a run trains them unless told otherwise.
DEFAULT_VARIANTS = ("onehot", "embedding")
