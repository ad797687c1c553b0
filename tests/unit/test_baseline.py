"""The bag-of-words baseline: counts of the stored ids, fitted on train, scored on val and test."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tasks.config import BASELINE_MAX_ROWS, TrainingConfig
from tasks.data import prepare, store
from tasks.errors import DataError
from tasks.training import baseline, splits
from tests.helpers import TINY_MAXLEN, split_npz

MAXLEN = TINY_MAXLEN


def test_counts_are_per_review_and_leave_padding_out():
    ids = np.array([[0, 0, 1, 5, 5], [1, 2, 3, 3, 3]], dtype=np.int32)
    counts = baseline.count_ids(ids, num_words=6).toarray()
    assert counts.tolist() == [[0, 1, 0, 0, 0, 2], [0, 1, 1, 3, 0, 0]]


def test_counts_are_a_canonical_matrix_of_every_reviews_ids():
    from scipy import sparse

    rng = np.random.default_rng(6)
    ids = rng.integers(0, 30, size=(400, 25)).astype(np.uint16)  # padding (0) anywhere, repeats everywhere
    ids[7] = 0  # a review of padding only
    counts = baseline.count_ids(ids, num_words=30)
    rows = np.repeat(np.arange(400), 25)
    words = ids.reshape(-1) != 0
    expected = sparse.coo_matrix((np.ones(words.sum()), (rows[words], ids.reshape(-1)[words])), shape=(400, 30))
    assert counts.has_canonical_format and counts.getnnz(axis=1)[7] == 0
    np.testing.assert_array_equal(counts.toarray(), expected.toarray())


def test_ids_outside_the_vocabulary_are_refused():
    with pytest.raises(DataError, match=r"ids must lie in \[0, 6\), found 0..6"):
        baseline.count_ids(np.array([[0, 6]], dtype=np.int32), num_words=6)
    with pytest.raises(DataError, match=re.escape("found -1..3")):
        baseline.count_ids(np.array([[-1, 3]], dtype=np.int32), num_words=6)


def test_the_baseline_learns_the_generated_signal_and_scores_val_and_test(tiny_dataset):
    result = baseline.fit_bag_of_words(tiny_dataset)
    assert result.parameters == 51  # a weight per id and a bias
    for split, metrics in (("val", result.val), ("test", result.test)):
        assert metrics.examples == tiny_dataset.rows[split]
        # the generated reviews are separable by their signal ids; a coin would score about 0.5
        assert metrics.accuracy > 0.9 and metrics.roc_auc is not None and metrics.roc_auc > 0.95
    again = baseline.fit_bag_of_words(tiny_dataset)
    unclocked = {"fit_seconds": 0.0}
    assert again.model_copy(update=unclocked) == result.model_copy(
        update=unclocked
    )  # deterministic: the bar does not move


def test_a_single_class_training_split_is_refused(imdb_npz, tmp_path):
    splits = split_npz(imdb_npz, 50, 0.25, seed=0)
    splits["train"] = splits["train"].take(np.flatnonzero(splits["train"].labels == 1))
    metadata = {
        "num_words": 50,
        "maxlen": MAXLEN,
        "val_fraction": 0.25,
        "seed": 0,
        "source": "one",
        "source_sha256": "t",
    }
    dataset = prepare.store_reviews(splits, MAXLEN, metadata, str(tmp_path))
    with pytest.raises(DataError, match="every training review has the same label"):
        baseline.fit_bag_of_words(dataset)


def stored_in_row_groups(dataset, tmp_path) -> str:
    """The tiny train split again, as the streaming stages write it: uint16 ids in row groups of 16."""
    tokens, labels, metadata = store.read_split(dataset.split_uris["train"])
    table = store.to_table(tokens, labels, metadata)
    table = table.set_column(0, store.TOKENS_COLUMN, pc.cast(table.column(0), pa.list_(pa.uint16(), MAXLEN)))
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=16)
    return str(tmp_path / "train.parquet")


def test_counts_built_batch_by_batch_equal_the_whole_arrays(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "ROWS_PER_READ", 24)  # batches that straddle row groups
    tokens, labels, _ = store.read_split(tiny_dataset.split_uris["train"])
    whole = baseline.count_ids(tokens, num_words=50)
    for uri in (tiny_dataset.split_uris["train"], stored_in_row_groups(tiny_dataset, tmp_path)):
        counts, read_labels = baseline.count_split(uri, num_words=50, maxlen=MAXLEN)
        assert (counts != whole).nnz == 0 and counts.shape == whole.shape
        assert (counts.indptr == whole.indptr).all() and (counts.indices == whole.indices).all()
        assert (read_labels == labels).all()


def test_the_baseline_fits_on_a_seeded_sample_of_at_most_max_rows(tiny_dataset, monkeypatch, caplog):
    monkeypatch.setattr(splits, "ROWS_PER_READ", 24)
    uri, rows = tiny_dataset.split_uris["train"], tiny_dataset.rows["train"]
    tokens, labels, _ = store.read_split(uri)
    within, _ = baseline.count_split(uri, 50, MAXLEN, max_rows=rows, seed=0)
    assert (within != baseline.count_ids(tokens, 50)).nnz == 0  # at or under the cap: every row, in order
    with caplog.at_level("INFO", logger="tasks.training.baseline"):
        capped, capped_labels = baseline.count_split(uri, 50, MAXLEN, max_rows=30, seed=0)
    assert f"30 of the {rows} reviews" in caplog.text
    kept = baseline.sample_rows(rows, 30, seed=0)
    assert capped.shape == (30, 50) and (capped != baseline.count_ids(tokens[kept], 50)).nnz == 0
    assert (capped_labels == labels[kept]).all()
    assert kept.max() >= rows // 2  # a sample of the whole split, not its first rows
    assert (baseline.sample_rows(rows, 30, seed=1) != kept).any()
    small = baseline.fit_bag_of_words(tiny_dataset, max_rows=30)
    assert small.val.examples == tiny_dataset.rows["val"]  # the cap is on fitting; val and test are whole
    assert small.model_copy(update={"fit_seconds": 0.0}) != baseline.fit_bag_of_words(tiny_dataset).model_copy(
        update={"fit_seconds": 0.0}
    )


def test_the_cap_by_default_is_far_above_the_offline_corpus():
    assert TrainingConfig().baseline_max_rows == BASELINE_MAX_ROWS >= 10 * 20_000


def test_the_baseline_stage_fits_with_the_configured_cap_and_keys_its_cache_by_it(tiny_dataset):
    from tasks.storage import cache_keys
    from tasks.training import stages

    capped = stages.fit_baseline.fn(tiny_dataset, TrainingConfig(baseline_max_rows=30))
    unclocked = {"fit_seconds": 0.0}
    expected = baseline.fit_bag_of_words(tiny_dataset, max_rows=30)
    assert capped.model_copy(update=unclocked) == expected.model_copy(update=unclocked)
    assert cache_keys.baseline_key("k", 30) != cache_keys.baseline_key("k", 31)
