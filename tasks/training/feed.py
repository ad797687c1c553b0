"""Batches of a split copied locally (tasks/training/splits.py) for Keras: a `keras.utils.PyDataset`
over its `.npy` file, giving each row exactly once per epoch, in a fresh seeded order each epoch
when it shuffles.

Only a training process imports this module (and with it TensorFlow).
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from tasks.training.splits import LocalSplit

# Why positional reads, not a memory map: a mapped page counts as this process's resident memory
# once touched, and Linux maps 64 KiB or more around each fault (fault-around, large folios), so
# reading rows at random made nearly the whole file resident within an epoch (+190 MB at 1M rows
# here), and mapping the file again every 512 rows still peaked at +110 MB while slowing an epoch
# from 0.8 s to 27 s. A `pread` per row leaves resident memory flat, at about 5 s per million rows.
# A split whose ids take at most this many bytes is read into memory once instead, and gathered
# there: a bounded amount whatever the data's size, and no per-row reads on the recipe's 16,000
# training reviews (3.2 MB), whose epochs last well under a second.
IN_MEMORY_BYTES = 64 << 20


class SplitFeed(keras.utils.PyDataset):
    """Batches of `batch_size` rows of `split`: (ids int32 (k, maxlen), labels float32 (k,)), as the
    models were always fed. Each epoch gives every row exactly once (the last batch holds the rest).

    With a `seed` it shuffles: epoch e (counted from 0 by `on_epoch_begin`) reads the rows in the
    permutation drawn from `np.random.default_rng((seed, e))`, so the same seed gives the same
    orders, and each epoch a new one. Without a seed it reads them in file order. Ids of at most
    `in_memory_bytes` are read into memory once; larger ones, row by row from the file.
    """

    def __init__(
        self, split: LocalSplit, batch_size: int, seed: int | None = None, in_memory_bytes: int = IN_MEMORY_BYTES
    ) -> None:
        super().__init__()  # one worker, no multiprocessing: a batch is a cheap gather
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self._targets = split.labels.astype(np.float32)
        self._epochs_begun = 0
        # Keras draws a few batches to learn their shapes before the first epoch begins.
        self._order = self._epoch_order(0)
        with open(split.ids_path, "rb") as file:
            np.lib.format.read_magic(file)
            (_, self._width), _, self._dtype = np.lib.format.read_array_header_1_0(file)
            self._data_offset = file.tell()
        self._row_bytes = self._width * self._dtype.itemsize
        small = self._row_bytes * split.rows <= in_memory_bytes
        self._in_memory = np.load(split.ids_path, allow_pickle=False) if small else None

    def __len__(self) -> int:
        return math.ceil(self.split.rows / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self._read_rows(rows).astype(np.int32), self._targets[rows]

    def on_epoch_begin(self) -> None:
        self._order = self._epoch_order(self._epochs_begun)
        self._epochs_begun += 1

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self.seed is None:
            return np.arange(self.split.rows)
        return np.random.default_rng((self.seed, epoch)).permutation(self.split.rows)

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """The ids of `rows`, each read at its place in the file (thread-safe: no shared position);
        in file order (no seed) a batch's rows follow each other and are read at once."""
        if self._in_memory is not None:
            return self._in_memory[rows]
        ids = np.empty((len(rows), self._width), dtype=self._dtype)
        view, size = ids.data.cast("B"), self._row_bytes
        with open(self.split.ids_path, "rb", buffering=0) as file:
            if self.seed is None:
                view[:] = os.pread(file.fileno(), size * len(rows), self._data_offset + int(rows[0]) * size)
                return ids
            for slot, position in enumerate((self._data_offset + rows * size).tolist()):
                view[slot * size : (slot + 1) * size] = os.pread(file.fileno(), size, position)
        return ids
