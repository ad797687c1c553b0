"""The streamed data stages: the split plan's files checked against their sha256, pad-and-store's
row groups of uint16 ids read back group by group, and the statistics gathered batch by batch."""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.config import DataConfig
from tasks.data import corpus, prepare, split, statistics, store
from tasks.data.statistics import LENGTH_BIN_LIMIT, LENGTH_BIN_WIDTH, LENGTH_QUANTILES, SplitStatistics
from tasks.errors import StorageError
from tests.helpers import file_source, prepare_source, write_reviews_csv

WORDS = ("good", "bad", "plot", "actor", "scene", "music", "ending", "story", "camera", "script")


def generated_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """An offline-corpus CSV of `rows` short IMDB reviews (and a Rotten Tomatoes row, skipped)."""
    rng = random.Random(seed)
    reviews = [(" ".join(rng.choices(WORDS, k=rng.randint(1, 8))), index % 2, "imdb") for index in range(rows)]
    return write_reviews_csv(path, [*reviews, ("not imdb", 1, "rotten_tomatoes")])


@pytest.fixture(scope="module")
def large_dataset(tmp_path_factory):
    """More reviews than one row group holds in train (40,000: 25,600 train, 6,400 val, 8,000 test)."""
    folder = tmp_path_factory.mktemp("large")
    source = file_source("offline", generated_csv(folder / "reviews.csv", 40_000))
    return prepare_source(source, folder, num_words=50, maxlen=12)


def test_store_splits_writes_uint16_ids_in_row_groups_of_row_group_rows(large_dataset):
    plan, dataset = large_dataset
    assert plan.rows == {"train": 25_600, "val": 6_400, "test": 8_000} == dataset.rows
    parquet = pq.ParquetFile(dataset.split_uris["train"])
    groups = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    assert groups == [store.ROW_GROUP_ROWS, 25_600 - store.ROW_GROUP_ROWS]
    assert parquet.schema_arrow.field(store.TOKENS_COLUMN).type == pa.list_(pa.uint16(), 12)
    assert parquet.schema_arrow.names == [store.TOKENS_COLUMN, store.LABEL_COLUMN, store.TEXT_COLUMN]


def test_iter_split_yields_the_rows_read_split_reads(large_dataset):
    _, dataset = large_dataset
    for name, uri in dataset.split_uris.items():
        tokens, labels, metadata = store.read_split(uri, expected_maxlen=12)
        groups = list(store.iter_split(uri, expected_maxlen=12))
        assert len(groups) == -(-dataset.rows[name] // store.ROW_GROUP_ROWS) and metadata["split"] == name
        assert all(group.dtype == np.uint16 for group, _ in groups)
        np.testing.assert_array_equal(np.concatenate([group for group, _ in groups]), tokens)
        np.testing.assert_array_equal(np.concatenate([group_labels for _, group_labels in groups]), labels)


def test_the_profile_describes_what_was_stored(large_dataset):
    _, dataset = large_dataset
    profile = json.loads(Path(dataset.profile_uri).read_text())
    for name, uri in dataset.split_uris.items():
        tokens, labels, _ = store.read_split(uri)
        assert profile["splits"][name]["rows"] == len(labels)
        assert profile["splits"][name]["labels"] == {str(label): int(np.sum(labels == label)) for label in (0, 1)}
        assert profile["splits"][name]["length"]["max"] == int((tokens > 0).sum(axis=1).max())
        # every review fits in 12 ids whole: a repeated review is a repeated stored row
        repeated = len(labels) - len(np.unique(tokens, axis=0))
        assert repeated > 0 and profile["duplicates"]["within"][name]["rows"] == repeated


def _small_plan(tmp_path) -> tuple[split.SplitPlan, DataConfig, object]:
    source = file_source("offline", generated_csv(tmp_path / "reviews.csv", 200))
    config = DataConfig(cache_dir=str(tmp_path / "cache"), num_words=50, maxlen=10)
    return prepare.split_resolved(source, config, 0, str(tmp_path)), config, source


def test_a_tampered_assignment_is_refused(tmp_path):
    plan, config, source = _small_plan(tmp_path)
    assignment = plan.assignment()
    assert assignment.dtype == np.int8 and len(assignment) == plan.source_rows == 200
    assert Path(plan.assignment_uri).parent == tmp_path / "cache" / "splits" / plan.key
    moved = assignment.copy()
    moved[np.flatnonzero(moved == split.TEST)[:5]] = split.TRAIN  # five test reviews moved into train
    buffer = io.BytesIO()
    np.save(buffer, moved, allow_pickle=False)
    Path(plan.assignment_uri).write_bytes(buffer.getvalue())
    with pytest.raises(StorageError, match=r"assignment\.npy: sha256 .* differs from the .* recorded"):
        plan.assignment()
    with pytest.raises(StorageError, match=r"assignment\.npy: sha256"):
        prepare.store_splits(plan, source, config, 0, str(tmp_path))


def test_a_tampered_word_index_is_refused(tmp_path):
    plan, config, source = _small_plan(tmp_path)
    word_index = plan.word_index()
    assert set(word_index) == set(WORDS) and sorted(word_index.values()) == list(range(1, 11))
    swapped = {**word_index, "good": word_index["bad"], "bad": word_index["good"]}
    Path(plan.word_index_uri).write_text(json.dumps(swapped, sort_keys=True, separators=(",", ":")) + "\n")
    with pytest.raises(StorageError, match=r"word_index\.json: sha256 .* differs from the .* recorded"):
        plan.word_index()
    with pytest.raises(StorageError, match=r"word_index\.json: sha256"):
        prepare.store_splits(plan, source, config, 0, str(tmp_path))


def random_reviews(rows: int, seed: int, num_words: int = 40) -> corpus.Reviews:
    """Reviews of 1 to 1,500 ids (past the histogram's last bin), oov and out-of-range ids included."""
    rng = np.random.default_rng(seed)
    sequences = [
        [corpus.START_ID, *rng.integers(2, num_words + 10, size=int(rng.integers(0, 1500))).tolist()]
        for _ in range(rows)
    ]
    return corpus.Reviews.from_lists(sequences, rng.integers(0, 2, size=rows).astype(np.int8))


def test_statistics_gathered_batch_by_batch_equal_those_of_the_whole(parts):
    reviews = random_reviews(700, 0)
    whole = SplitStatistics(maxlen=200, num_words=40)
    whole.add(reviews)
    batched = SplitStatistics(maxlen=200, num_words=40)
    bounds = [0, 1, 1, 90, 91, 400, 700]  # an empty batch and a batch of one among them
    for start, end in itertools.pairwise(bounds):
        batched.add(reviews.take(np.arange(start, end)))
    assert batched.describe() == whole.describe()
    np.testing.assert_array_equal(batched.fingerprints(), whole.fingerprints())


def test_statistics_equal_numpy_on_the_whole(parts):
    reviews = random_reviews(500, 1)
    described = SplitStatistics(maxlen=200, num_words=40)
    for part in np.array_split(np.arange(len(reviews)), 7):
        described.add(reviews.take(part))
    found = described.describe()
    lengths = reviews.lengths
    for share in LENGTH_QUANTILES:
        assert found["length"][f"p{round(share * 100):02d}"] == pytest.approx(np.quantile(lengths, share), abs=1e-9)
    assert (found["length"]["min"], found["length"]["max"]) == (lengths.min(), lengths.max())
    assert found["length"]["mean"] == pytest.approx(lengths.mean())
    edges = [*range(0, LENGTH_BIN_LIMIT + 1, LENGTH_BIN_WIDTH), lengths.max() + 1]
    assert found["length_histogram"] == np.histogram(lengths, bins=edges)[0].tolist()
    words = reviews.ids[reviews.ids != corpus.START_ID]
    assert found["token_counts"] == np.bincount(np.minimum(words, 39), minlength=40).tolist()
    assert found["oov_rate"] == pytest.approx(np.mean(words == corpus.OOV_ID))
    assert found["word_ids"] == {"min": int(words.min()), "max": int(words.max())}
    assert found["truncated_share"] == pytest.approx(np.mean(lengths > 200))
    assert found["padded_share"] == pytest.approx(np.mean(lengths < 200))


def test_fingerprints_are_equal_for_equal_reviews_only(parts):
    reviews = corpus.Reviews.from_lists(
        [[1, 5, 6, 7], [1, 5, 6, 7], [1, 7, 6, 5], [1, 5, 6], [1, 5, 6, 7, 0], [1], [1, 6, 5, 7], [1, 5, 6, 8]],
        np.zeros(8, dtype=np.int8),
    )
    prints = statistics.fingerprints(reviews)
    assert prints.dtype == np.uint64 and prints[0] == prints[1]
    assert len(set(prints[1:].tolist())) == 7  # reordered, shorter, longer, empty, swapped, one id changed
    np.testing.assert_array_equal(statistics.fingerprints(reviews.take(np.array([3, 0]))), prints[[3, 0]])
    large = random_reviews(3000, 2)
    assert len(np.unique(statistics.fingerprints(large))) == len({tuple(row) for row in _rows(large)})


def _rows(reviews: corpus.Reviews) -> list[list[int]]:
    return [
        reviews.ids[start:end].tolist() for start, end in zip(reviews.offsets[:-1], reviews.offsets[1:], strict=True)
    ]


def test_describe_overlap_counts_as_numpys_unique_and_isin_do():
    rng = np.random.default_rng(4)
    pool = rng.integers(0, 2**64, size=400, dtype=np.uint64)  # few values: repeats everywhere
    prints = {name: rng.choice(pool, size=size) for name, size in (("train", 600), ("val", 150), ("test", 200))}
    prints["val"][:3] = np.iinfo(np.uint64).max  # past every value of the others
    overlap = statistics.describe_overlap(prints)
    for name, values in prints.items():
        assert overlap["within"][name]["rows"] == len(values) - len(np.unique(values))
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert overlap["across"][f"{first}/{second}"]["rows"] == np.isin(prints[second], prints[first]).sum()
    training = np.concatenate([prints["train"], prints["val"]])
    assert overlap["test_in_training"]["rows"] == np.isin(prints["test"], training).sum()
    empty = statistics.describe_overlap({name: np.zeros(0, np.uint64) for name in prints})
    assert empty["test_in_training"] == {"rows": 0, "share": 0.0}


def test_describe_overlap_counts_repeats_within_and_across_splits():
    prints = {
        "train": np.array([1, 2, 2, 3], dtype=np.uint64),
        "val": np.array([4, 5], dtype=np.uint64),
        "test": np.array([3, 4, 6, 7], dtype=np.uint64),
    }
    overlap = statistics.describe_overlap(prints)
    assert overlap["within"]["train"] == {"rows": 1, "share": 0.25}
    assert overlap["across"]["train/test"] == {"rows": 1, "share": 0.25}
    assert overlap["across"]["val/test"] == {"rows": 1, "share": 0.25}
    assert overlap["test_in_training"] == {"rows": 2, "share": 0.5}


def test_the_id_range_holds_ids_below_zero_and_is_none_without_words(parts):
    described = SplitStatistics(maxlen=4, num_words=10)
    described.add(corpus.Reviews.from_lists([[1, -5, 3], [1], [1, 7, -2]], np.zeros(3, np.int8)))
    assert described.describe()["word_ids"] == {"min": -5, "max": 7}
    empty = SplitStatistics(maxlen=4, num_words=10)
    empty.add(corpus.Reviews.from_lists([[1], [1]], np.zeros(2, np.int8)))
    assert empty.describe()["word_ids"] is None
