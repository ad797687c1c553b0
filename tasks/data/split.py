"""The split stage's logic, streaming: the split of every row of a resolved source and the words of
its training rows ranked, written as a small plan (a byte per row and a word index) under the
storage's cache; the reviews themselves stay in the source until pad-and-store reads them again.

- imdb.npz: its train part split into train and val as the recipe does (`train_test_split` with the
  run's seed), its test part as test.
- The offline corpus: a stratified 80/20 train part / test split with a fixed seed, then the recipe's
  train/val split of the train part; words ranked on the train part.
- One's own reviews: deduplicated by normalised text (the last one read kept), each in the split
  its `split` column names or else the one a hash of its text gives; words ranked on train.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.config import DataConfig
from tasks.data import corpus, own_reviews, reading, tokenizer
from tasks.data.pieces import map_pieces, source_pieces
from tasks.data.sources import SourceInfo
from tasks.errors import DataError, ReviewFileError
from tasks.storage import fs
from tasks.storage.layout import ASSIGNMENT_NAME, WORD_INDEX_NAME, split_plan_uri

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = range(3)  # a row's split in the plan's assignment, as an index of SPLITS
DROPPED = -1  # a row the plan leaves out: a duplicate of a later one


class SplitPlan(BaseModel):
    """Where every source row goes and which words the training rows hold: files under the storage's
    cache, each with its sha256 (checked when read back), and the counts the later stages need."""

    model_config = ConfigDict(frozen=True)

    key: str
    rows: dict[str, int]  # reviews per split
    source_rows: int  # rows the source holds, duplicates included
    assignment_uri: str  # int8 per source row: an index of SPLITS, or DROPPED
    assignment_sha256: str
    word_index_uri: str | None = None  # raw texts: word -> frequency rank on the training rows
    word_index_sha256: str | None = None
    ingest: dict[str, int] | None = None  # one's own reviews: rows read, duplicates, conflicting labels
    piece_rows: list[int] = []  # rows of each piece of the source (tasks/data/pieces.py), in order

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def assignment(self) -> np.ndarray:
        return np.load(io.BytesIO(fs.read_verified(self.assignment_uri, self.assignment_sha256)), allow_pickle=False)

    def word_index(self) -> dict[str, int] | None:
        if self.word_index_uri is None or self.word_index_sha256 is None:
            return None
        return json.loads(fs.read_verified(self.word_index_uri, self.word_index_sha256))


def plan_splits(
    source: SourceInfo, config: DataConfig, seed: int, root: str, key: str, dask_address: str | None = None
) -> SplitPlan:
    """Reads the source (twice for raw texts: splits first, then the training rows' words) and
    writes the plan under `<root>/cache/splits/<key>/`. With `dask_address`, one's own files are
    read and counted on that Dask cluster, file by file (tasks/data/pieces.py)."""
    ingest, piece_rows = None, None
    if source.kind == "reviews":
        assignment, found, piece_rows = assign_own_reviews(source, config, seed, dask_address)
        ingest = found.as_statistics()
    elif source.kind == "offline":
        assignment = _assign_offline(_labels_of(source, config), config.val_fraction, seed)
    else:
        assignment = _assign_npz(_parts_of(source, config), config.val_fraction, seed)
    piece_rows = piece_rows or [len(assignment)]
    rows = {name: int(np.sum(assignment == code)) for code, name in enumerate(SPLITS)}
    log.info("split: %d train / %d val / %d test reviews", rows["train"], rows["val"], rows["test"])
    folder = split_plan_uri(root, key)
    assignment_uri = fs.join(folder, ASSIGNMENT_NAME)
    buffer = io.BytesIO()
    np.save(buffer, assignment, allow_pickle=False)
    plan = {
        "key": key,
        "rows": rows,
        "source_rows": len(assignment),
        "assignment_uri": assignment_uri,
        "assignment_sha256": fs.write_verified(assignment_uri, buffer.getvalue()),
        "ingest": ingest,
        "piece_rows": piece_rows,
    }
    if source.kind != "npz":
        training = (TRAIN,) if source.kind == "reviews" else (TRAIN, VAL)
        slices = piece_slices(assignment, piece_rows)
        arguments = [(piece, config, rows, training) for piece, rows in zip(source_pieces(source), slices, strict=True)]
        word_index = rank_words(sum(map_pieces(count_training_words, arguments, dask_address), Counter()))
        word_index_uri = fs.join(folder, WORD_INDEX_NAME)
        word_index_sha256 = fs.write_verified(word_index_uri, fs.compact_json_bytes(word_index))
        plan |= {"word_index_uri": word_index_uri, "word_index_sha256": word_index_sha256}
    return SplitPlan(**plan)


def _batches(source: SourceInfo, config: DataConfig) -> Iterator[corpus.ReviewBatch]:
    return reading.read_batches(source, config.text_column, config.label_column, config.cache_dir)


def _labels_of(source: SourceInfo, config: DataConfig) -> np.ndarray:
    return np.concatenate([batch.labels for batch in _batches(source, config)])


def _parts_of(source: SourceInfo, config: DataConfig) -> np.ndarray:
    return np.concatenate([batch.parts for batch in _batches(source, config) if batch.parts is not None])


def split_train_val(rows: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and val parts of `rows` as `train_test_split(x, y, test_size=val_fraction, random_state=seed)`."""
    from sklearn.model_selection import train_test_split  # on first use: a cached run never splits

    if len(rows) < 2:
        raise DataError(f"cannot split {len(rows)} review(s) into train and val")
    try:
        train, val = train_test_split(np.arange(len(rows)), test_size=val_fraction, random_state=seed)
    except ValueError as error:
        raise DataError(f"cannot split {len(rows)} reviews with val fraction {val_fraction} ({error})") from None
    return rows[train], rows[val]


def _assign_npz(parts: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    assignment = np.full(len(parts), TEST, dtype=np.int8)
    train, val = split_train_val(np.flatnonzero(parts == reading.TRAIN_PART), val_fraction, seed)
    assignment[train], assignment[val] = TRAIN, VAL
    if not np.any(parts == reading.TEST_PART):
        raise DataError("the imdb.npz's test part is empty")
    return assignment


def _assign_offline(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    assignment = np.full(len(labels), TEST, dtype=np.int8)
    train_part, _ = corpus.offline_rows(labels)
    train, val = split_train_val(train_part, val_fraction, seed)
    assignment[train], assignment[val] = TRAIN, VAL
    return assignment


def assign_own_reviews(
    source: SourceInfo, config: DataConfig, seed: int, dask_address: str | None = None
) -> tuple[np.ndarray, own_reviews.Ingest, list[int]]:
    """Each row's split, DROPPED for a row whose normalised text a later row repeats; what reading
    the rows found; and the rows of each file. Refuses a split left empty, and files whose columns
    differ."""
    own_reviews.check_same_columns([file.uri for file in source.files], config.text_column, config.label_column)
    pieces = source_pieces(source)
    scanned = map_pieces(fingerprint_piece, [(piece, config, seed) for piece in pieces], dask_address)
    fingerprints = np.concatenate([part.fingerprints for part in scanned])
    labels = np.concatenate([part.labels for part in scanned])
    assignment = np.concatenate([part.splits for part in scanned])
    kept, conflicts = own_reviews.last_of_each(fingerprints, labels)
    assignment[~kept] = DROPPED
    ingest = own_reviews.Ingest(rows_read=len(labels), distinct=int(kept.sum()), conflicting_labels=conflicts)
    log.info(
        "own reviews: %d distinct of %d rows read, %d text(s) with conflicting labels (last label kept)",
        ingest.distinct,
        ingest.rows_read,
        ingest.conflicting_labels,
    )
    empty = [name for code, name in enumerate(SPLITS) if not np.any(assignment == code)]
    if empty:
        first = source.files[0].uri if source.files else source.uri
        raise ReviewFileError(f"{first}: {ingest.distinct} distinct reviews leave the {empty[0]} split empty")
    return assignment, ingest, [len(part.labels) for part in scanned]


def fingerprint_piece(piece: SourceInfo, config: DataConfig, seed: int) -> own_reviews.Fingerprinted:
    """Every row of one piece of one's own reviews fingerprinted, with its label and split."""
    fractions = (config.test_fraction, config.val_fraction)
    parts = [own_reviews.fingerprint_batch(batch, seed, *fractions) for batch in _batches(piece, config)]
    return own_reviews.Fingerprinted(
        np.concatenate([part.fingerprints for part in parts]),
        np.concatenate([part.labels for part in parts]),
        np.concatenate([part.splits for part in parts]),
    )


def piece_slices(assignment: np.ndarray, piece_rows: list[int]) -> list[np.ndarray]:
    """The assignment of each piece's rows."""
    bounds = np.cumsum([0, *piece_rows])
    return [assignment[start:end] for start, end in itertools.pairwise(bounds.tolist())]


def count_training_words(
    piece: SourceInfo, config: DataConfig, assignment: np.ndarray, training: tuple[int, ...]
) -> Counter[str]:
    """How often each word occurs in the piece's rows of the `training` splits, in one streaming pass
    (`assignment`: the splits of the piece's rows)."""
    counter, start = tokenizer.WordCounter(), 0
    for batch in _batches(piece, config):
        rows = np.isin(assignment[start : start + len(batch)], training)
        start += len(batch)
        if batch.texts is not None and rows.any():
            counter.add(batch.texts, rows)
    return counter.counts()


def rank_words(counts: Counter[str]) -> dict[str, int]:
    """Frequency ranks from 1 (most frequent); ties broken alphabetically so ranks are stable."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {word: rank for rank, (word, _) in zip(itertools.count(1), ordered, strict=False)}
