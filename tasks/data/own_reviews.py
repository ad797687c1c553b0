"""Labelled reviews of one's own: CSV, Parquet or JSONL files (optionally gzipped) read with pyarrow
through fsspec, checked, deduplicated by normalised text and split by a stable hash of that text.

A review's split depends only on its text and the run's seed, never on the other reviews: adding
reviews never moves one already there from one split to another.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.data import corpus, parallel, tokenizer
from tasks.errors import ReviewFileError, SourceError
from tasks.storage import fs

log = logging.getLogger(__name__)

# The formats by file name ending; `.gz` is decompressed on the fly (Parquet compresses inside).
FORMATS = {
    ".csv": ("csv", None),
    ".csv.gz": ("csv", "gzip"),
    ".jsonl": ("jsonl", None),
    ".jsonl.gz": ("jsonl", "gzip"),
    ".parquet": ("parquet", None),
}
SPLIT_COLUMN = "split"  # optional: a row's split named outright (train, val or test)
SPLIT_NAMES = ("train", "val", "test")
LABEL_SPELLINGS = {"0": 0, "neg": 0, "negative": 0, "1": 1, "pos": 1, "positive": 1}  # compared lowercased
BATCH_BYTES = 8 << 20  # files read in blocks of 8 MiB (thousands of reviews): memory stays flat
PARQUET_MAX_BATCH_ROWS = 65_536  # Arrow's default: a file of very short rows is read no slower than by it
HASH_SPAN = float(1 << 64)  # the split hash's first 8 bytes read as a fraction of this


@dataclass(frozen=True)
class Review:
    """One review as read: its text, its 0/1 label and the split it names (None: the hash decides)."""

    text: str
    label: int
    split: str | None


def data_format(uri: str) -> tuple[str, str | None] | None:
    """(format, compression) of a data file by its name; None for any other file."""
    name = uri.lower()
    for ending in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ending):
            return FORMATS[ending]
    return None


def is_reviews_source(uri: str) -> bool:
    """True for a data file, or a folder/prefix that is not an imdb.npz (local, file:// or s3://)."""
    if data_format(uri) is not None:
        return True
    if uri.lower().endswith(".npz") or uri.split("://", 1)[0] in ("http", "https"):
        return False
    return fs.list_files(uri) is not None


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of a prefix: a sub-folder (or `TOP_LEVEL` for the files directly under the
    prefix) and its data files in name order."""

    name: str
    files: list[str]


TOP_LEVEL = "."  # the snapshot of the files directly under a prefix, ordered before the sub-folders


def list_snapshots(uri: str) -> list[Snapshot]:
    """The snapshots a source names, oldest first: a single file is one snapshot; under a prefix,
    its files form the snapshot `.` and each sub-folder holding data files is a snapshot, ordered by
    name. Sub-folders named `_...` or `.…` (a writer's scratch, such as `_temporary`) are skipped."""
    if data_format(uri) is not None:
        if not fs.exists(uri):
            raise SourceError(f"source {uri} does not exist")
        return [Snapshot(TOP_LEVEL, [uri])]
    if fs.list_files(uri) is None:
        raise SourceError(f"source {uri} does not exist")
    snapshots = []
    top_files = _data_files(uri)
    if top_files:
        snapshots.append(Snapshot(TOP_LEVEL, top_files))
    for name in fs.list_folders(uri):
        if name.startswith(("_", ".")):
            continue
        files = _data_files(fs.join(uri, name))
        if not files:
            raise ReviewFileError(f"{fs.join(uri, name)}: snapshot {name!r} has no data files ({_ENDINGS})")
        snapshots.append(Snapshot(name, files))
    if not snapshots:
        raise SourceError(f"{uri}: no data files ({_ENDINGS}) directly under it or in its sub-folders")
    return snapshots


_ENDINGS = ", ".join(FORMATS)


def _data_files(folder: str) -> list[str]:
    return [name for name in fs.list_files(folder) or [] if data_format(name) is not None]


def choose_window(snapshots: list[Snapshot], window: str) -> list[Snapshot]:
    """The snapshots `window` picks: `all`, `latest`, or `last:N` (the N newest; all of them, with
    a warning, when there are fewer)."""
    if window == "all":
        return snapshots
    count = 1 if window == "latest" else int(window.split(":", 1)[1])
    if count > len(snapshots):
        log.warning("window %s: only %d snapshot(s) exist; training on all of them", window, len(snapshots))
    return snapshots[-count:]


def normalize_text(text: str) -> str:
    """The text duplicates are found by and the split hash reads: lowercased, whitespace collapsed.
    The definition `tokenizer.normalize` reproduces for a whole batch at once (tests compare them)."""
    return " ".join(text.lower().split())


def hash_split(normalized: str, seed: int, test_fraction: float, val_fraction: float) -> str:
    """train, val or test from a hash of the text salted with the seed: test takes `test_fraction`,
    val takes `val_fraction` of the rest."""
    digest = hashlib.blake2b(f"{seed}\0{normalized}".encode(), digest_size=8).digest()
    share = int.from_bytes(digest, "big") / HASH_SPAN
    if share < test_fraction:
        return "test"
    return "val" if (share - test_fraction) / (1 - test_fraction) < val_fraction else "train"


def read_review_batches(uris: list[str], text_column: str, label_column: str) -> Iterator[corpus.ReviewBatch]:
    """Every row of the files in order, batch by batch, checked: ReviewFileError naming the file on
    the first bad one. Every file must have the same columns, across snapshots too."""
    columns: tuple[str, frozenset[str]] | None = None
    for uri in uris:
        found = 0
        for batch in _batches(uri, (text_column, label_column, SPLIT_COLUMN)):
            names = frozenset(batch.schema.names)
            if columns is None:
                columns = (uri, names)
            elif names != columns[1]:
                raise ReviewFileError(
                    f"{uri}: columns {sorted(names)} differ from {sorted(columns[1])} of {columns[0]}"
                )
            found += batch.num_rows
            if batch.num_rows:
                yield _checked_batch(batch, uri, text_column, label_column)
        if found == 0:
            raise ReviewFileError(f"{uri}: no reviews (empty file)")


def check_same_columns(uris: list[str], text_column: str, label_column: str) -> None:
    """Refuses files whose columns differ from the first file's, naming both (reads each file's
    first block only)."""
    first: tuple[str, frozenset[str]] | None = None
    for uri in uris:
        with contextlib.closing(_batches(uri, (text_column, label_column, SPLIT_COLUMN))) as batches:
            batch = next(batches, None)
        if batch is None:
            continue
        names = frozenset(batch.schema.names)
        if first is None:
            first = (uri, names)
        elif names != first[1]:
            raise ReviewFileError(f"{uri}: columns {sorted(names)} differ from {sorted(first[1])} of {first[0]}")


def read_review_files(uris: list[str], text_column: str, label_column: str) -> Iterator[Review]:
    """`read_review_batches` row by row, as Python values (for small files and tests)."""
    for batch in read_review_batches(uris, text_column, label_column):
        named = batch.named_splits.tolist() if batch.named_splits is not None else [-1] * len(batch)
        texts = batch.texts.to_pylist() if batch.texts is not None else []
        for text, label, split in zip(texts, batch.labels.tolist(), named, strict=True):
            yield Review(text, label, SPLIT_NAMES[split] if split >= 0 else None)


def _batches(uri: str, string_columns: tuple[str, ...]) -> Generator[pa.RecordBatch, None, None]:
    kind, compression = data_format(uri) or ("csv", None)
    with fs.open_read(uri, compression) as handle:
        try:
            yield from _format_batches(kind, handle, string_columns)
        except (pa.ArrowException, UnicodeDecodeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            problem = "empty file" if "empty" in first_line.lower() else f"cannot read {kind} ({first_line})"
            raise ReviewFileError(f"{uri}: {problem}") from None


def _format_batches(kind: str, handle, string_columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    if kind == "parquet":
        from tasks.data.store import streamed_parquet

        parquet = streamed_parquet(handle)
        yield from parquet.iter_batches(batch_size=_parquet_batch_rows(parquet.metadata))
    elif kind == "jsonl":
        import pyarrow.json as pj

        yield from pj.open_json(handle, read_options=pj.ReadOptions(block_size=BATCH_BYTES))
    else:
        import pyarrow.csv as pc

        # Read as text, not inferred: a label column of 0/1 and one of pos/neg read alike, and an
        # empty field is a null (a review without text), not an empty string.
        convert = pc.ConvertOptions(
            column_types={name: pa.string() for name in string_columns}, strings_can_be_null=True
        )
        yield from pc.open_csv(handle, read_options=pc.ReadOptions(block_size=BATCH_BYTES), convert_options=convert)


def _parquet_batch_rows(metadata) -> int:
    """Rows of about BATCH_BYTES of a Parquet file's data: batches that small reuse the memory of the
    ones before, where Arrow's default (65,536 rows, 80 MB of reviews) takes fresh memory each time."""
    data_bytes = sum(metadata.row_group(index).total_byte_size for index in range(metadata.num_row_groups))
    return max(1, min(PARQUET_MAX_BATCH_ROWS, BATCH_BYTES * metadata.num_rows // max(data_bytes, 1)))


def _checked_batch(batch: pa.RecordBatch, uri: str, text_column: str, label_column: str) -> corpus.ReviewBatch:
    texts = _texts(batch, text_column, uri)
    labels = _labels(_texts(batch, label_column, uri), uri)
    named = _split_codes(batch, uri) if SPLIT_COLUMN in batch.schema.names else None
    return corpus.ReviewBatch(labels=labels, texts=texts, named_splits=named)


def _texts(batch: pa.RecordBatch, column: str, uri: str) -> pa.Array:
    """A column as UTF-8 strings; refuses a missing column, nulls and text that is not UTF-8."""
    if column not in batch.schema.names:
        raise ReviewFileError(f"{uri}: no column {column!r} (columns: {', '.join(batch.schema.names)})")
    values = batch.column(column)
    if values.null_count:
        raise ReviewFileError(f"{uri}: column {column!r} has {values.null_count} empty (null) value(s)")
    kind = values.type
    try:
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values.validate(full=True)
            return values
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return values.cast(pa.large_string() if pa.types.is_large_binary(kind) else pa.string())
    except pa.ArrowInvalid:
        raise ReviewFileError(f"{uri}: column {column!r} is not UTF-8 text") from None
    return pa.array([str(value) for value in values.to_pylist()], pa.string())  # numbers, as Python writes them


_SPELLINGS = pa.array(list(LABEL_SPELLINGS))
_SPELLED_LABELS = np.array(list(LABEL_SPELLINGS.values()), dtype=np.int8)


def _labels(values: pa.Array, uri: str) -> np.ndarray:
    """0/1 labels of the spellings LABEL_SPELLINGS knows (any case, surrounding spaces ignored)."""
    found = pc.index_in(pc.utf8_lower(pc.utf8_trim_whitespace(values)), value_set=_SPELLINGS)
    if found.null_count:
        first = int(np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))[0])
        raise ReviewFileError(f"{uri}: label {values[first].as_py()!r} is none of 0/1, negative/positive, neg/pos")
    return _SPELLED_LABELS[found.to_numpy()]


def _split_codes(batch: pa.RecordBatch, uri: str) -> np.ndarray:
    """Each row's named split as an index of SPLIT_NAMES, -1 where the row names none."""
    column = batch.column(SPLIT_COLUMN)
    values = [None if value is None else str(value).strip().lower() for value in column.to_pylist()]
    wrong = sorted({value for value in values if value and value not in SPLIT_NAMES})
    if wrong:
        raise ReviewFileError(f"{uri}: split {wrong[0]!r} is none of {', '.join(SPLIT_NAMES)}")
    return np.array([SPLIT_NAMES.index(value) if value else -1 for value in values], dtype=np.int8)


@dataclass(frozen=True)
class Ingest:
    """What reading the files found before splitting: rows read, distinct texts kept, and how many
    texts came with both labels (the last one read kept)."""

    rows_read: int
    distinct: int
    conflicting_labels: int

    def as_statistics(self) -> dict[str, int]:
        return {
            "rows_read": self.rows_read,
            "distinct": self.distinct,
            "duplicates_dropped": self.rows_read - self.distinct,
            "conflicting_labels": self.conflicting_labels,
        }


@dataclass(frozen=True)
class Fingerprinted:
    """A batch's rows as the split needs them: a 128-bit fingerprint of each normalised text (equal
    fingerprints, duplicates), its label, and its split (the one it names, else the hash's)."""

    fingerprints: np.ndarray  # uint64 (n, 2)
    labels: np.ndarray
    splits: np.ndarray  # int8, an index of SPLIT_NAMES


def fingerprint_batch(batch: corpus.ReviewBatch, seed: int, test_fraction: float, val_fraction: float) -> Fingerprinted:
    """Each row's fingerprint (blake2b of its normalised text), label and split: the one it names,
    else `hash_split`'s, computed from the same normalised bytes."""
    texts = batch.texts if batch.texts is not None else pa.array([], pa.string())
    normalized, starts, ends = tokenizer.normalize(texts)
    prints = _blake2b_rows(normalized, starts, ends, b"", 16).view("<u8")
    shares = _blake2b_rows(normalized, starts, ends, f"{seed}\0".encode(), 8).view(">u8")[:, 0]
    hashed = _split_codes_of(shares, test_fraction, val_fraction)
    named = batch.named_splits
    splits = hashed if named is None else np.where(named >= 0, named, hashed).astype(np.int8)
    return Fingerprinted(prints, batch.labels, splits)


def _blake2b_rows(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, prefix: bytes, size: int) -> np.ndarray:
    """hashlib.blake2b(prefix + data[start:end], digest_size=size) of every row, as rows of bytes,
    computed by a compiled loop in parts on every core."""
    from tasks.data import digest_loops  # numba, on first use

    digests = np.empty((len(starts), size), dtype=np.uint8)
    salt = np.frombuffer(prefix, dtype=np.uint8)
    sizes = np.concatenate([[0], np.cumsum(ends - starts)])

    def digest_part(_: int, first: int, end: int) -> None:
        digest_loops.blake2b_rows(data, starts[first:end], ends[first:end], salt, size, digests[first:end])

    parallel.in_parts(digest_part, parallel.part_bounds(sizes))
    return digests


def _split_codes_of(digests: np.ndarray, test_fraction: float, val_fraction: float) -> np.ndarray:
    """`hash_split` over a batch of split digests (big-endian uint64), as indexes of SPLIT_NAMES."""
    share = digests.astype(np.float64) / HASH_SPAN  # rounded as Python rounds int / float
    codes = np.where((share - test_fraction) / (1 - test_fraction) < val_fraction, 1, 0)
    return np.where(share < test_fraction, 2, codes).astype(np.int8)


def last_of_each(fingerprints: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Which rows to keep (the last of each fingerprint) and how many fingerprints came with both labels."""
    rows = len(labels)
    if not rows:
        return np.zeros(0, dtype=bool), 0
    order = np.lexsort((fingerprints[:, 1], fingerprints[:, 0]))  # stable: a text's rows stay in order
    ordered = fingerprints[order]
    starts = np.ones(rows, dtype=bool)  # where each fingerprint's rows start in `order`
    starts[1:] = (ordered[1:, 0] != ordered[:-1, 0]) | (ordered[1:, 1] != ordered[:-1, 1])
    kept = np.zeros(rows, dtype=bool)
    kept[order[np.append(starts[1:], True)]] = True
    firsts, ordered_labels = np.flatnonzero(starts), labels[order]
    both = np.minimum.reduceat(ordered_labels, firsts) != np.maximum.reduceat(ordered_labels, firsts)
    return kept, int(np.count_nonzero(both))
