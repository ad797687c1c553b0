"""Labelled reviews of one's own: CSV, Parquet or JSONL files (optionally gzipped) read with pyarrow
through fsspec, checked, deduplicated by normalised text and split by a stable hash of that text.

A review's split depends only on its text and the run's seed, never on the other reviews: adding
reviews never moves one already there from one split to another.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tasks.data import corpus
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
BATCH_BYTES = 1 << 20  # CSV/JSONL read in blocks of 1 MiB: memory stays flat however big a file is
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
    """The text duplicates are found by and the split hash reads: lowercased, whitespace collapsed."""
    return " ".join(text.lower().split())


def hash_split(normalized: str, seed: int, test_fraction: float, val_fraction: float) -> str:
    """train, val or test from a hash of the text salted with the seed: test takes `test_fraction`,
    val takes `val_fraction` of the rest."""
    digest = hashlib.blake2b(f"{seed}\0{normalized}".encode(), digest_size=8).digest()
    share = int.from_bytes(digest, "big") / HASH_SPAN
    if share < test_fraction:
        return "test"
    return "val" if (share - test_fraction) / (1 - test_fraction) < val_fraction else "train"


def read_review_files(uris: list[str], text_column: str, label_column: str) -> Iterator[Review]:
    """Every row of the files in order, checked: DataError naming the file on the first bad one.

    Every file must have the same columns, across snapshots too."""
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
            yield from _batch_reviews(batch, uri, text_column, label_column)
        if found == 0:
            raise ReviewFileError(f"{uri}: no reviews (empty file)")


def _batches(uri: str, string_columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
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
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(handle).iter_batches()
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


def _batch_reviews(batch: pa.RecordBatch, uri: str, text_column: str, label_column: str) -> Iterator[Review]:
    texts = _strings(batch, text_column, uri)
    labels = [_label(value, uri) for value in _strings(batch, label_column, uri)]
    has_split = SPLIT_COLUMN in batch.schema.names
    splits = _split_names(batch, uri) if has_split else [None] * batch.num_rows
    for text, label, split in zip(texts, labels, splits, strict=True):
        yield Review(text, label, split)


def _strings(batch: pa.RecordBatch, column: str, uri: str) -> list[str]:
    """A column as Python strings; refuses a missing column, nulls and text that is not UTF-8."""
    if column not in batch.schema.names:
        raise ReviewFileError(f"{uri}: no column {column!r} (columns: {', '.join(batch.schema.names)})")
    values = batch.column(column)
    if values.null_count:
        raise ReviewFileError(f"{uri}: column {column!r} has {values.null_count} empty (null) value(s)")
    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        try:
            return [raw.decode("utf-8") for raw in values.to_pylist()]
        except UnicodeDecodeError:
            raise ReviewFileError(f"{uri}: column {column!r} is not UTF-8 text") from None
    try:
        values.validate(full=True)
        return [str(value) for value in values.to_pylist()]
    except pa.ArrowInvalid:
        raise ReviewFileError(f"{uri}: column {column!r} is not UTF-8 text") from None


def _label(value: str, uri: str) -> int:
    label = LABEL_SPELLINGS.get(value.strip().lower())
    if label is None:
        raise ReviewFileError(f"{uri}: label {value!r} is none of 0/1, negative/positive, neg/pos")
    return label


def _split_names(batch: pa.RecordBatch, uri: str) -> list[str | None]:
    values = [None if value is None else str(value).strip().lower() for value in batch.column(SPLIT_COLUMN).to_pylist()]
    wrong = sorted({value for value in values if value and value not in SPLIT_NAMES})
    if wrong:
        raise ReviewFileError(f"{uri}: split {wrong[0]!r} is none of {', '.join(SPLIT_NAMES)}")
    return [value or None for value in values]


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


def deduplicate(reviews: Iterator[Review]) -> tuple[dict[str, Review], Ingest]:
    """Reviews keyed by normalised text, the last one read winning; and what reading them found."""
    kept: dict[str, Review] = {}
    labels_seen: dict[str, set[int]] = {}
    rows = 0
    for review in reviews:
        key = normalize_text(review.text)
        kept[key] = review
        labels_seen.setdefault(key, set()).add(review.label)
        rows += 1
    conflicts = sum(1 for labels in labels_seen.values() if len(labels) > 1)
    return kept, Ingest(rows_read=rows, distinct=len(kept), conflicting_labels=conflicts)


def assign_splits(
    kept: dict[str, Review], seed: int, test_fraction: float, val_fraction: float
) -> dict[str, list[Review]]:
    """Each review in its split: the one its `split` column names, else the hash's."""
    splits: dict[str, list[Review]] = {name: [] for name in SPLIT_NAMES}
    for key, review in kept.items():
        splits[review.split or hash_split(key, seed, test_fraction, val_fraction)].append(review)
    return splits


def split_own_reviews(
    uris: list[str],
    text_column: str,
    label_column: str,
    num_words: int,
    fractions: tuple[float, float],
    seed: int,
) -> tuple[dict[str, corpus.Reviews], Ingest]:
    """Train, val and test reviews of one's own files, ids ranked on the training split only, and
    what reading the files found. Files are read in the order given, the last label of a text kept.

    `fractions` is (test share, val share of the rest). Refuses a split left empty.
    """
    kept, ingest = deduplicate(read_review_files(uris, text_column, label_column))
    grouped = assign_splits(kept, seed, *fractions)
    empty = [name for name, rows in grouped.items() if not rows]
    if empty:
        raise ReviewFileError(f"{uris[0]}: {len(kept)} distinct reviews leave the {empty[0]} split empty")
    log.info(
        "own reviews: %d distinct of %d rows read, %d text(s) with conflicting labels (last label kept)",
        ingest.distinct,
        ingest.rows_read,
        ingest.conflicting_labels,
    )
    texts = {name: [review.text for review in rows] for name, rows in grouped.items()}
    labels = {name: np.array([review.label for review in rows], dtype=np.int8) for name, rows in grouped.items()}
    return corpus.encode_texts(texts, labels, num_words), ingest
