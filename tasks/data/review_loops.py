"""Compiled loops over encoded reviews (numba): the statistics pad-and-store gathers of each batch,
in one pass over its ids, and the padding. Imported on first use by `tasks/data/statistics.py` and
`tasks/data/store.py`, since numba loads scipy and its compiler with it.

Each loop handles the reviews from `first` to `end` and writes only their rows of its outputs, so
parts of one batch can run in threads at once (`tasks/data/parallel.py`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True, inline="always")
def mixed(value):
    """splitmix64's finaliser after adding the golden ratio: every input bit moves about half the
    output bits (`statistics._mixed` on one value)."""
    value = value + _GOLDEN
    value = (value ^ (value >> np.uint64(30))) * _MIX_1
    value = (value ^ (value >> np.uint64(27))) * _MIX_2
    return value ^ (value >> np.uint64(31))


@njit(cache=True, nogil=True)
def describe(ids, offsets, first, end, start_id, oov_id, token_counts, prints, words_per_review):
    """Reviews first..end-1: each one's fingerprint (the mix of the sum of the mixes of (position, id),
    with its length) and word count (its ids but the start id) into `prints` and
    `words_per_review`; every word counted by id into `token_counts` (ids past its end in its last
    slot, below 0 in its first). Returns the words, the OOV words, and the lowest and highest word
    id (meaningless without words)."""
    words, oov = 0, 0
    low, high = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    last_slot = len(token_counts) - 1
    for review in range(first, end):
        start, stop = offsets[review], offsets[review + 1]
        total, count = np.uint64(0), 0
        for position in range(start, stop):
            token = ids[position]
            total += mixed((np.uint64(position - start) << np.uint64(32)) | np.uint64(token))
            if token == start_id:
                continue
            count += 1
            token_counts[min(max(token, 0), last_slot)] += 1
            if token == oov_id:
                oov += 1
            low, high = min(low, token), max(high, token)
        prints[review] = mixed(total ^ np.uint64(stop - start))
        words_per_review[review] = count
        words += count
    return words, oov, low, high


@njit(cache=True, nogil=True)
def pad(ids, offsets, first, end, pad_id, padded):
    """Reviews first..end-1 into their rows of `padded`: the last `maxlen` ids of each (its width),
    `pad_id` before them when a review is shorter, as Keras' `pad_sequences` pads and cuts."""
    maxlen = padded.shape[1]
    for review in range(first, end):
        stop = offsets[review + 1]
        kept = min(stop - offsets[review], maxlen)
        padded[review, : maxlen - kept] = pad_id
        padded[review, maxlen - kept :] = ids[stop - kept : stop]
