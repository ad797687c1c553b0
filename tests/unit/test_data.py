"""Loading, encoding and splitting reviews."""

from __future__ import annotations

import os
import pickle
import re
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.model_selection import train_test_split

from tasks.config import DataConfig
from tasks.data import corpus, reading, split, store
from tasks.data.store import read_split
from tasks.errors import DataError
from tests.helpers import (
    file_source,
    keras_load_data,
    prepare_source,
    review_lists,
    split_npz,
    stored_rows,
    write_imdb_npz,
    write_reviews_csv,
)


@pytest.mark.parametrize("num_words", [4, 25, 500])
def test_npz_loader_matches_keras_load_data(imdb_npz, monkeypatch, num_words):
    (x_train, y_train), (x_test, y_test) = keras_load_data(imdb_npz, monkeypatch, num_words)
    train, test = corpus.load_keras_npz(imdb_npz, num_words)
    assert review_lists(train) == [list(row) for row in x_train]
    assert review_lists(test) == [list(row) for row in x_test]
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_array_equal(test.labels, y_test)


def test_encoded_ids_follow_the_keras_scheme(imdb_npz):
    train, _ = corpus.load_keras_npz(imdb_npz, num_words=25)
    rows = review_lists(train)
    assert all(row[0] == corpus.START_ID for row in rows)
    body = np.concatenate([row[1:] for row in rows])
    assert body.max() < 25
    assert set(np.unique(body)) - {corpus.OOV_ID} <= set(range(corpus.INDEX_FROM + 1, 25))
    assert (body == corpus.OOV_ID).any()


def test_reviews_take_keeps_rows_and_order():
    reviews = corpus.Reviews.from_lists([[1, 2], [], [3, 4, 5], [6]], [0, 1, 0, 1])
    picked = reviews.take(np.array([2, 0, 1, 2]))
    assert review_lists(picked) == [[3, 4, 5], [1, 2], [], [3, 4, 5]]
    np.testing.assert_array_equal(picked.labels, [0, 0, 1, 0])


def test_npz_with_code_in_its_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = np.empty(1, dtype=object)
    bad[0] = Exploit()
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=bad, y_train=np.zeros(1, int), x_test=bad, y_test=np.zeros(1, int))
    with pytest.raises(DataError, match="refusing to unpickle"):
        corpus.read_npz(path)
    assert not marker.exists()


def test_npz_missing_keys_is_a_data_error(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros(2), y_train=np.zeros(2))
    with pytest.raises(DataError, match="missing x_test, y_test"):
        corpus.read_npz(path)


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_npz_is_a_data_error(imdb_npz, tmp_path, cut):
    path = tmp_path / "truncated.npz"
    raw = imdb_npz.read_bytes()
    path.write_bytes(raw[: int(len(raw) * cut)])
    with pytest.raises(DataError, match=re.escape("cannot read imdb.npz")):
        corpus.read_npz(path)


@pytest.mark.parametrize(
    "labels, message",
    [(np.array([0, 2]), "0 or 1"), (np.array([0.0, 1.0]), "0 or 1"), (np.array([0]), "2 reviews but 1 labels")],
)
def test_bad_labels_are_refused(tmp_path, labels, message):
    path = tmp_path / "labels.npz"
    reviews = np.empty(2, dtype=object)
    reviews[:] = [[1, 2], [3]]
    np.savez(path, x_train=reviews, y_train=labels, x_test=reviews, y_test=np.array([0, 1]))
    with pytest.raises(DataError, match=message):
        corpus.load_keras_npz(path, 10)


def test_ids_below_one_and_empty_splits_are_refused(tmp_path):
    reviews = np.empty(2, dtype=object)
    reviews[:] = [[1, 0], [3]]
    np.savez(tmp_path / "zero.npz", x_train=reviews, y_train=np.array([0, 1]), x_test=reviews, y_test=np.array([0, 1]))
    with pytest.raises(DataError, match=">= 1"):
        corpus.load_keras_npz(tmp_path / "zero.npz", 10)
    empty = np.empty(0, dtype=object)
    reviews[:] = [[1, 2], [3]]
    np.savez(tmp_path / "empty.npz", x_train=reviews, y_train=np.array([0, 1]), x_test=empty, y_test=np.array([], int))
    with pytest.raises(DataError, match="'x_test' is empty"):
        corpus.load_keras_npz(tmp_path / "empty.npz", 10)


def test_split_matches_train_test_split_and_is_deterministic(imdb_npz):
    train_part, _ = corpus.load_keras_npz(imdb_npz, 50)
    rows = np.arange(len(train_part))
    train, val = split.split_train_val(rows, 0.2, seed=42)
    sequences = np.empty(len(train_part), dtype=object)
    sequences[:] = review_lists(train_part)
    x_train, x_val, _, y_val = train_test_split(sequences, train_part.labels, test_size=0.2, random_state=42)
    assert review_lists(train_part.take(train)) == list(x_train)
    assert review_lists(train_part.take(val)) == list(x_val)
    np.testing.assert_array_equal(train_part.labels[val], y_val)
    again, _ = split.split_train_val(rows, 0.2, seed=42)
    np.testing.assert_array_equal(again, train)
    other, _ = split.split_train_val(rows, 0.2, seed=7)
    assert other.tolist() != train.tolist()
    with pytest.raises(DataError, match="cannot split 1 review"):
        split.split_train_val(rows[:1], 0.2, seed=42)


def test_tokenize_and_rank_words():
    assert corpus.tokenize("Great film!<br /><br />It's GREAT, 10/10.") == [
        "great",
        "film",
        "it's",
        "great",
        "10",
        "10",
    ]
    ranks = split.rank_words(Counter(["b", "a", "b", "c", "a", "b"]))
    assert ranks == {"b": 1, "a": 2, "c": 3}
    assert split.rank_words(Counter({"z": 2, "a": 2, "m": 3})) == {"m": 1, "a": 2, "z": 3}  # ties alphabetical


def _offline_csv(tmp_path):
    rows = [(f"Fine fine fine movie movie good {i}", 1, "imdb") for i in range(10)]
    rows += [(f"fine fine fine movie movie bad {i}", 0, "imdb") for i in range(10, 20)]
    rows += [(" ".join(["zebra"] * 11), 1, "rotten_tomatoes")]
    return file_source("offline", write_reviews_csv(tmp_path / "reviews.csv", rows))


def test_offline_vocabulary_is_ranked_on_training_reviews_only(tmp_path):
    source = _offline_csv(tmp_path)
    plan, dataset = prepare_source(source, tmp_path, num_words=1000, maxlen=20)
    assert plan.source_rows == 20  # the rotten tomatoes row is not part of the corpus
    assert plan.rows["train"] + plan.rows["val"] == 16 and plan.rows["test"] == 4
    training = stored_rows(dataset.split_uris["train"]) + stored_rows(dataset.split_uris["val"])
    test = stored_rows(dataset.split_uris["test"])
    _, test_labels, _ = read_split(dataset.split_uris["test"])
    assert test_labels.mean() == 0.5  # stratified
    # "fine" and "movie" rank first and second: ids 4 and 5 after the start id and the shift by 3
    assert {tuple(row[:6]) for row in training + test} == {(1, 4, 4, 4, 5, 5)}
    assert sum(map(len, training)) == 16 * 8
    assert "zebra" not in plan.word_index()
    # each test review's number never occurs in training: skipped, as in the canonical file
    assert {len(row) for row in test} == {7}
    test_numbers = {text.rsplit(" ", 1)[1] for text in pq.read_table(dataset.split_uris["test"])["review"].to_pylist()}
    assert len(test_numbers) == 4 and not test_numbers & set(plan.word_index())
    _, clipped = prepare_source(source, tmp_path, num_words=5, maxlen=20)
    assert {tuple(row[:6]) for row in stored_rows(clipped.split_uris["train"])} == {(1, 4, 4, 4, 2, 2)}


def test_offline_corpus_of_the_package_has_the_expected_split(tmp_path):
    from tasks.data.sources import offline_source

    source = offline_source()
    config = DataConfig(cache_dir=str(tmp_path / "cache"), num_words=500)
    plan = split.plan_splits(source, config, 0, str(tmp_path), "k")
    assert (plan.rows["train"] + plan.rows["val"], plan.rows["test"]) == (20_000, 5_000)
    labels = np.concatenate([batch.labels for batch in reading.read_batches(source, "text", "label", str(tmp_path))])
    assignment = plan.assignment()
    assert labels[assignment != split.TEST].mean() == labels[assignment == split.TEST].mean() == 0.5
    assert len(plan.word_index()) > 500


def test_the_npz_plan_splits_its_train_part_and_keeps_its_test_part(imdb_npz, tmp_path):
    plan, dataset = prepare_source(file_source("npz", imdb_npz), tmp_path, num_words=50, maxlen=20, val_fraction=0.25)
    assert plan.rows == {"train": 180, "val": 60, "test": 120} and plan.word_index() is None
    in_memory = split_npz(imdb_npz, 50, 0.25, seed=0)
    for name in ("train", "val", "test"):
        tokens, labels, _ = read_split(dataset.split_uris[name])
        expected = store.pad_reviews(in_memory[name], 20)
        # the plan keeps the source's order, not the split's: equal as multisets of rows
        assert sorted(map(tuple, tokens.tolist())) == sorted(map(tuple, expected.tolist()))
        assert sorted(labels.tolist()) == sorted(in_memory[name].labels.tolist())


def test_pickle_of_real_object_arrays_is_allowed(tmp_path):
    reviews = np.empty(2, dtype=object)
    reviews[:] = [[1, 2], [3]]
    assert pickle.loads(pickle.dumps(reviews))[1] == [3]  # sanity: the format the loader must accept
    path = write_imdb_npz(tmp_path / "ok.npz", train=5, test=5)
    assert set(corpus.read_npz(path)) == set(corpus.NPZ_KEYS)
