"""Padding and the Parquet store."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from keras.utils import pad_sequences

from tasks.data import corpus, prepare, store
from tasks.errors import DataError
from tests.helpers import review_lists

METADATA = {"num_words": 50, "maxlen": 7, "val_fraction": 0.2, "seed": 1, "source": "x", "source_sha256": "ab"}


@pytest.fixture
def ragged() -> corpus.Reviews:
    rng = np.random.default_rng(3)
    rows = [rng.integers(1, 50, size=length).tolist() for length in [0, 1, 6, 7, 8, 30, 3]]
    return corpus.Reviews.from_lists(rows, [0, 1, 0, 1, 0, 1, 1])


@pytest.mark.parametrize("maxlen", [1, 7, 40])
def test_padding_equals_keras_pad_sequences(ragged, maxlen, parts):
    expected = pad_sequences(review_lists(ragged), maxlen=maxlen)
    padded = store.pad_reviews(ragged, maxlen)
    assert padded.dtype == np.int32
    np.testing.assert_array_equal(padded, expected)


def test_split_round_trips_through_parquet_with_metadata(ragged, tmp_path):
    tokens = store.pad_reviews(ragged, 7)
    uri = str(tmp_path / "train.parquet")
    store.write_split(uri, tokens, ragged.labels, METADATA)
    read_tokens, read_labels, metadata = store.read_split(uri)
    np.testing.assert_array_equal(read_tokens, tokens)
    np.testing.assert_array_equal(read_labels, ragged.labels)
    assert metadata == METADATA
    # plain pyarrow and pandas read it too
    schema = pq.read_schema(uri)
    assert schema.field("tokens").type.list_size == 7
    frame = pd.read_parquet(uri)
    assert list(frame.columns) == ["tokens", "label"] and len(frame) == len(ragged)


def test_read_split_refuses_a_foreign_schema(tmp_path):
    uri = tmp_path / "foreign.parquet"
    pd.DataFrame({"text": ["a"], "label": [1]}).to_parquet(uri)
    with pytest.raises(DataError, match="not a split written by this pipeline"):
        store.read_split(str(uri))


def test_read_split_refuses_a_consistent_split_of_another_maxlen(ragged, tmp_path):
    uri = str(tmp_path / "other.parquet")
    store.write_split(uri, store.pad_reviews(ragged, 5), ragged.labels, {**METADATA, "maxlen": 5})
    assert store.read_split(uri, expected_maxlen=5)[0].shape[1] == 5
    with pytest.raises(DataError, match="5 tokens per review, but maxlen 7 is expected"):
        store.read_split(uri, expected_maxlen=7)


def test_read_split_refuses_maxlen_that_disagrees_with_metadata(ragged, tmp_path):
    uri = str(tmp_path / "liar.parquet")
    store.write_split(uri, store.pad_reviews(ragged, 5), ragged.labels, METADATA)  # metadata says 7
    with pytest.raises(DataError, match="disagrees with maxlen=7"):
        store.read_split(uri)


def _split_table(tokens: pa.Array, labels: pa.Array, width: int = 2) -> pa.Table:
    table = pa.table({"tokens": pa.FixedSizeListArray.from_arrays(tokens, width), "label": labels})
    return table.replace_schema_metadata({store.METADATA_KEY: json.dumps({**METADATA, "maxlen": width})})


@pytest.mark.parametrize(
    "table, words",
    [
        (_split_table(pa.array([3, 4, 5, 6], pa.int32()), pa.array([1, None], pa.int8())), "column 'label' has 1 null"),
        (
            _split_table(pa.array([3, None, 5, 6], pa.int32()), pa.array([1, 0], pa.int8())),
            "column 'tokens' has 1 null",
        ),
        (
            pa.table(
                {"tokens": pa.array([[3, 4], None], pa.list_(pa.int32(), 2)), "label": pa.array([1, 0], pa.int8())}
            ),
            "column 'tokens' has 1 null rows",
        ),
        (
            _split_table(pa.array([3, 4, 5, 6], pa.int32()), pa.array(["pos", "neg"])),
            "column 'label' must hold integers, not string",
        ),
        (
            _split_table(pa.array([3.0, 4, 5, 6]), pa.array([1, 0], pa.int8())),
            "column 'tokens' must hold integers, not double",
        ),
        (
            _split_table(pa.array([3, 4, 5, 6], pa.int32()), pa.array([1.0, 0.0])),
            "column 'label' must hold integers, not double",
        ),
        (
            _split_table(pa.array([3, 4, 5, 2**32 + 5]), pa.array([1, 0], pa.int8())),
            "column 'tokens' holds 3..4294967301, beyond int32",
        ),
        (
            _split_table(pa.array([3, 4, 5, 6], pa.int32()), pa.array([257, 0])),
            "column 'label' holds 0..257, beyond int8",
        ),
    ],
    ids=[
        "null-label",
        "null-token-id",
        "null-tokens-row",
        "string-labels",
        "float-tokens",
        "float-labels",
        "ids-beyond-int32",
        "labels-beyond-int8",
    ],
)
def test_read_split_refuses_nulls_and_wrong_column_types_naming_file_and_column(table, words, tmp_path):
    uri = tmp_path / "train.parquet"
    if table.schema.metadata is None:
        table = table.replace_schema_metadata({store.METADATA_KEY: json.dumps({**METADATA, "maxlen": 2})})
    pq.write_table(table, uri)
    with pytest.raises(DataError) as refused:
        store.read_split(str(uri))
    message = str(refused.value)
    assert message.startswith(f"{uri}: ") and words in message and "\n" not in message


def test_dataset_key_depends_on_content_and_parameters_only(ragged, tmp_path):
    digest = "0" * 64
    key = store.dataset_key(METADATA, digest)
    assert key == store.dataset_key(dict(reversed(METADATA.items())), digest)
    assert key != store.dataset_key({**METADATA, "maxlen": 8}, digest)
    assert key != store.dataset_key({**METADATA, "source_sha256": "cd"}, digest)
    assert key == store.dataset_key({**METADATA, "source": "https://mirror.example/imdb.npz"}, digest)
    assert key != store.dataset_key(METADATA, "1" * 64)
    # the content digest: the same reviews give the same key, a label or an id changed another one
    splits = {name: ragged for name in store.SPLITS}
    stored = prepare.store_reviews(splits, 7, METADATA, str(tmp_path / "a")).key
    assert prepare.store_reviews(splits, 7, METADATA, str(tmp_path / "b")).key == stored
    relabelled = dataclasses.replace(ragged, labels=1 - ragged.labels)
    assert prepare.store_reviews({**splits, "test": relabelled}, 7, METADATA, str(tmp_path / "c")).key != stored
    other_ids = dataclasses.replace(ragged, ids=np.where(ragged.ids == ragged.ids[-1], 3, ragged.ids))
    assert prepare.store_reviews({**splits, "val": other_ids}, 7, METADATA, str(tmp_path / "d")).key != stored


def test_store_reviews_writes_every_split_and_reuses_the_folder(ragged, tmp_path):
    splits = {name: ragged for name in store.SPLITS}
    info = prepare.store_reviews(splits, 7, METADATA, str(tmp_path))
    assert info.uri == f"{tmp_path}/data/{info.key}"
    assert sorted(p.name for p in (tmp_path / "data" / info.key).iterdir()) == [
        "profile.json",
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]
    assert info.rows == {"train": 7, "val": 7, "test": 7}
    assert store.read_split(info.split_uris["val"])[2]["split"] == "val"
    np.testing.assert_array_equal(store.read_split(info.split_uris["val"])[0], store.pad_reviews(ragged, 7))
    assert pq.read_schema(info.split_uris["val"]).field("tokens").type.value_type == pa.uint16()
    before = (tmp_path / "data" / info.key / "train.parquet").stat().st_mtime_ns
    again = prepare.store_reviews(splits, 7, METADATA, str(tmp_path))
    assert again.key == info.key and again.profile_sha256 == info.profile_sha256
    assert (tmp_path / "data" / info.key / "train.parquet").stat().st_mtime_ns == before
    # a folder missing a file is no complete data set: written again
    (tmp_path / "data" / info.key / "test.parquet").unlink()
    prepare.store_reviews(splits, 7, METADATA, str(tmp_path))
    assert (tmp_path / "data" / info.key / "test.parquet").is_file()
