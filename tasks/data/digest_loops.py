"""BLAKE2b (RFC 7693) as a compiled loop over many texts at once (numba), giving the same digests as
`hashlib.blake2b(prefix + text, digest_size=n)` without a Python call per text. Imported on first
use by `tasks/data/own_reviews.py` only, since numba loads scipy and the compiler with it.

Unkeyed, with digests of 1 to 64 bytes; the message words are read little-endian, as the machines
this runs on (x86-64, arm64) store them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_IV = np.array(
    [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)
BLOCK_BYTES = 128


@njit(cache=True, nogil=True, inline="always")
def _rotated(value, bits):
    return (value >> np.uint64(bits)) | (value << np.uint64(64 - bits))


@njit(cache=True, nogil=True, inline="always")
def _mix(a, b, c, d, x, y):
    """BLAKE2b's G function on four words of the working vector."""
    a = a + b + x
    d = _rotated(d ^ a, 32)
    c = c + d
    b = _rotated(b ^ c, 24)
    a = a + b + y
    d = _rotated(d ^ a, 16)
    c = c + d
    b = _rotated(b ^ c, 63)
    return a, b, c, d


@njit(cache=True, nogil=True, inline="always")
def _round(v, m, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15):
    """One round over the working vector `v` (16 words) with the message words in the order of
    that round's row of SIGMA (s0..s15), given as constants so each load's index is known."""
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 = v
    v0, v4, v8, v12 = _mix(v0, v4, v8, v12, m[s0], m[s1])
    v1, v5, v9, v13 = _mix(v1, v5, v9, v13, m[s2], m[s3])
    v2, v6, v10, v14 = _mix(v2, v6, v10, v14, m[s4], m[s5])
    v3, v7, v11, v15 = _mix(v3, v7, v11, v15, m[s6], m[s7])
    v0, v5, v10, v15 = _mix(v0, v5, v10, v15, m[s8], m[s9])
    v1, v6, v11, v12 = _mix(v1, v6, v11, v12, m[s10], m[s11])
    v2, v7, v8, v13 = _mix(v2, v7, v8, v13, m[s12], m[s13])
    v3, v4, v9, v14 = _mix(v3, v4, v9, v14, m[s14], m[s15])
    return v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15


# The twelve rounds are written out, each with its row of the message schedule (SIGMA; rounds 10
# and 11 repeat rounds 0 and 1): indexes known when compiled keep the working vector in registers.
@njit(cache=True, nogil=True)
def _compress(state, m, counted, last):
    """Compresses one block (`m`: 16 words) into `state`; `counted` bytes so far, this block's included."""
    final = ~np.uint64(0) if last else np.uint64(0)
    v = (
        state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7],
        _IV[0], _IV[1], _IV[2], _IV[3], _IV[4] ^ np.uint64(counted), _IV[5], _IV[6] ^ final, _IV[7],
    )  # fmt: skip
    v = _round(v, m, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    v = _round(v, m, 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3)
    v = _round(v, m, 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4)
    v = _round(v, m, 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8)
    v = _round(v, m, 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13)
    v = _round(v, m, 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9)
    v = _round(v, m, 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11)
    v = _round(v, m, 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10)
    v = _round(v, m, 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5)
    v = _round(v, m, 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0)
    v = _round(v, m, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    v = _round(v, m, 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3)
    for word in range(8):
        state[word] ^= v[word] ^ v[word + 8]


@njit(cache=True, nogil=True)
def blake2b_rows(data, starts, ends, prefix, digest_size, digests):
    """digests[row] = BLAKE2b-`digest_size` of prefix + data[starts[row]:ends[row]], for every row
    (`digests`: uint8, rows x digest_size)."""
    state = np.empty(8, dtype=np.uint64)
    message = np.zeros(BLOCK_BYTES // 8, dtype=np.uint64)
    block, state_bytes = message.view(np.uint8), state.view(np.uint8)
    prefix_length = len(prefix)
    for row in range(len(starts)):
        start = starts[row]
        total = prefix_length + (ends[row] - start)
        state[:] = _IV
        state[0] ^= np.uint64(0x01010000) ^ np.uint64(digest_size)
        done = 0
        while True:  # an empty message is one block of zeros
            take = min(BLOCK_BYTES, total - done)
            filled = 0
            while filled < take and done + filled < prefix_length:
                block[filled] = prefix[done + filled]
                filled += 1
            source = start + done + filled - prefix_length
            block[filled:take] = data[source : source + take - filled]
            block[take:] = 0
            done += take
            _compress(state, message, done, done == total)
            if done == total:
                break
        digests[row, :] = state_bytes[:digest_size]
