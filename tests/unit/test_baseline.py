"""The bag-of-words baseline: counts of the stored ids, fitted on train, scored on val and test."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tasks.data import prepare
from tasks.errors import DataError
from tasks.training import baseline
from tests.helpers import TINY_MAXLEN, split_npz

MAXLEN = TINY_MAXLEN


def test_counts_are_per_review_and_leave_padding_out():
    ids = np.array([[0, 0, 1, 5, 5], [1, 2, 3, 3, 3]], dtype=np.int32)
    counts = baseline.count_ids(ids, num_words=6).toarray()
    assert counts.tolist() == [[0, 1, 0, 0, 0, 2], [0, 1, 1, 3, 0, 0]]


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
