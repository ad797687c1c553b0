"""Compiled loops over a batch of texts, run on every core: the batch is cut into parts of about
equal text, one per core, and each part runs in a thread of its own. The loops (numba, `nogil`) hold
no GIL, so a batch takes about 1 / cores of the time; the parts' results are joined in order, the
same as one loop's over the whole batch."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

# The most parts a batch is cut into (the cores this process may run on), and the least text in a
# part: below it, starting a thread costs more than it saves.
PARTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
PART_BYTES = 1 << 18

Part = TypeVar("Part")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def part_bounds(offsets: np.ndarray) -> list[tuple[int, int]]:
    """The rows of a batch (row r's text ends at offsets[r + 1]) as ranges [first, end) of about equal
    text: at most PARTS of them, none with less than PART_BYTES of text unless the batch has less."""
    rows, text = len(offsets) - 1, int(offsets[-1] - offsets[0])
    count = max(1, min(PARTS, text // PART_BYTES))
    if count == 1:
        return [(0, rows)]
    cuts = np.searchsorted(offsets, offsets[0] + text * np.arange(1, count) // count).tolist()
    bounds = sorted({0, *(min(cut, rows) for cut in cuts), rows})
    return list(itertools.pairwise(bounds))


def in_parts(work: Callable[[int, int, int], Part], bounds: list[tuple[int, int]]) -> list[Part]:
    """work(part, first, end) for each part's rows, in order: the first part in this thread, the
    others in the pool's threads."""
    global _pool
    if len(bounds) == 1:
        return [work(0, *bounds[0])]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(PARTS - 1, 1), thread_name_prefix="data-parts")
    others = [_pool.submit(work, part, first, end) for part, (first, end) in enumerate(bounds[1:], start=1)]
    return [work(0, *bounds[0]), *(future.result() for future in others)]


def joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged parts, each its values and its rows' offsets into them, as one: the values one after
    another, the offsets shifted to match."""
    if len(parts) == 1:
        return parts[0]
    sizes = [len(values) for values, _ in parts]
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    offsets = [part_offsets[:-1] + start for (_, part_offsets), start in zip(parts, starts, strict=True)]
    return np.concatenate([values for values, _ in parts]), np.concatenate([*offsets, [sum(sizes)]])
