"""Building a registered variant (tasks/training/variants.py) from a ModelConfig, in its published or its
training form, and moving trained weights from one form to the other."""

from __future__ import annotations

import keras

from tasks.config import ModelConfig
from tasks.training import variants


def build_model(variant: str, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The named variant as published, uncompiled (unknown names are refused earlier, by the config)."""
    spec = variants.get(variant)
    return spec.build(num_words, maxlen, **spec.option_values(config))


def build_training_model(variant: str, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The named variant in the form it trains fastest in (the published form when there is no other)."""
    spec = variants.get(variant)
    return (spec.build_for_training or spec.build)(num_words, maxlen, **spec.option_values(config))


def to_published(variant: str, trained: keras.Model, num_words: int, maxlen: int, config: ModelConfig) -> keras.Model:
    """The published form of `variant` carrying the weights of its trained form."""
    if variants.get(variant).build_for_training is None:
        return trained
    published = build_model(variant, num_words, maxlen, config)
    published.set_weights(trained.get_weights())
    return published
