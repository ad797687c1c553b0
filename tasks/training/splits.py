"""Reading a stored split (tasks/data/store.py's Parquet layout) batch by batch, never whole: the
evaluation and the baseline score it batch by batch, and a training copies its ids once into a
local `.npy` file whose rows it then reads batch by batch (tasks/training/feed.py).

No TensorFlow here: the baseline reads splits in the pipeline's own process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.data.store import LABEL_COLUMN, TOKENS_COLUMN, checked_schema, streamed_parquet
from tasks.errors import DataError
from tasks.storage import fs

# Rows read from Parquet at a time: about one row group of the stored splits (16k rows), so reading
# holds one row group's ids (3.2 MB as uint16 at maxlen 100) whatever the split's size.
ROWS_PER_READ = 16_384
# The largest vocabulary whose ids a split stores, and a training copies, as uint16 (the store's rule).
UINT16_MAX_WORDS = 65_535


def ids_dtype(num_words: int) -> np.dtype:
    """The narrowest dtype that holds ids below `num_words`: uint16, else int32."""
    return np.dtype(np.uint16 if num_words <= UINT16_MAX_WORDS else np.int32)


@dataclass
class SplitFile:
    """An open stored split: its schema metadata, rows and ids per row, and its batches."""

    uri: str
    parquet: pq.ParquetFile
    metadata: dict
    rows: int
    maxlen: int

    def batches(self, rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (k, maxlen) in the file's integer type, labels (k,) int8), `rows` (by default
        `ROWS_PER_READ`) at a time, the last batch fewer, in file order across row groups.

        Raises DataError for null rows or values, non-integer columns and ids outside
        [0, num_words) of the file's metadata, naming the file.
        """
        num_words = int(self.metadata["num_words"])
        for batch in self.parquet.iter_batches(batch_size=rows or ROWS_PER_READ, columns=[TOKENS_COLUMN, LABEL_COLUMN]):
            tokens = batch.column(TOKENS_COLUMN)
            if tokens.null_count:
                raise DataError(f"{self.uri}: column '{TOKENS_COLUMN}' has {tokens.null_count} null rows")
            ids = _integers(self.uri, TOKENS_COLUMN, tokens.flatten())
            if ids.size and not 0 <= int(ids.min()) <= int(ids.max()) < num_words:
                raise DataError(f"{self.uri}: ids must lie in [0, {num_words}), found {ids.min()}..{ids.max()}")
            labels = _integers(self.uri, LABEL_COLUMN, batch.column(LABEL_COLUMN))
            if labels.size and (labels.min() < np.iinfo(np.int8).min or labels.max() > np.iinfo(np.int8).max):
                raise DataError(f"{self.uri}: column '{LABEL_COLUMN}' holds {labels.min()}..{labels.max()}")
            yield ids.reshape(len(batch), self.maxlen), labels.astype(np.int8, copy=False)


@contextlib.contextmanager
def open_split(uri: str, expected_maxlen: int | None = None) -> Iterator[SplitFile]:
    """The stored split at `uri` (a path or storage URI), open for reading batch by batch.

    Raises DataError when the file is not Parquet, lacks the pipeline's metadata or columns, or its
    ids per row disagree with its own maxlen or with `expected_maxlen` (the data set's or model's).
    """
    with fs.open_read(uri) as handle:
        try:
            parquet = streamed_parquet(handle)
        except pa.ArrowException as error:
            raise DataError(f"{uri}: not a readable Parquet file ({error})") from None
        metadata, maxlen = checked_schema(uri, parquet.schema_arrow, expected_maxlen)
        yield SplitFile(uri, parquet, metadata, parquet.metadata.num_rows, maxlen)


def _integers(uri: str, column: str, values: pa.Array) -> np.ndarray:
    if not pa.types.is_integer(values.type):
        raise DataError(f"{uri}: column '{column}' must hold integers, not {values.type}")
    if values.null_count:
        raise DataError(f"{uri}: column '{column}' has {values.null_count} null values")
    return values.to_numpy()


@dataclass(frozen=True)
class LocalSplit:
    """A split's ids copied to a local `.npy` file (uint16 or int32, shape (rows, maxlen)), and its
    labels, 1 byte per row, in memory."""

    ids_path: Path
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)


def copy_split(uri: str, ids_path: Path, expected_maxlen: int | None = None) -> LocalSplit:
    """Copies the ids of the stored split at `uri` into a new `.npy` file at `ids_path`, one batch
    of `ROWS_PER_READ` rows at a time (written with plain writes, not through a memory map, so the
    copy never counts towards this process's resident memory), as uint16 when the split's
    num_words allows, else int32; the header is `np.load`'s, so the file also opens as a memory map.

    Raises DataError as `open_split` and `SplitFile.batches` do.
    """
    with open_split(uri, expected_maxlen) as split:
        dtype = ids_dtype(int(split.metadata["num_words"]))
        labels = np.empty(split.rows, dtype=np.int8)
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (split.rows, split.maxlen),
        }
        ids_path.parent.mkdir(parents=True, exist_ok=True)
        copied = 0
        with open(ids_path, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
            for ids, batch_labels in split.batches():
                out.write(np.ascontiguousarray(ids, dtype=dtype).tobytes())
                labels[copied : copied + len(batch_labels)] = batch_labels
                copied += len(batch_labels)
    if copied != split.rows:
        raise DataError(f"{uri}: {copied} rows read, but its footer counts {split.rows}")
    return LocalSplit(ids_path=ids_path, labels=labels)
