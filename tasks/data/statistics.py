"""The statistics of a data set's ragged reviews, gathered batch by batch while pad-and-store writes
them: exact counts, histograms and quantiles, and a 64-bit fingerprint per review to find duplicates
and overlap between splits. Memory grows by 8 bytes a review (the fingerprints), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.data import parallel
from tasks.data.corpus import OOV_ID, START_ID, Reviews

# Length histogram bins shared by every data set, so two data sets compare bin by bin: 20 ids wide
# up to 1,000, then one bin for everything longer (offline corpus: median 175 ids, p99 915, max 2,474).
LENGTH_BIN_WIDTH = 20
LENGTH_BIN_LIMIT = 1000
LENGTH_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass(frozen=True)
class _Ids:
    """What one pass over a batch's ids finds (`review_loops.describe`)."""

    prints: np.ndarray  # uint64, a fingerprint per review
    words_per_review: np.ndarray  # int64, ids but the start id
    token_counts: np.ndarray  # int64 (num_words,)
    words: int
    oov: int
    word_ids: tuple[int, int] | None  # the lowest and highest word id


def _described_ids(reviews: Reviews, num_words: int) -> _Ids:
    """One compiled pass over the reviews' ids, in parts on every core."""
    from tasks.data import review_loops  # numba, on first use

    prints, words_per_review = np.empty(len(reviews), np.uint64), np.empty(len(reviews), np.int64)
    bounds = parallel.part_bounds(reviews.offsets)
    counts = [np.zeros(max(num_words, 1), dtype=np.int64) for _ in bounds]

    def describe_part(part: int, first: int, end: int) -> tuple[int, int, int, int]:
        return review_loops.describe(
            reviews.ids, reviews.offsets, first, end, START_ID, OOV_ID, counts[part], prints, words_per_review
        )

    found = parallel.in_parts(describe_part, bounds)
    with_words = [(low, high) for words, _, low, high in found if words]
    return _Ids(
        prints,
        words_per_review,
        np.sum(counts, axis=0),
        sum(words for words, *_ in found),
        sum(oov for _, oov, *_ in found),
        (min(low for low, _ in with_words), max(high for _, high in with_words)) if with_words else None,
    )


def fingerprints(reviews: Reviews) -> np.ndarray:
    """One uint64 per review, from its ids in order: the sum over its positions of a 64-bit mix of
    (position, id), mixed with its length. Equal reviews have equal fingerprints; unequal ones
    collide with odds ~ n^2 / 2^65."""
    return _described_ids(reviews, 1).prints


class SplitStatistics:
    """`describe()` of every review `add`ed, exactly as if described at once."""

    def __init__(self, maxlen: int, num_words: int) -> None:
        self.maxlen, self.num_words = maxlen, num_words
        self.rows = self.positives = self.empty = self.truncated = self.padded = 0
        self.words = self.oov = 0
        self.length_sum = 0
        self.lengths = np.zeros(0, dtype=np.int64)  # reviews per length (in ids)
        self.labels: dict[int, int] = {}
        self.token_counts = np.zeros(num_words, dtype=np.int64)
        self.word_ids: tuple[int, int] | None = None
        self.prints: list[np.ndarray] = []

    def add(self, reviews: Reviews) -> None:
        lengths, labels = reviews.lengths, reviews.labels
        ids = _described_ids(reviews, self.num_words)
        self.rows += len(reviews)
        self.positives += int(np.sum(labels == 1))
        self.empty += int(np.sum(ids.words_per_review == 0))
        self.truncated += int(np.sum(lengths > self.maxlen))
        self.padded += int(np.sum(lengths < self.maxlen))
        self.length_sum += int(lengths.sum())
        self.lengths = _added(self.lengths, np.bincount(lengths))
        for label, count in zip(*np.unique(labels, return_counts=True), strict=True):
            self.labels[int(label)] = self.labels.get(int(label), 0) + int(count)
        self.words += ids.words
        self.oov += ids.oov
        self.token_counts += ids.token_counts
        if ids.word_ids is not None:
            self._widen(*ids.word_ids)
        self.prints.append(ids.prints)

    def merge(self, other: SplitStatistics) -> None:
        """Adds what `other` gathered, as if its reviews had been `add`ed here after these."""
        self.rows += other.rows
        self.positives += other.positives
        self.empty += other.empty
        self.truncated += other.truncated
        self.padded += other.padded
        self.words += other.words
        self.oov += other.oov
        self.length_sum += other.length_sum
        self.lengths = _added(self.lengths, other.lengths)
        for label, count in other.labels.items():
            self.labels[label] = self.labels.get(label, 0) + count
        self.token_counts += other.token_counts
        if other.word_ids is not None:
            self._widen(*other.word_ids)
        self.prints.extend(other.prints)

    def _widen(self, low: int, high: int) -> None:
        if self.word_ids is not None:
            low, high = min(low, self.word_ids[0]), max(high, self.word_ids[1])
        self.word_ids = (low, high)

    def describe(self) -> dict:
        """Rows, labels, lengths before padding (in ids, the start id included: what `maxlen` cuts),
        truncated and padded shares, empty reviews, OOV rate and range of the word ids, token counts."""
        rows = self.rows
        present = np.flatnonzero(self.lengths)
        return {
            "rows": rows,
            "labels": {str(label): count for label, count in sorted(self.labels.items())},
            "positive_share": self.positives / rows if rows else 0.0,
            "length": {
                "min": int(present[0]) if rows else 0,
                "mean": self.length_sum / rows if rows else 0.0,
                "max": int(present[-1]) if rows else 0,
                **{f"p{round(q * 100):02d}": self._quantile(q) for q in LENGTH_QUANTILES},
            },
            "length_histogram": self._histogram(),
            "truncated_share": self.truncated / rows if rows else 0.0,
            "padded_share": self.padded / rows if rows else 0.0,
            "empty_reviews": self.empty,
            "oov_rate": self.oov / self.words if self.words else 0.0,
            "word_ids": None if self.word_ids is None else {"min": self.word_ids[0], "max": self.word_ids[1]},
            # How often each word id occurs (ids beyond the vocabulary, which no split holds, in the last
            # slot): the token-frequency distribution drift compares.
            "token_counts": self.token_counts.tolist(),
        }

    def _quantile(self, share: float) -> float:
        """numpy's default (linear) quantile of the lengths, from their counts."""
        if not self.rows:
            return 0.0
        position = (self.rows - 1) * share
        below = int(np.floor(position))
        cumulative = np.cumsum(self.lengths)
        low = int(np.searchsorted(cumulative, below, side="right"))
        high = int(np.searchsorted(cumulative, min(below + 1, self.rows - 1), side="right"))
        return float(low + (high - low) * (position - below))

    def _histogram(self) -> list[int]:
        """Counts per LENGTH_BIN_WIDTH-wide bin from 0; the last bin holds every length >= LENGTH_BIN_LIMIT."""
        last = LENGTH_BIN_LIMIT // LENGTH_BIN_WIDTH
        bins = np.minimum(np.arange(len(self.lengths)) // LENGTH_BIN_WIDTH, last)
        return np.bincount(bins, weights=self.lengths, minlength=last + 1).astype(np.int64).tolist()

    def fingerprints(self) -> np.ndarray:
        return np.concatenate(self.prints) if self.prints else np.zeros(0, dtype=np.uint64)


def _added(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two count arrays added, the shorter one padded with zeros."""
    size = max(len(first), len(second))
    return np.pad(first, (0, size - len(first))) + np.pad(second, (0, size - len(second)))


def describe_overlap(prints: dict[str, np.ndarray], training_part: tuple[str, ...] = ("train", "val")) -> dict:
    """Duplicates within each split, and reviews of one split found in another, by fingerprint
    (each split's fingerprints sorted once, every lookup a binary search in them)."""
    names = list(prints)
    ordered = {name: np.sort(prints[name]) for name in names}
    within = {}
    for name in names:
        repeated = int(np.count_nonzero(ordered[name][1:] == ordered[name][:-1]))
        within[name] = {"rows": repeated, "share": repeated / max(len(prints[name]), 1)}
    across = {}
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            repeated = int(_found_in(prints[second], ordered[first]).sum())
            across[f"{first}/{second}"] = {"rows": repeated, "share": repeated / max(len(prints[second]), 1)}
    in_training = np.zeros(len(prints["test"]), dtype=bool)
    for name in training_part:
        in_training |= _found_in(prints["test"], ordered[name])
    found = int(in_training.sum())
    return {
        "within": within,
        "across": across,
        "test_in_training": {"rows": found, "share": found / max(len(prints["test"]), 1)},
    }


def _found_in(values: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Which of `values` the sorted array `ordered` holds (np.isin, by binary search)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=bool)
    places = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return ordered[places] == values
