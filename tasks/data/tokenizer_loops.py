"""The tokenizer's compiled loops (numba): the word scan that keeps, counts or encodes each word,
the word tables it probes, and the normaliser of own reviews' ASCII texts. Imported on first use by
`tasks/data/tokenizer.py` only, since numba loads scipy and the compiler with it.

The loops are compiled on first use and cached beside this file (numba's `cache=True`), so only
the first process after an install or a change pays the compilation (`make install` pays it).
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

SPACE, APOSTROPHE = ord(" "), ord("'")
# A byte's word character after lowercasing (the byte itself for [a-z0-9'], its lowercase for
# [A-Z]), 0 for a byte that separates words.
WORD_BYTE = np.zeros(256, dtype=np.uint8)
for _byte in b"abcdefghijklmnopqrstuvwxyz0123456789'":
    WORD_BYTE[_byte] = _byte
for _byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    WORD_BYTE[_byte] = _byte + 32
FIRST_TABLE_SLOTS = 1 << 12  # the smallest table; any table has at least twice as many slots as words


@njit(cache=True, nogil=True, inline="always")
def _mixed(value):
    """A 64-bit hash's bits spread (splitmix64's finaliser), so its low bits can index a table."""
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


# A word's row: its hash, a value (a count, an id), and where its bytes are. An open-addressing
# table of words has a row of four uint64 per slot too, so that a probe reads one cache line, but
# holds the word's first eight bytes (HEAD) where a row holds its hash: a word of up to eight bytes
# is then confirmed without reading its bytes elsewhere, which for a rare word is a second miss of
# the cache. Length 0 marks an empty slot (no word is empty); the value is an id or a row's index.
HASH, VALUE, START, LENGTH = range(4)
HEAD = HASH
HEAD_BYTES = 8
# Arguments a mode of `scan` leaves unused.
NO_TABLE, NO_WORDS = np.zeros((0, 4), dtype=np.uint64), np.zeros((0, 4), dtype=np.uint64)
NO_IDS, NO_OFFSETS = np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)


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


@njit(cache=True, nogil=True, inline="always")
def _head(data, start, length):
    """The first HEAD_BYTES bytes of the word data[start:start + length], as one uint64 (zeros past its end)."""
    head = np.uint64(0)
    for offset in range(min(length, HEAD_BYTES)):
        head |= np.uint64(data[start + offset]) << np.uint64(8 * offset)
    return head


@njit(cache=True, nogil=True, inline="always")
def _special_letter(raw, position):
    """The letter "İ" (its first byte: the second, a combining dot, separates) or the Kelvin sign
    (three bytes) at `position` gives, and the bytes it takes."""
    return (105, 1) if raw[position] == 0xC4 else (107, 3)


# What `scan` does with each word.
KEEP, ENCODE, COUNT = range(3)


# The loop below reads bytes and probes its table inline rather than through helper functions: a
# compiled call that takes arrays costs their reference counts on every call, more than the work.
@njit(cache=True, nogil=True)
def scan(
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

    - KEEP: its bytes stay in `data` followed by a space; its row of `words` holds its start,
      length and hash; `review_offsets` bound each review's rows.
    - ENCODE: each review becomes `start_id` then the table's value of each word the table holds
      (bytes in `known_data`; words it lacks skipped), in `encoded`; `review_offsets` bound them.
    - COUNT: the table (its bytes in `data`) gains each new word, its row of `words` holding its
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
        if mode == COUNT and (2 * most >= len(table) or most > len(words)):
            return found, written, review
        if mode == ENCODE:
            encoded[found] = start_id
            found += 1
        position, end = offsets[review], offsets[review + 1]
        while position < end:
            # Between words: every byte but a letter, a digit, "İ" or the Kelvin sign; "<br />" whole.
            character, step = word_byte[raw[position]], 1  # step: the character's bytes read
            if character <= APOSTROPHE:
                if _is_dotted_capital_i(raw, position, end) or _is_kelvin_sign(raw, position, end):
                    character, step = _special_letter(raw, position)
                else:
                    position += 6 if _is_line_break(raw, position, end) else 1
                    continue
            # A word: letters and digits, an apostrophe only between two of them. The rare special
            # letters set the step, so a plain letter's byte is never checked for them twice.
            word_start, hashed = written, np.uint64(_FNV_OFFSET)
            while True:
                data[written] = character
                written += 1
                hashed = (hashed ^ np.uint64(character)) * np.uint64(_FNV_PRIME)
                position, step = position + step, 1
                if position >= end:
                    break
                character = word_byte[raw[position]]
                if character > APOSTROPHE:
                    continue
                if _is_dotted_capital_i(raw, position, end) or _is_kelvin_sign(raw, position, end):
                    character, step = _special_letter(raw, position)
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
            if mode == KEEP:
                words[found, START], words[found, LENGTH], words[found, HASH] = word_start, length, hashed
                found += 1
                data[written] = SPACE
                written += 1
                continue
            head = _head(data, word_start, length)
            entry, slot = -1, hashed & mask  # the word's entry, or the empty slot where it goes
            while table[slot, LENGTH] != 0:
                if table[slot, HEAD] == head and np.int64(table[slot, LENGTH]) == length:
                    known_start, same = np.int64(table[slot, START]), True
                    for offset in range(HEAD_BYTES, length):
                        if known_data[known_start + offset] != data[word_start + offset]:
                            same = False
                            break
                    if same:
                        entry = np.int64(table[slot, VALUE])
                        break
                slot = (slot + np.uint64(1)) & mask
            if mode == ENCODE:
                if entry >= 0:
                    encoded[found] = entry
                    found += 1
                written = 0  # a word's bytes are needed no longer than its probe
            elif entry >= 0:
                words[entry, VALUE] += 1
                written = word_start  # counted: its bytes are in `data` already
            else:
                table[slot, HEAD], table[slot, VALUE] = head, found
                table[slot, START], table[slot, LENGTH] = word_start, length
                words[found, HASH], words[found, VALUE] = hashed, 1
                words[found, START], words[found, LENGTH] = word_start, length
                found += 1
    review_offsets[len(offsets) - 1] = found
    return found, written, len(offsets) - 1


@njit(cache=True, nogil=True)
def hash_words(data, words):
    """The hash `scan` gives each word (its start and length in `words`), into `words`."""
    for word in range(len(words)):
        hashed = np.uint64(_FNV_OFFSET)
        start = np.int64(words[word, START])
        for position in range(start, start + np.int64(words[word, LENGTH])):
            hashed = (hashed ^ np.uint64(data[position])) * np.uint64(_FNV_PRIME)
        words[word, HASH] = _mixed(hashed)


@njit(cache=True, nogil=True)
def table_of(words, data, slots):
    """A table of `slots` slots holding the (distinct) `words` (their bytes in `data`), each its row
    index as its value."""
    table = np.zeros((slots, 4), dtype=np.uint64)
    mask = np.uint64(slots - 1)
    for word in range(len(words)):
        slot = words[word, HASH] & mask
        while table[slot, LENGTH] != 0:
            slot = (slot + np.uint64(1)) & mask
        start, length = np.int64(words[word, START]), np.int64(words[word, LENGTH])
        table[slot, HEAD], table[slot, VALUE] = _head(data, start, length), word
        table[slot, START], table[slot, LENGTH] = start, length
    return table


# The code points Python's str.split() splits on (str.isspace(), this interpreter's Unicode), by code
# point up to the highest: among ASCII, \t \n \v \f \r, the four separators \x1c-\x1f and space.
_SPACES = [point for point in range(sys.maxunicode + 1) if chr(point).isspace()]
WHITESPACE = np.zeros(max(_SPACES) + 1, dtype=np.bool_)
WHITESPACE[_SPACES] = True
ASCII_WHITESPACE = WHITESPACE[:128].copy()


@njit(cache=True, nogil=True)
def normalize_ascii(raw, offsets, whitespace, normalized, normalized_offsets, ascii_rows):
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


@njit(cache=True, nogil=True)
def collapse_whitespace(raw, offsets, whitespace, normalized, normalized_offsets):
    """Each review's UTF-8 text with its whitespace runs as one space and none at either end (as
    " ".join(text.split()) gives it; `whitespace`: the code points that are whitespace)."""
    written = 0
    for review in range(len(offsets) - 1):
        normalized_offsets[review] = written
        pending_space, review_start = False, written
        position, end = offsets[review], offsets[review + 1]
        while position < end:
            byte = raw[position]
            size = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            point = np.int64(byte) if size == 1 else np.int64(byte) & (0x7F >> size)
            for following in range(position + 1, position + size):
                point = (point << 6) | (np.int64(raw[following]) & 0x3F)
            if point < len(whitespace) and whitespace[point]:
                pending_space = written > review_start
            else:
                if pending_space:
                    normalized[written] = SPACE
                    written += 1
                    pending_space = False
                for offset in range(size):
                    normalized[written + offset] = raw[position + offset]
                written += size
            position += size
    normalized_offsets[len(offsets) - 1] = written
    return written
