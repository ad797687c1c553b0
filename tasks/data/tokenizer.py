"""The corpus's tokenizer over a whole batch of reviews at once: the words of
`corpus.tokenize` (the pattern [a-z0-9]+(?:'[a-z0-9]+)*, after lowercasing and removing "<br />"),
found with a few passes of bytes.translate and numpy over the batch's UTF-8 bytes instead of a regex
per review, then counted or looked up by their bytes packed into integers.

Same words, byte for byte, as `corpus.tokenize`:
- Python lowercases every character, but only ASCII letters and two other characters lowercase to
  anything the pattern can match: "İ" (U+0130) to "i" and a combining dot, and the Kelvin sign
  (U+212A) to "k". Every other byte outside [a-z0-9'] separates words.
- "<br />" (any case) separates words, as its replacement by a space does after lowercasing.
- An apostrophe belongs to a word only with a letter or digit of the same review on both sides.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SPACE = ord(" ")
APOSTROPHE = ord("'")
_WORD_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789'"
# Uppercase ASCII lowercased, word bytes kept, every other byte a space: one translate per batch.
_CLASSIFY = bytes(byte + 32 if 65 <= byte <= 90 else byte if byte in _WORD_BYTES else SPACE for byte in range(256))
_DOTTED_CAPITAL_I = b"\xc4\xb0"  # lowercases to "i" + U+0307, a separator
_KELVIN_SIGN = b"\xe2\x84\xaa"  # lowercases to "k"
_LINE_BREAK = b"<br />"
_LINE_BREAKS = re.compile(rb"<[bB][rR] />")  # what lowercases to "<br />"
# Words of up to 8 bytes are one uint64, of up to 16 two: looked up exactly by those integers.
# Longer words (a tiny share of any English text) go through a dict of their bytes.
_SHORT, _MEDIUM = 8, 16
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it spreads the first word over 64 bits


@dataclass(frozen=True)
class Words:
    """The words of a batch of reviews: word i is data[starts[i]:starts[i] + lengths[i]] (`data` is
    the batch's bytes lowercased, separators as spaces), and review r's words are
    words[review_offsets[r]:review_offsets[r + 1]]."""

    data: bytes
    starts: np.ndarray  # int64 (words,)
    lengths: np.ndarray  # int64 (words,)
    review_offsets: np.ndarray  # int64 (reviews + 1,)

    def __len__(self) -> int:
        return len(self.starts)

    def texts(self, positions: np.ndarray) -> list[str]:
        """The words at `positions` as Python strings."""
        starts, lengths = self.starts[positions].tolist(), self.lengths[positions].tolist()
        return [
            self.data[start : start + length].decode("ascii") for start, length in zip(starts, lengths, strict=True)
        ]

    def as_lists(self) -> list[list[str]]:
        """Each review's words as Python strings (for tests and small batches)."""
        words = self.texts(np.arange(len(self)))
        return [words[start:end] for start, end in itertools.pairwise(self.review_offsets.tolist())]


def split_words(texts: pa.Array | pa.ChunkedArray) -> Words:
    """The words of every review in `texts` (Arrow strings, no nulls), as `corpus.tokenize` gives them."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    texts = texts.cast(pa.large_string())
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=len(texts) + 1, offset=texts.offset * 8)
    raw = bytes(memoryview(data_buffer)[int(offsets[0]) : int(offsets[-1])]) if data_buffer is not None else b""
    offsets = offsets - offsets[0]
    raw, offsets = _replace_kelvin_signs(raw, offsets)
    classified = bytearray(raw.translate(_CLASSIFY))
    marks = np.frombuffer(classified, dtype=np.uint8)
    _mark_special_characters(raw, marks, offsets)
    _separate_lone_apostrophes(marks, offsets)
    is_word = marks != SPACE
    # A word starts where a word byte follows a separator or opens a review, and ends likewise.
    before, after = np.zeros_like(is_word), np.zeros_like(is_word)
    before[1:], after[:-1] = is_word[:-1], is_word[1:]
    inner = offsets[1:-1]
    inner = inner[(inner > 0) & (inner < len(is_word))]  # empty reviews at either end bound nothing
    before[inner], after[inner - 1] = False, False
    starts = np.flatnonzero(is_word & ~before)
    ends = np.flatnonzero(is_word & ~after) + 1
    return Words(bytes(classified), starts, ends - starts, np.searchsorted(starts, offsets).astype(np.int64))


def _replace_kelvin_signs(raw: bytes, offsets: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Each Kelvin sign as the one byte "k" it lowercases to, the reviews' offsets moved to match: as
    three bytes, its first two would separate it from a letter or digit before it ("aKb" is one word)."""
    leads = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == _KELVIN_SIGN[0])
    found = np.array([start for start in leads.tolist() if raw.startswith(_KELVIN_SIGN, start)], dtype=np.int64)
    if not found.size:
        return raw, offsets
    moved = offsets - (len(_KELVIN_SIGN) - 1) * np.searchsorted(found, offsets)
    return raw.replace(_KELVIN_SIGN, b"k"), moved


def _mark_special_characters(raw: bytes, marks: np.ndarray, offsets: np.ndarray) -> None:
    """Writes "i" for "İ" (its second byte stays a space: it lowercases to "i" and a combining dot),
    and spaces over the letters of "<br />" (any case, within one review) into `marks`."""
    leads = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == _DOTTED_CAPITAL_I[0])
    for position in leads.tolist():
        if raw.startswith(_DOTTED_CAPITAL_I, position):
            marks[position] = ord("i")
    breaks = np.array([match.start() for match in _LINE_BREAKS.finditer(raw)], dtype=np.int64)
    if breaks.size:
        review_end = offsets[np.searchsorted(offsets, breaks, side="right")]
        breaks = breaks[breaks + len(_LINE_BREAK) <= review_end]
        marks[breaks + 1] = SPACE
        marks[breaks + 2] = SPACE


def _separate_lone_apostrophes(marks: np.ndarray, offsets: np.ndarray) -> None:
    """Turns every apostrophe without a letter or digit of its own review on both sides into a space."""
    apostrophes = np.flatnonzero(marks == APOSTROPHE)
    if not apostrophes.size:
        return
    inner = (apostrophes > 0) & (apostrophes + 1 < len(marks))
    candidates = apostrophes[inner]
    neighbours = (marks[candidates - 1], marks[candidates + 1])
    joins = np.zeros(len(apostrophes), dtype=bool)
    joins[inner] = np.all([(side != SPACE) & (side != APOSTROPHE) for side in neighbours], axis=0)
    at_edge = np.isin(apostrophes, offsets[1:-1]) | np.isin(apostrophes + 1, offsets[1:-1])
    marks[apostrophes[~joins | at_edge]] = SPACE


@dataclass(frozen=True)
class _Keys:
    """Each word's bytes packed into integers: `first` (bytes 0-7) and `second` (8-15), zero-filled."""

    first: np.ndarray
    second: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, words: Words) -> _Keys:
        padded = np.frombuffer(words.data + bytes(2 * _SHORT), dtype=np.uint8)
        packed = np.ndarray(shape=(len(words.data) + _SHORT,), dtype="<u8", buffer=padded, strides=(1,))
        lengths, starts = words.lengths, words.starts
        first = packed[starts] & _MASKS[np.minimum(lengths, _SHORT)]
        second = np.zeros(len(starts), dtype=np.uint64)
        longer = np.flatnonzero(lengths > _SHORT)
        second[longer] = packed[starts[longer] + _SHORT] & _MASKS[np.minimum(lengths[longer] - _SHORT, _SHORT)]
        return cls(first, second, lengths)

    def mixed(self) -> np.ndarray:
        return (self.first * _MIX) ^ self.second


def _as_text(first: np.ndarray, second: np.ndarray | None = None) -> np.ndarray:
    """Packed words back to strings (their bytes are ASCII; the zero fill is dropped by numpy's S dtype)."""
    packed = first.astype("<u8") if second is None else np.stack([first, second], axis=1).astype("<u8")
    return packed.view(f"S{_SHORT if second is None else _MEDIUM}").reshape(-1).astype(str)


def count_words(words: Words, rows: np.ndarray | None = None) -> Counter[str]:
    """How often each word occurs in the batch (only in the reviews `rows` marks, when given)."""
    keys = _Keys.of(words)
    chosen = np.ones(len(words), dtype=bool) if rows is None else np.repeat(rows, np.diff(words.review_offsets))
    short = chosen & (keys.lengths <= _SHORT)
    medium = chosen & (keys.lengths > _SHORT) & (keys.lengths <= _MEDIUM)
    counts = _tally_short(keys.first[short])
    counts.update(_tally_pairs(keys.first[medium], keys.second[medium]))
    counts.update(words.texts(np.flatnonzero(chosen & (keys.lengths > _MEDIUM))))
    return counts


def _tally_short(first: np.ndarray) -> Counter[str]:
    """Counts of words of up to 8 bytes, grouped by their one exact key."""
    codes, unique = pd.factorize(first)
    texts = _as_text(np.asarray(unique))
    return Counter(dict(zip(texts.tolist(), np.bincount(codes, minlength=len(unique)).tolist(), strict=True)))


def _tally_pairs(first: np.ndarray, second: np.ndarray) -> Counter[str]:
    """Counts of words of 9-16 bytes, grouped by their mixed key and checked against both halves."""
    codes, unique = pd.factorize(first * _MIX ^ second)
    owner_first, owner_second = np.zeros(len(unique), np.uint64), np.zeros(len(unique), np.uint64)
    owner_first[codes], owner_second[codes] = first, second
    if np.any((owner_first[codes] != first) | (owner_second[codes] != second)):
        return Counter(_as_text(first, second).tolist())  # two words share a mixed key: count by text
    texts = _as_text(owner_first, owner_second)
    return Counter(dict(zip(texts.tolist(), np.bincount(codes, minlength=len(unique)).tolist(), strict=True)))


class WordIds:
    """Word -> id lookups for whole batches: the short words' keys in one pandas index, the medium
    ones' mixed keys in another (checked against both halves), the long words in a dict. Words the
    tokenizer can never produce (not ASCII) are left out."""

    def __init__(self, ids: dict[str, int]) -> None:
        words = [word for word in ids if word.isascii() and word]
        lengths = np.array([len(word) for word in words], dtype=np.int64)
        values = np.array([ids[word] for word in words], dtype=np.int64)
        short, medium = lengths <= _SHORT, (lengths > _SHORT) & (lengths <= _MEDIUM)
        chosen = np.array(words, dtype=object)
        self._short = pd.Index(np.array(chosen[short].tolist(), dtype=f"S{_SHORT}").view("<u8"))
        self._short_ids = np.append(values[short], 0)  # position -1 (not found) reads the 0 at the end
        pairs = np.array(chosen[medium].tolist(), dtype=f"S{_MEDIUM}").view("<u8").reshape(-1, 2)
        mixed = pairs[:, 0] * _MIX ^ pairs[:, 1]
        unique = ~pd.Index(mixed).duplicated(keep=False)  # two words with one mixed key: both in the dict
        self._first, self._second = pairs[unique, 0].copy(), pairs[unique, 1].copy()
        self._medium = pd.Index(mixed[unique])
        self._medium_ids = np.append(values[medium][unique], 0)
        long_words = chosen[lengths > _MEDIUM].tolist() + chosen[medium][~unique].tolist()
        self._long = {word: ids[word] for word in long_words}

    def lookup(self, words: Words) -> np.ndarray:
        """Each word's id, 0 for a word without one (int64, one per word)."""
        keys = _Keys.of(words)
        found = np.zeros(len(words), dtype=np.int64)
        short = np.flatnonzero(keys.lengths <= _SHORT)
        found[short] = self._short_ids[self._short.get_indexer(keys.first[short])]
        medium = np.flatnonzero((keys.lengths > _SHORT) & (keys.lengths <= _MEDIUM))
        first, second = keys.first[medium], keys.second[medium]
        position = self._medium.get_indexer(first * _MIX ^ second)
        same = np.zeros(len(medium), dtype=bool)
        if len(self._first):  # position -1 (not found) reads the last entry, refused by `position >= 0`
            same = (position >= 0) & (self._first[position] == first) & (self._second[position] == second)
        found[medium] = np.where(same, self._medium_ids[position], 0)
        if self._long:
            rest = np.concatenate([np.flatnonzero(keys.lengths > _MEDIUM), medium[~same]])
            found[rest] = [self._long.get(text, 0) for text in words.texts(rest)]
        return found
