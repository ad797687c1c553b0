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

The loops are compiled on first use and cached beside this file (numba's `cache=True`), so only
the first process after an install or a change pays the compilation.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

SPACE, APOSTROPHE = ord(" "), ord("'")
# A byte's word character after lowercasing (the byte itself for [a-z0-9'], its lowercase for
# [A-Z]), 0 for a byte that separates words.
_WORD_BYTE = np.zeros(256, dtype=np.uint8)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789'":
    _WORD_BYTE[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _WORD_BYTE[_byte] = _byte + 32
_FIRST_TABLE_SLOTS = 1 << 12  # grown by doubling: a table is never more than half full


@njit(cache=True, nogil=True, inline="always")
def _mixed(value):
    """A 64-bit hash's bits spread (splitmix64's finaliser), so its low bits can index a table."""
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


# An open-addressing table of words: one row of four uint64 per slot, so that a probe reads one
# cache line. Length 0 marks an empty slot (no word is empty); the value is an id or a count's index.
_HASH, _VALUE, _START, _LENGTH = range(4)
# Arguments a mode of `_scan` leaves unused.
_NO_TABLE, _NO_WORDS = np.zeros((0, 4), dtype=np.uint64), np.zeros((0, 4), dtype=np.uint64)
_NO_IDS, _NO_OFFSETS = np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)


@njit(cache=True, nogil=True)
def _is_dotted_capital_i(raw, position, end):
    """ "İ" (U+0130) at `position`: it lowercases to "i" and a combining dot (a separator)."""
    return raw[position] == 0xC4 and position + 1 < end and raw[position + 1] == 0xB0


@njit(cache=True, nogil=True)
def _is_line_break(raw, position, end):
    """ "<br />" in any case at `position`: it lowercases to "<br />", which the tokenizer removes."""
    return (
        raw[position] == 60
        and position + 6 <= end
        and raw[position + 1] | 32 == 98
        and raw[position + 2] | 32 == 114
        and raw[position + 3] == 32
        and raw[position + 4] == 47
        and raw[position + 5] == 62
    )


@njit(cache=True, nogil=True)
def _is_kelvin_sign(raw, position, end):
    """The Kelvin sign (U+212A) at `position`: it lowercases to "k"."""
    return raw[position] == 0xE2 and position + 2 < end and raw[position + 1] == 0x84 and raw[position + 2] == 0xAA


# What `_scan` does with each word.
_KEEP, _ENCODE, _COUNT = range(3)


# The loop below reads bytes and probes its table inline rather than through helper functions: a
# compiled call that takes arrays costs their reference counts on every call, more than the work.
@njit(cache=True, nogil=True)
def _scan(
    mode,
    raw,
    offsets,
    first_review,
    found,
    written,
    chosen,
    word_byte,
    table,
    known_data,
    start_id,
    data,
    words,
    encoded,
    review_offsets,
):
    """The words of the chosen reviews from `first_review` on, lowercased into `data`, each then handled by
    `mode` (`found` rows of `words` or `encoded` and `written` bytes of `data` filled before):

    - _KEEP: its bytes stay in `data` followed by a space; its row of `words` holds its start,
      length and hash; `review_offsets` bound each review's rows.
    - _ENCODE: each review becomes `start_id` then the table's value of each word the table holds
      (bytes in `known_data`; words it lacks skipped), in `encoded`; `review_offsets` bound them.
    - _COUNT: the table (its bytes in `data`) gains each new word, its row of `words` holding its
      start, length, hash and count so far; a word already there only counts. It stops before a
      review whose words could fill the table over half (or `words`): the caller grows both and
      goes on from there.

    Returns the rows filled, the bytes of `data` used and the review it stopped at (all of them
    when done)."""
    mask = np.uint64(max(len(table), 1) - 1)
    for review in range(first_review, len(offsets) - 1):
        review_offsets[review] = found
        if not chosen[review]:
            continue
        most = found + (offsets[review + 1] - offsets[review]) // 2 + 1
        if mode == _COUNT and (2 * most >= len(table) or most > len(words)):
            return found, written, review
        if mode == _ENCODE:
            encoded[found] = start_id
            found += 1
        position, end = offsets[review], offsets[review + 1]
        while position < end:
            # Between words: every byte but a letter, a digit, "İ" or the Kelvin sign; "<br />" whole.
            character = word_byte[raw[position]]
            if character <= APOSTROPHE:
                if _is_dotted_capital_i(raw, position, end) or _is_kelvin_sign(raw, position, end):
                    character = 105 if raw[position] == 0xC4 else 107
                else:
                    position += 6 if _is_line_break(raw, position, end) else 1
                    continue
            # A word: letters and digits, an apostrophe only between two of them.
            word_start, hashed = written, np.uint64(_FNV_OFFSET)
            while True:
                data[written] = character
                written += 1
                hashed = (hashed ^ np.uint64(character)) * np.uint64(_FNV_PRIME)
                position += 3 if raw[position] == 0xE2 else 1  # the Kelvin sign's three bytes are one "k"
                if position >= end:
                    break
                character = word_byte[raw[position]]
                if character > APOSTROPHE:
                    continue
                if _is_dotted_capital_i(raw, position, end) or _is_kelvin_sign(raw, position, end):
                    character = 105 if raw[position] == 0xC4 else 107
                    continue
                if character != APOSTROPHE or position + 1 >= end:
                    break
                following = word_byte[raw[position + 1]]
                if not (
                    following > APOSTROPHE
                    or _is_dotted_capital_i(raw, position + 1, end)
                    or _is_kelvin_sign(raw, position + 1, end)
                ):
                    break
            length, hashed = written - word_start, _mixed(hashed)
            if mode == _KEEP:
                words[found, _START], words[found, _LENGTH], words[found, _HASH] = word_start, length, hashed
                found += 1
                data[written] = SPACE
                written += 1
                continue
            entry, slot = -1, hashed & mask  # the word's entry, or the empty slot where it goes
            while table[slot, _LENGTH] != 0:
                if table[slot, _HASH] == hashed and np.int64(table[slot, _LENGTH]) == length:
                    known_start, same = np.int64(table[slot, _START]), True
                    for offset in range(length):
                        if known_data[known_start + offset] != data[word_start + offset]:
                            same = False
                            break
                    if same:
                        entry = np.int64(table[slot, _VALUE])
                        break
                slot = (slot + np.uint64(1)) & mask
            if mode == _ENCODE:
                if entry >= 0:
                    encoded[found] = entry
                    found += 1
                written = 0  # a word's bytes are needed no longer than its probe
            elif entry >= 0:
                words[entry, _VALUE] += 1
                written = word_start  # counted: its bytes are in `data` already
            else:
                table[slot, _HASH], table[slot, _VALUE] = hashed, found
                table[slot, _START], table[slot, _LENGTH] = word_start, length
                words[found, _HASH], words[found, _VALUE] = hashed, 1
                words[found, _START], words[found, _LENGTH] = word_start, length
                found += 1
    review_offsets[len(offsets) - 1] = found
    return found, written, len(offsets) - 1


@njit(cache=True, nogil=True)
def _hash_words(data, words):
    """The hash `_scan` gives each word (its start and length in `words`), into `words`."""
    for word in range(len(words)):
        hashed = np.uint64(_FNV_OFFSET)
        start = np.int64(words[word, _START])
        for position in range(start, start + np.int64(words[word, _LENGTH])):
            hashed = (hashed ^ np.uint64(data[position])) * np.uint64(_FNV_PRIME)
        words[word, _HASH] = _mixed(hashed)


@njit(cache=True, nogil=True)
def _table_of(words, slots):
    """A table of `slots` slots holding the (distinct) `words`, each its row index as its value."""
    table = np.zeros((slots, 4), dtype=np.uint64)
    mask = np.uint64(slots - 1)
    for word in range(len(words)):
        slot = words[word, _HASH] & mask
        while table[slot, _LENGTH] != 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot, _HASH], table[slot, _VALUE] = words[word, _HASH], word
        table[slot, _START], table[slot, _LENGTH] = words[word, _START], words[word, _LENGTH]
    return table


# Bytes Python's str.split() splits on, among ASCII: \t \n \v \f \r, the four separators \x1c-\x1f, space.
_ASCII_WHITESPACE = np.zeros(128, dtype=np.bool_)
_ASCII_WHITESPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


@njit(cache=True, nogil=True)
def _normalize_ascii(raw, offsets, whitespace, normalized, normalized_offsets, ascii_rows):
    """Each ASCII review lowercased, its whitespace runs as one space, none at either end (as
    " ".join(text.lower().split()) gives it); a review with any other byte is left empty and marked."""
    written = 0
    for review in range(len(offsets) - 1):
        normalized_offsets[review], ascii_rows[review] = written, True
        pending_space, review_start = False, written
        for position in range(offsets[review], offsets[review + 1]):
            byte = raw[position]
            if byte >= 128:
                ascii_rows[review], written = False, review_start
                break
            if whitespace[byte]:
                pending_space = written > review_start
                continue
            if pending_space:
                normalized[written] = SPACE
                written += 1
                pending_space = False
            normalized[written] = byte + 32 if 65 <= byte <= 90 else byte
            written += 1
    normalized_offsets[len(offsets) - 1] = written
    return written


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
    raw, offsets = _bytes_of(texts)
    reviews = len(offsets) - 1
    data = np.empty(int(offsets[-1] - offsets[0]) + reviews + 1, dtype=np.uint8)
    rows = np.empty((_most_words(offsets), 4), dtype=np.uint64)
    review_offsets = np.empty(reviews + 1, dtype=np.int64)
    everything = np.ones(reviews, np.bool_)
    found, written, _ = _scan(
        _KEEP, raw, offsets, 0, 0, 0, everything, _WORD_BYTE, _NO_TABLE, data, 0, data, rows, _NO_IDS, review_offsets
    )
    starts, lengths = rows[:found, _START].astype(np.int64), rows[:found, _LENGTH].astype(np.int64)
    return Words(data[:written].copy(), starts, lengths, review_offsets)


def count_words(texts: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None) -> Counter[str]:
    """How often each word occurs in `texts` (only in the reviews `rows` marks, when given)."""
    counter = WordCounter()
    counter.add(texts, rows)
    return counter.counts()


class WordCounter:
    """Word counts over any number of batches, kept in one compiled table (each distinct word's
    bytes once), so a batch adds its words without any Python object per word."""

    def __init__(self) -> None:
        self._table = np.zeros((_FIRST_TABLE_SLOTS, 4), dtype=np.uint64)
        self._distinct = np.zeros((_FIRST_TABLE_SLOTS // 2, 4), dtype=np.uint64)
        self._data = np.empty(0, dtype=np.uint8)  # the distinct words' bytes, then room for a batch's
        self._found, self._written = 0, 0

    def add(self, texts: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None) -> None:
        """Counts the words of `texts` (only of the reviews `rows` marks, when given)."""
        raw, offsets = _bytes_of(texts)
        reviews = len(offsets) - 1
        chosen = np.ones(reviews, dtype=np.bool_) if rows is None else np.asarray(rows, dtype=np.bool_)
        needed = self._written + int(offsets[-1] - offsets[0]) + 1  # every word of the batch new, at worst
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data)), dtype=np.uint8)
            grown[: self._written] = self._data[: self._written]
            self._data = grown
        review, unused_offsets = 0, np.empty(reviews + 1, dtype=np.int64)
        while True:
            self._found, self._written, review = _scan(
                _COUNT, raw, offsets, review, self._found, self._written, chosen, _WORD_BYTE, self._table,
                self._data, 0, self._data, self._distinct, _NO_IDS, unused_offsets,
            )  # fmt: skip
            if review == reviews:
                return
            self._grow(self._found + int(offsets[review + 1] - offsets[review]) // 2 + 1)

    def _grow(self, most: int) -> None:
        """Doubles the table until `most` words fill it at most half."""
        slots = len(self._table)
        while 2 * most >= slots:
            slots *= 2
        found = self._found
        self._distinct = np.concatenate([self._distinct[:found], np.zeros((slots // 2 - found, 4), np.uint64)])
        self._table = _table_of(self._distinct[:found], slots)

    def counts(self) -> Counter[str]:
        found, distinct = self._found, self._distinct
        words = Words(self._data, distinct[:found, _START].astype(np.int64), distinct[:found, _LENGTH], _NO_OFFSETS)
        return Counter(dict(zip(words.texts(np.arange(found)), distinct[:found, _VALUE].tolist(), strict=True)))


def normalize_ascii(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised bytes of each ASCII review (lowercased, whitespace runs as one space, trimmed),
    each review's offsets into them, and which reviews were ASCII (the others are left empty)."""
    raw, offsets = _bytes_of(texts)
    reviews = len(offsets) - 1
    normalized = np.empty(int(offsets[-1] - offsets[0]), dtype=np.uint8)
    normalized_offsets, ascii_rows = np.empty(reviews + 1, dtype=np.int64), np.empty(reviews, dtype=np.bool_)
    written = _normalize_ascii(raw, offsets, _ASCII_WHITESPACE, normalized, normalized_offsets, ascii_rows)
    return normalized[:written], normalized_offsets, ascii_rows


def _bytes_of(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of Arrow strings and each review's offsets into them (no copy of the bytes)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    texts = texts.cast(pa.large_string())
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=len(texts) + 1, offset=texts.offset * 8)
    raw = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return raw, offsets


def _most_words(offsets: np.ndarray) -> int:
    """A bound on the words of the reviews: each takes a byte and a separator (or its review's end)."""
    return int(offsets[-1] - offsets[0]) // 2 + len(offsets)


class WordIds:
    """Word -> id lookups for whole batches: the words in an open-addressing table of their hashes,
    every hit confirmed byte for byte. Words the tokenizer can never produce (not ASCII, or empty)
    are left out."""

    def __init__(self, ids: dict[str, int]) -> None:
        known = [word for word in ids if word.isascii() and word]
        encoded = [word.encode("ascii") for word in known]
        rows = np.zeros((len(encoded), 4), dtype=np.uint64)
        rows[:, _LENGTH] = [len(word) for word in encoded]
        rows[1:, _START] = np.cumsum(rows[:-1, _LENGTH])
        self._data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        _hash_words(self._data, rows)
        table = _table_of(rows, max(_FIRST_TABLE_SLOTS, 1 << (2 * len(encoded)).bit_length()))
        occupied = table[:, _LENGTH] != 0
        table[occupied, _VALUE] = np.array([ids[word] for word in known], dtype=np.uint64)[table[occupied, _VALUE]]
        self._table = table

    def encode(self, texts: pa.Array | pa.ChunkedArray, start_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Each review as `start_id` then the ids of its words that have one (the others skipped):
        the ids of all reviews one after another (int32), and each review's offsets into them."""
        raw, offsets = _bytes_of(texts)
        reviews = len(offsets) - 1
        data = np.empty(int(offsets[-1] - offsets[0]) + 1, dtype=np.uint8)  # holds one word at a time
        encoded = np.empty(_most_words(offsets) + reviews, dtype=np.int32)
        review_offsets = np.empty(reviews + 1, dtype=np.int64)
        everything = np.ones(reviews, np.bool_)
        found, _, _ = _scan(
            _ENCODE, raw, offsets, 0, 0, 0, everything, _WORD_BYTE, self._table, self._data, start_id, data,
            _NO_WORDS, encoded, review_offsets,
        )  # fmt: skip
        return encoded[:found], review_offsets


def compile_loops() -> None:
    """Compiles every loop of this module into numba's cache (beside this file) by running each once
    on a little text, so that the first run after an install does not wait for the compiler."""
    texts = pa.array(["It's a <br />film", "İ\u212a"])
    split_words(texts)
    WordCounter().add(texts)
    WordIds({"film": 3}).encode(texts, 1)
    normalize_ascii(texts)


if __name__ == "__main__":
    compile_loops()
