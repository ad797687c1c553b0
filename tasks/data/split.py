"""The split stage's logic: a resolved source's train and test reviews, and its training part split
into train and val as the recipe does (`train_test_split` with the run's seed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.config import DataConfig
from tasks.data.corpus import Reviews, load_keras_npz, load_offline_reviews
from tasks.data.own_reviews import Ingest, split_own_reviews
from tasks.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """What the split stage hands on: the train, val and test reviews, and for one's own reviews
    what reading their files found (rows, duplicates, conflicting labels)."""

    reviews: dict[str, Reviews]
    ingest: Ingest | None = None


def split_reviews(reviews: Reviews, val_fraction: float, seed: int) -> tuple[Reviews, Reviews]:
    """Train and val parts as `train_test_split(x, y, test_size=val_fraction, random_state=seed)`."""
    from sklearn.model_selection import train_test_split  # on first use: a cached run never splits

    if len(reviews) < 2:
        raise DataError(f"cannot split {len(reviews)} review(s) into train and val")
    try:
        train_rows, val_rows = train_test_split(np.arange(len(reviews)), test_size=val_fraction, random_state=seed)
    except ValueError as error:
        raise DataError(f"cannot split {len(reviews)} reviews with val fraction {val_fraction} ({error})") from None
    return reviews.take(train_rows), reviews.take(val_rows)


def load_reviews(kind: str, path: str | Path, num_words: int) -> tuple[Reviews, Reviews]:
    """Train and test reviews of a resolved source: an imdb.npz, or the offline corpus CSV."""
    if kind == "offline":
        return load_offline_reviews(path, num_words)
    return load_keras_npz(path, num_words)


def split_source(kind: str, path: str | Path, num_words: int, val_fraction: float, seed: int) -> dict[str, Reviews]:
    """The train, val and test reviews of a source: its training part split as the recipe does."""
    train_part, test = load_reviews(kind, path, num_words)
    train, val = split_reviews(train_part, val_fraction, seed)
    log.info("split: %d train / %d val / %d test reviews", len(train), len(val), len(test))
    return {"train": train, "val": val, "test": test}


def split_own_source(files: list[str], config: DataConfig, seed: int) -> Splits:
    """The train, val and test reviews of one's own files, split by the hash of each review's text."""
    splits, ingest = split_own_reviews(
        files,
        config.text_column,
        config.label_column,
        config.num_words,
        (config.test_fraction, config.val_fraction),
        seed,
    )
    log.info("split: %d train / %d val / %d test reviews", *(len(splits[name]) for name in ("train", "val", "test")))
    return Splits(splits, ingest)
