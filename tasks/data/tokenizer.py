"""The corpus's tokenizer over a whole batch of reviews at once: the words of `corpus.tokenize` (the
pattern [a-z0-9]+(?:'[a-z0-9]+)*, after lowercasing and removing "<br />"), found by one compiled
loop over the batch's UTF-8 bytes (numba) instead of a regular expression per review, each word
hashed as it is read; then counted or looked up in open-addressing tables of those hashes, every
hit confirmed byte for byte.

Same words, byte for byte, as `corpus.tokenize`:
- Python lowercases every character, but only ASCII letters and two other characters lowercase to
  anything the pattern can match: "İ" (U+0130) to "i" and a combining dot, and the Kelvin sign
  (U+212A) to "k". Every other byte outside [a-z0-9'] separates words.
- "<br />" (any case) separates words, as its replacement by a space does after lowercasing.
- An apostrophe belongs to a word only with a letter or digit of the same review on both sides.

A large batch runs in parts, one per core, each in a thread (`tasks/data/parallel.py`).

The loops themselves are in `tasks/data/tokenizer_loops.py`, imported on first use.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from tasks.data import parallel

if TYPE_CHECKING:
    from types import ModuleType


def _loops() -> ModuleType:
    """The compiled loops, imported on first use: numba loads scipy and its compiler with it, which
    a process that never tokenizes (the pipeline's own before its server starts) should not wait for."""
    from tasks.data import tokenizer_loops

    return tokenizer_loops


@dataclass(frozen=True)
class Words:
    """The words of a batch of reviews: word i is data[starts[i]:starts[i] + lengths[i]] (`data` holds
    the words lowercased), and review r's words are words[review_offsets[r]:review_offsets[r + 1]]."""

    data: np.ndarray  # uint8
    starts: np.ndarray  # int64 (words,)
    lengths: np.ndarray  # int64 (words,)
    review_offsets: np.ndarray  # int64 (reviews + 1,)

    def __len__(self) -> int:
        return len(self.starts)

    def texts(self, positions: np.ndarray) -> list[str]:
        """The words at `positions` as Python strings."""
        starts, lengths = self.starts[positions].tolist(), self.lengths[positions].tolist()
        return [
            self.data[start : start + length].tobytes().decode("ascii")
            for start, length in zip(starts, lengths, strict=True)
        ]

    def as_lists(self) -> list[list[str]]:
        """Each review's words as Python strings (for tests and small batches)."""
        words = self.texts(np.arange(len(self)))
        return [words[start:end] for start, end in itertools.pairwise(self.review_offsets.tolist())]


def split_words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """The words of every review in `texts` (Arrow strings, no nulls), as `corpus.tokenize` gives them."""
    loops = _loops()
    raw, offsets = _bytes_of(texts)
    reviews = len(offsets) - 1
    data = np.empty(int(offsets[-1] - offsets[0]) + reviews + 1, dtype=np.uint8)
    rows = np.empty((_most_words(offsets), 4), dtype=np.uint64)
    review_offsets = np.empty(reviews + 1, dtype=np.int64)
    everything = np.ones(reviews, np.bool_)
    found, written, _ = loops.scan(
        loops.KEEP,
        raw,
        offsets,
        0,
        0,
        0,
        everything,
        loops.WORD_BYTE,
        loops.NO_TABLE,
        data,
        0,
        data,
        rows,
        loops.NO_IDS,
        review_offsets,
    )
    starts, lengths = rows[:found, loops.START].astype(np.int64), rows[:found, loops.LENGTH].astype(np.int64)
    return Words(data[:written].copy(), starts, lengths, review_offsets)


def count_words(texts: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None) -> Counter[str]:
    """How often each word occurs in `texts` (only in the reviews `rows` marks, when given)."""
    counter = WordCounter()
    counter.add(texts, rows)
    return counter.counts()


class WordCounter:
    """Word counts over any number of batches, kept in compiled tables (one per part of a batch, each
    distinct word's bytes once in each), so a batch adds its words without any Python object per word."""

    def __init__(self) -> None:
        self._tables: list[_CountTable] = []

    def add(self, texts: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None) -> None:
        """Counts the words of `texts` (only of the reviews `rows` marks, when given)."""
        raw, offsets = _bytes_of(texts)
        chosen = np.ones(len(offsets) - 1, dtype=np.bool_) if rows is None else np.asarray(rows, dtype=np.bool_)
        bounds = parallel.part_bounds(offsets)
        self._tables += [_CountTable() for _ in range(len(bounds) - len(self._tables))]

        def count_part(part: int, first: int, end: int) -> None:
            self._tables[part].add(raw, offsets[first : end + 1], chosen[first:end])

        parallel.in_parts(count_part, bounds)

    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for table in self._tables:
            total.update(table.counts())
        return total


class _CountTable:
    """One table of word counts: an open-addressing table of the distinct words' hashes, their bytes
    and their counts."""

    def __init__(self) -> None:
        loops = _loops()
        self._table = np.zeros((loops.FIRST_TABLE_SLOTS, 4), dtype=np.uint64)
        self._distinct = np.zeros((loops.FIRST_TABLE_SLOTS // 2, 4), dtype=np.uint64)
        self._data = np.empty(0, dtype=np.uint8)  # the distinct words' bytes, then room for a batch's
        self._found, self._written = 0, 0

    def add(self, raw: np.ndarray, offsets: np.ndarray, chosen: np.ndarray) -> None:
        """Counts the words of the chosen reviews (`offsets` into `raw`)."""
        loops = _loops()
        reviews = len(offsets) - 1
        needed = self._written + int(offsets[-1] - offsets[0]) + 1  # every word of the batch new, at worst
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data)), dtype=np.uint8)
            grown[: self._written] = self._data[: self._written]
            self._data = grown
        review, unused_offsets = 0, np.empty(reviews + 1, dtype=np.int64)
        while True:
            self._found, self._written, review = loops.scan(
                loops.COUNT, raw, offsets, review, self._found, self._written, chosen, loops.WORD_BYTE, self._table,
                self._data, 0, self._data, self._distinct, loops.NO_IDS, unused_offsets,
            )  # fmt: skip
            if review == reviews:
                return
            self._grow(self._found + int(offsets[review + 1] - offsets[review]) // 2 + 1)

    def _grow(self, most: int) -> None:
        """Grows the table until `most` words fill it at most half."""
        loops = _loops()
        slots = max(len(self._table), _table_slots(most))
        found = self._found
        self._distinct = np.concatenate([self._distinct[:found], np.zeros((slots // 2 - found, 4), np.uint64)])
        self._table = loops.table_of(self._distinct[:found], self._data, slots)

    def counts(self) -> dict[str, int]:
        loops = _loops()
        found, distinct = self._found, self._distinct
        words = Words(
            self._data, distinct[:found, loops.START].astype(np.int64), distinct[:found, loops.LENGTH], loops.NO_OFFSETS
        )
        return dict(zip(words.texts(np.arange(found)), distinct[:found, loops.VALUE].tolist(), strict=True))


def normalize_ascii(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised bytes of each ASCII review (lowercased, whitespace runs as one space, trimmed),
    each review's offsets into them, and which reviews were ASCII (the others are left empty)."""
    loops = _loops()
    raw, offsets = _bytes_of(texts)

    def normalize_part(_: int, first: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part_offsets = offsets[first : end + 1]
        normalized = np.empty(int(part_offsets[-1] - part_offsets[0]), dtype=np.uint8)
        normalized_offsets, ascii_rows = np.empty(end - first + 1, dtype=np.int64), np.empty(end - first, np.bool_)
        written = loops.normalize_ascii(
            raw, part_offsets, loops.ASCII_WHITESPACE, normalized, normalized_offsets, ascii_rows
        )
        return normalized[:written], normalized_offsets, ascii_rows

    parts = parallel.in_parts(normalize_part, parallel.part_bounds(offsets))
    normalized, normalized_offsets = parallel.joined([(values, part_offsets) for values, part_offsets, _ in parts])
    return normalized, normalized_offsets, np.concatenate([ascii_rows for *_, ascii_rows in parts])


def normalize(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised UTF-8 bytes of every review, as " ".join(text.lower().split()) gives them, and
    where each review's are (starts, ends). ASCII reviews go through `normalize_ascii`'s loop; the
    others are lowercased by Python's `lower()` (Unicode's full case mapping, final sigma included)
    and their whitespace collapsed by a loop that knows Python's whitespace."""
    normalized, offsets, ascii_rows = normalize_ascii(texts)
    starts, ends = offsets[:-1].copy(), offsets[1:].copy()
    others = np.flatnonzero(~ascii_rows)
    if others.size:
        lowered = pa.array([text.lower() for text in texts.take(pa.array(others)).to_pylist()], pa.large_string())
        collapsed, collapsed_offsets = _collapse_whitespace(lowered)
        starts[others], ends[others] = collapsed_offsets[:-1] + len(normalized), collapsed_offsets[1:] + len(normalized)
        normalized = np.concatenate([normalized, collapsed])
    return normalized, starts, ends


def _collapse_whitespace(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    loops = _loops()
    raw, offsets = _bytes_of(texts)

    def collapse_part(_: int, first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        part_offsets = offsets[first : end + 1]
        collapsed = np.empty(int(part_offsets[-1] - part_offsets[0]), dtype=np.uint8)
        collapsed_offsets = np.empty(end - first + 1, dtype=np.int64)
        written = loops.collapse_whitespace(raw, part_offsets, loops.WHITESPACE, collapsed, collapsed_offsets)
        return collapsed[:written], collapsed_offsets

    return parallel.joined(parallel.in_parts(collapse_part, parallel.part_bounds(offsets)))


def _bytes_of(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of Arrow strings and each review's offsets into them (no copy of the bytes)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    texts = texts.cast(pa.large_string())
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=len(texts) + 1, offset=texts.offset * 8)
    raw = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return raw, offsets


def _table_slots(words: int) -> int:
    """Slots for a table of `words` words: a power of two over twice as many (at most half full)."""
    return max(_loops().FIRST_TABLE_SLOTS, 1 << (2 * words).bit_length())


def _most_words(offsets: np.ndarray) -> int:
    """A bound on the words of the reviews: each takes a byte and a separator (or its review's end)."""
    return int(offsets[-1] - offsets[0]) // 2 + len(offsets)


class WordIds:
    """Word -> id lookups for whole batches: the words in an open-addressing table of their hashes,
    every hit confirmed byte for byte. Words the tokenizer can never produce (not ASCII, or empty)
    are left out."""

    def __init__(self, ids: dict[str, int]) -> None:
        loops = _loops()
        known = [word for word in ids if word.isascii() and word]
        encoded = [word.encode("ascii") for word in known]
        rows = np.zeros((len(encoded), 4), dtype=np.uint64)
        rows[:, loops.LENGTH] = [len(word) for word in encoded]
        rows[1:, loops.START] = np.cumsum(rows[:-1, loops.LENGTH])
        self._data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        loops.hash_words(self._data, rows)
        table = loops.table_of(rows, self._data, _table_slots(len(encoded)))
        occupied = table[:, loops.LENGTH] != 0
        table[occupied, loops.VALUE] = np.array([ids[word] for word in known], dtype=np.uint64)[
            table[occupied, loops.VALUE]
        ]
        self._table = table

    def encode(self, texts: pa.Array | pa.ChunkedArray, start_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Each review as `start_id` then the ids of its words that have one (the others skipped):
        the ids of all reviews one after another (int32), and each review's offsets into them."""
        loops = _loops()
        raw, offsets = _bytes_of(texts)

        def encode_part(_: int, first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
            part_offsets, reviews = offsets[first : end + 1], end - first
            data = np.empty(int(part_offsets[-1] - part_offsets[0]) + 1, dtype=np.uint8)  # one word at a time
            encoded = np.empty(_most_words(part_offsets) + reviews, dtype=np.int32)
            review_offsets = np.empty(reviews + 1, dtype=np.int64)
            everything = np.ones(reviews, np.bool_)
            found, _, _ = loops.scan(
                loops.ENCODE, raw, part_offsets, 0, 0, 0, everything, loops.WORD_BYTE, self._table, self._data,
                start_id, data, loops.NO_WORDS, encoded, review_offsets,
            )  # fmt: skip
            return encoded[:found], review_offsets

        return parallel.joined(parallel.in_parts(encode_part, parallel.part_bounds(offsets)))


def compile_loops() -> None:
    """Compiles every loop of this module into numba's cache (beside this file) by running each once
    on a little text, so that the first run after an install does not wait for the compiler."""
    texts = pa.array(["It's a <br />film", "İ\u212a"])
    split_words(texts)
    WordCounter().add(texts)
    WordIds({"film": 3}).encode(texts, 1)
    normalize(texts)
