"""Fixed-width sequences: Keras `pad_sequences` semantics, stored as one Parquet file per split.

Parquet layout, in row groups of ROW_GROUP_ROWS: `tokens` is a fixed-size list of `maxlen` ids
(uint16 up to 65,535 words, else int32), `label` an int8, and `review`
the raw text where the source has it (for error analysis and the vocabulary's parity); the schema
metadata carries num_words, maxlen, source, source sha256 and seed, so a file explains itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from tasks.config import DataConfig
from tasks.data import parallel
from tasks.data.corpus import PAD_ID, Reviews
from tasks.errors import DataError
from tasks.storage import fs

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DATASET_FORMAT = 3  # bump when the stored layout changes, so old folders are not reused
# Rows per Parquet row group: a reader holds one group at a time (~3 MB of ids and ~20 MB of text
# at the recipe's sizes), so memory stays flat however many reviews a split holds.
ROW_GROUP_ROWS = 16_384
UINT16_WORDS = 65_535  # ids below this many words fit in uint16 (padding 0 included)
# The key of the pipeline's own schema metadata in every Parquet file it writes (the stored splits,
# and batch scoring's predictions), so a file explains itself.
METADATA_KEY = b"imdb_rnn_pipeline"
# A stored split's columns: the padded ids, the 0/1 label, and the raw text where the source has it.
TOKENS_COLUMN, LABEL_COLUMN, TEXT_COLUMN = "tokens", "label", "review"


class DatasetInfo(BaseModel):
    """Where the padded splits of one data set live, and what they hold."""

    key: str
    uri: str
    split_uris: dict[str, str]
    rows: dict[str, int]
    metadata: dict[str, str | int | float]
    vocabulary_uri: str | None = None  # the id scheme's vocabulary.json; None for a mirror without a word index
    profile_uri: str | None = None  # the ragged reviews' statistics, measured while storing (profile.json)
    profile_sha256: str | None = None


def pad_reviews(reviews: Reviews, maxlen: int) -> np.ndarray:
    """`pad_sequences(x, maxlen)`: keep the last `maxlen` ids, pad with 0 at the front. int32 (n, maxlen)."""
    from tasks.data import review_loops  # numba, on first use

    padded = np.empty((len(reviews), maxlen), dtype=np.int32)
    ids, offsets = reviews.ids, reviews.offsets

    def pad_part(_: int, first: int, end: int) -> None:
        review_loops.pad(ids, offsets, first, end, PAD_ID, padded)

    parallel.in_parts(pad_part, parallel.part_bounds(offsets))
    return padded


def dataset_metadata(config: DataConfig, seed: int, source_uri: str, source_sha256: str) -> dict:
    """Everything that shapes the stored splits: the source's content and the split/pad parameters."""
    return {
        "num_words": config.num_words,
        "maxlen": config.maxlen,
        "val_fraction": config.val_fraction,
        "seed": seed,
        "source": source_uri,
        "source_sha256": source_sha256,
    }


def own_reviews_metadata(config: DataConfig) -> dict:
    """What else shapes the stored splits of one's own reviews: the test share and the columns read."""
    return {
        "test_fraction": config.test_fraction,
        "text_column": config.text_column,
        "label_column": config.label_column,
    }


def dataset_key(metadata: dict[str, str | int | float], digest: str) -> str:
    """A short hash of the stored content (`content_digest`) and the parameters behind it.

    The source's URI is left out: the same bytes from another mirror give the same data set. Code
    that changes what is stored changes the digest; code that does not keeps runs comparable.
    """
    content = {name: value for name, value in metadata.items() if name != "source"}
    canonical = json.dumps({**content, "format": DATASET_FORMAT, "content": digest}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def token_type(num_words: int) -> pa.DataType:
    """The narrowest id type that holds every id below `num_words`: uint16 for the recipe's 500 words."""
    return pa.uint16() if num_words <= UINT16_WORDS else pa.int32()


def to_table(
    tokens: np.ndarray, labels: np.ndarray, metadata: dict, texts: pa.Array | np.ndarray | None = None
) -> pa.Table:
    """An Arrow table of padded ids, labels and (when given) raw texts, with `metadata` in its schema;
    ids as `token_type(metadata["num_words"])` (int32 without it)."""
    maxlen = tokens.shape[1]
    id_type = token_type(int(metadata["num_words"])) if "num_words" in metadata else pa.int32()
    limits = np.iinfo(id_type.to_pandas_dtype())
    if tokens.size and not limits.min <= int(tokens.min()) <= int(tokens.max()) <= limits.max:
        raise DataError(f"ids {tokens.min()}..{tokens.max()} do not fit the stored {id_type} ids")
    flat = pa.array(np.ascontiguousarray(tokens).reshape(-1).astype(id_type.to_pandas_dtype(), copy=False))
    columns = {
        TOKENS_COLUMN: pa.FixedSizeListArray.from_arrays(flat, maxlen),
        LABEL_COLUMN: pa.array(np.asarray(labels, dtype=np.int8)),
    }
    if texts is not None:
        columns[TEXT_COLUMN] = texts if isinstance(texts, pa.Array) else pa.array(texts, type=pa.string())
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def write_split(
    uri: str, tokens: np.ndarray, labels: np.ndarray, metadata: dict, texts: np.ndarray | None = None
) -> None:
    buffer = io.BytesIO()
    pq.write_table(to_table(tokens, labels, metadata, texts), buffer, row_group_size=ROW_GROUP_ROWS)
    fs.write_bytes(uri, buffer.getvalue())


def read_split(uri: str, expected_maxlen: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Padded ids (n, maxlen) int32, labels (n,) int8 and the schema metadata, whole (for the tools
    and small splits; the stages read `iter_split`).

    Raises DataError when the file is not Parquet, lacks the expected columns or their integer
    types, or disagrees with its own metadata or with `expected_maxlen` (the data set's or model's).
    """
    try:
        table = pq.read_table(io.BytesIO(fs.read_bytes(uri)))
    except pa.ArrowException as error:
        raise DataError(f"{uri}: not a readable Parquet file ({error})") from None
    metadata, maxlen = checked_schema(uri, table.schema, expected_maxlen)
    tokens, labels = _checked_rows(uri, table, maxlen)
    return tokens.astype(np.int32, copy=False), labels, metadata


def streamed_parquet(source: str | Path | IO[bytes]) -> pq.ParquetFile:
    """A Parquet file (a path or an open file) opened to be read batch by batch with `iter_batches`.

    Without pre_buffer=False, `iter_batches` reads ahead and holds every row group of the file: one
    656 MB file of 500,000 reviews took 0.87 GB resident with it, 0.27 GB without."""
    return pq.ParquetFile(source, pre_buffer=False)


def checked_schema(uri: str, schema: pa.Schema, expected_maxlen: int | None) -> tuple[dict, int]:
    """The file's own metadata and its ids per review, refused unless the pipeline wrote it so."""
    raw_metadata = (schema.metadata or {}).get(METADATA_KEY)
    if raw_metadata is None or {TOKENS_COLUMN, LABEL_COLUMN} - set(schema.names):
        raise DataError(f"{uri}: not a split written by this pipeline (columns {schema.names})")
    metadata = json.loads(raw_metadata)
    column_type = schema.field(TOKENS_COLUMN).type
    if not pa.types.is_fixed_size_list(column_type) or column_type.list_size != metadata.get("maxlen"):
        raise DataError(f"{uri}: {TOKENS_COLUMN} column {column_type} disagrees with maxlen={metadata.get('maxlen')}")
    if expected_maxlen is not None and column_type.list_size != expected_maxlen:
        raise DataError(f"{uri}: {column_type.list_size} tokens per review, but maxlen {expected_maxlen} is expected")
    return metadata, column_type.list_size


def _checked_rows(uri: str, table: pa.Table, maxlen: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids (rows, maxlen) as stored (uint16 or int32; other integer types as int32) and int8 labels."""
    rows = table.column(TOKENS_COLUMN).combine_chunks()
    if rows.null_count:
        raise DataError(f"{uri}: column '{TOKENS_COLUMN}' has {rows.null_count} null rows")
    values = rows.flatten()
    stored = np.uint16 if values.type == pa.uint16() else np.int32
    flat = _integers(uri, TOKENS_COLUMN, values, stored)
    labels = _integers(uri, LABEL_COLUMN, table.column(LABEL_COLUMN).combine_chunks(), np.int8)
    return flat.reshape(table.num_rows, maxlen), labels


def _integers(uri: str, column: str, values: pa.Array, dtype: type[np.integer]) -> np.ndarray:
    """A column's values as `dtype`; refuses nulls, non-integer types and values `dtype` cannot hold
    (a cast would wrap them around silently, past the range checks that come later)."""
    if not pa.types.is_integer(values.type):
        raise DataError(f"{uri}: column '{column}' must hold integers, not {values.type}")
    if values.null_count:
        raise DataError(f"{uri}: column '{column}' has {values.null_count} null values")
    array, limits = values.to_numpy(), np.iinfo(dtype)
    if array.size and (array.min() < limits.min or array.max() > limits.max):
        raise DataError(f"{uri}: column '{column}' holds {array.min()}..{array.max()}, beyond {limits.dtype}")
    return array.astype(dtype, copy=False)


class SplitWriter:
    """One split's Parquet file written row group by row group (never whole in memory), and the
    sha256 of its ids and of its labels as written.

    A row group is compressed and written in a thread of the writer's own while the next rows
    arrive (Arrow holds no GIL meanwhile); at most one is in flight."""

    def __init__(self, path: Path, metadata: dict, maxlen: int, with_text: bool) -> None:
        fields = [
            pa.field(TOKENS_COLUMN, pa.list_(token_type(int(metadata["num_words"])), maxlen)),
            pa.field(LABEL_COLUMN, pa.int8()),
        ]
        if with_text:
            fields.append(pa.field(TEXT_COLUMN, pa.string()))
        self.schema = pa.schema(fields, metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
        self.path, self.metadata, self.rows = path, metadata, 0
        self._writer = pq.ParquetWriter(path, self.schema)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._writing: Future | None = None
        self._ids, self._labels = hashlib.sha256(), hashlib.sha256()

    def write(self, tokens: np.ndarray, labels: np.ndarray, texts: pa.Array | None = None) -> None:
        table = to_table(tokens, labels, self.metadata, texts).cast(self.schema)
        self._ids.update(np.ascontiguousarray(table.column(TOKENS_COLUMN).combine_chunks().flatten()).tobytes())
        self._labels.update(np.asarray(labels, dtype=np.int8).tobytes())
        self.rows += len(labels)
        self._pending.append(table)
        self._pending_rows += len(labels)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(keep_remainder=True)

    def _flush(self, keep_remainder: bool) -> None:
        # One chunk per column: how the rows arrived (batch sizes) must not shape the file's pages.
        table = pa.concat_tables(self._pending).combine_chunks()
        whole = (len(table) // ROW_GROUP_ROWS) * ROW_GROUP_ROWS if keep_remainder else len(table)
        if whole:
            self.wait()
            self._writing = self._thread.submit(
                self._writer.write_table, table.slice(0, whole), row_group_size=ROW_GROUP_ROWS
            )
        rest = table.slice(whole)
        self._pending, self._pending_rows = ([rest], len(rest)) if len(rest) else ([], 0)

    def close(self) -> str:
        """Writes what is left; returns the sha256 of the ids and labels written (as a pair's digest)."""
        if self._pending:
            self._flush(keep_remainder=False)
        self.wait()
        self._thread.shutdown()
        self._writer.close()
        return hashlib.sha256((self._ids.hexdigest() + self._labels.hexdigest()).encode()).hexdigest()

    def wait(self) -> None:
        """Waits for the row group in flight, if any (raising what writing it raised)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()


def iter_split_rows(uri: str) -> Iterator[tuple[np.ndarray, np.ndarray, pa.Array | None]]:
    """A split file's ids, labels and raw texts (None without them), one row group at a time."""
    with fs.open_read(uri) as handle:
        parquet = pq.ParquetFile(handle)
        _, maxlen = checked_schema(uri, parquet.schema_arrow, None)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            tokens, labels = _checked_rows(uri, table, maxlen)
            texts = table.column(TEXT_COLUMN).combine_chunks() if TEXT_COLUMN in table.column_names else None
            yield tokens, labels, texts


def iter_split(uri: str, expected_maxlen: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A stored split's padded ids (rows, maxlen) and labels, one row group at a time, each checked
    as `read_split` checks a whole file."""
    with fs.open_read(uri) as handle:
        try:
            parquet = pq.ParquetFile(handle)
            _, maxlen = checked_schema(uri, parquet.schema_arrow, expected_maxlen)
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=[TOKENS_COLUMN, LABEL_COLUMN])
                yield _checked_rows(uri, table, maxlen)
        except pa.ArrowException as error:
            raise DataError(f"{uri}: not a readable Parquet file ({error})") from None
