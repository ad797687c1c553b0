"""Training and evaluation read the stored splits batch by batch: the local copy of the ids, the Keras
feed over it (every row once per epoch, a seeded order per epoch) and the test metrics."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.config import TrainingConfig
from tasks.data import store
from tasks.errors import DataError
from tasks.training import evaluation, feed, splits
from tasks.training.fit import fit_model
from tasks.training.splits import LocalSplit

ROWS, MAXLEN, NUM_WORDS = 103, 4, 500


def numbered_split(tmp_path, rows: int = ROWS) -> LocalSplit:
    """Row i holds ids (0, ..., 0, i) and label i % 2: a batch tells which rows it holds."""
    ids = np.zeros((rows, MAXLEN), dtype=np.uint16)
    ids[:, -1] = np.arange(rows)
    np.save(tmp_path / "ids.npy", ids)
    return LocalSplit(ids_path=tmp_path / "ids.npy", labels=(np.arange(rows) % 2).astype(np.int8))


def epoch_rows(data: feed.SplitFeed) -> np.ndarray:
    """The rows of one epoch, in the order the feed gives them; checks each batch's labels and types."""
    data.on_epoch_begin()
    seen = []
    for index in range(len(data)):
        ids, labels = data[index]
        assert ids.dtype == np.int32 and labels.dtype == np.float32 and len(ids) <= data.batch_size
        assert (labels == ids[:, -1] % 2).all()
        seen.append(ids[:, -1])
    data.on_epoch_end()
    return np.concatenate(seen)


@pytest.mark.parametrize("in_memory_bytes", [0, feed.IN_MEMORY_BYTES], ids=["read-per-row", "in-memory"])
def test_the_feed_gives_every_row_once_per_epoch_in_a_new_seeded_order(tmp_path, in_memory_bytes):
    split = numbered_split(tmp_path)
    shuffled = feed.SplitFeed(split, batch_size=10, seed=7, in_memory_bytes=in_memory_bytes)
    epochs = [epoch_rows(shuffled) for _ in range(3)]
    for rows in epochs:
        assert sorted(rows) == list(range(ROWS))  # each row exactly once
    assert len({tuple(rows) for rows in epochs}) == 3  # a different order every epoch
    assert all((rows != np.arange(ROWS)).any() for rows in epochs)  # a real shuffle
    again = feed.SplitFeed(split, batch_size=10, seed=7, in_memory_bytes=in_memory_bytes)
    assert all((epoch_rows(again) == rows).all() for rows in epochs)  # the same seed, the same orders
    other = feed.SplitFeed(split, batch_size=10, seed=8, in_memory_bytes=in_memory_bytes)
    assert (epoch_rows(other) != epochs[0]).any()
    in_order = feed.SplitFeed(split, batch_size=10, in_memory_bytes=in_memory_bytes)
    assert (epoch_rows(in_order) == np.arange(ROWS)).all()  # val: file order


class CountRows(keras.layers.Layer):
    """Passes its input on; while training, counts how often each row (its last id) was seen."""

    def __init__(self, rows: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows = rows

    def build(self, input_shape) -> None:
        self.seen = self.add_weight(shape=(self.rows,), initializer="zeros", trainable=False, name="seen")

    def call(self, ids, training=None):
        if training:
            self.seen.assign_add(keras.ops.sum(keras.ops.one_hot(ids[:, -1], self.rows), axis=0))
        return ids


def test_fitting_trains_on_every_row_exactly_once_per_epoch_in_a_new_order(tmp_path, monkeypatch):
    """Through Keras' own loop (prefetching, several steps per execution), not only the feed."""
    split = numbered_split(tmp_path)
    counter = CountRows(ROWS)
    inputs = keras.Input(shape=(MAXLEN,), dtype="int32")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(ROWS, 2)(counter(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", steps_per_execution=4)
    seen, orders, begin = [], [], feed.SplitFeed.on_epoch_begin

    def record_order(self):
        begin(self)
        if self.seed is not None:
            orders.append(self._order.copy())

    monkeypatch.setattr(feed.SplitFeed, "on_epoch_begin", record_order)

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(keras.ops.convert_to_numpy(counter.seen).copy())
            counter.seen.assign(np.zeros(ROWS, dtype="float32"))

    fit_model(model, split, split, TrainingConfig(batch_size=8, max_epochs=3), 5, [Snapshot()])
    assert [counts.tolist() for counts in seen] == [[1.0] * ROWS] * 3
    assert len(orders) == 3 and len({tuple(order) for order in orders}) == 3


def write_parquet(path, ids: np.ndarray, labels: np.ndarray, metadata: dict, row_group_size: int) -> str:
    """A split as the streaming data stages write it: ids of `ids`' dtype, row groups of `row_group_size`."""
    tokens = pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), ids.shape[1])
    table = pa.table({store.TOKENS_COLUMN: tokens, store.LABEL_COLUMN: pa.array(labels.astype(np.int8))})
    table = table.replace_schema_metadata({store.METADATA_KEY: json.dumps(metadata)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


@pytest.fixture
def stored(tmp_path):
    """The same random split twice: int32 ids in one row group (today's files), and uint16 ids in
    row groups of 10 rows (the streaming stages')."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, NUM_WORDS, (ROWS, MAXLEN)).astype(np.int32)
    ids[::3, :2] = 0  # front padding on some rows
    labels = rng.integers(0, 2, ROWS).astype(np.int8)
    metadata = {"num_words": NUM_WORDS, "maxlen": MAXLEN, "seed": 0}
    single = tmp_path / "single.parquet"
    store.write_split(str(single), ids, labels, metadata)
    grouped = write_parquet(tmp_path / "grouped.parquet", ids.astype(np.uint16), labels, metadata, row_group_size=10)
    assert pq.ParquetFile(single).num_row_groups == 1 and pq.ParquetFile(grouped).num_row_groups == 11
    return {"single": str(single), "grouped": grouped, "ids": ids, "labels": labels}


def test_multi_row_group_uint16_files_copy_as_single_group_int32_ones(stored, tmp_path, monkeypatch):
    monkeypatch.setattr(splits, "ROWS_PER_READ", 16)  # batches that straddle row groups
    copies = {name: splits.copy_split(stored[name], tmp_path / f"{name}.npy", MAXLEN) for name in ("single", "grouped")}
    for copy in copies.values():
        ids = np.load(copy.ids_path)
        assert ids.dtype == np.uint16 and (ids == stored["ids"]).all()
        assert copy.labels.dtype == np.int8 and (copy.labels == stored["labels"]).all()


def test_a_copy_takes_int32_past_uint16_and_refuses_ids_outside_the_vocabulary(tmp_path):
    ids = np.array([[0, 70_000], [1, 2]], dtype=np.int32)
    labels = np.array([0, 1], dtype=np.int8)
    wide = write_parquet(tmp_path / "wide.parquet", ids, labels, {"num_words": 80_000, "maxlen": 2}, 1)
    assert np.load(splits.copy_split(wide, tmp_path / "wide.npy").ids_path).dtype == np.int32
    narrow = write_parquet(tmp_path / "narrow.parquet", ids, labels, {"num_words": 500, "maxlen": 2}, 1)
    with pytest.raises(DataError, match=r"narrow.parquet: ids must lie in \[0, 500\), found 0..70000"):
        splits.copy_split(narrow, tmp_path / "narrow.npy")
    with pytest.raises(DataError, match="2 tokens per review, but maxlen 3 is expected"):
        splits.copy_split(wide, tmp_path / "other.npy", expected_maxlen=3)


def resident_file_bytes() -> int:
    """The file-backed part of this process's resident memory (mapped files, libraries included)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("RssFile:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_an_epoch_leaves_none_of_the_file_resident(tmp_path):
    """A memory map read at random would make most of this 20 MB file resident within the epoch."""
    ids = np.zeros((100_000, 100), dtype=np.uint16)
    np.save(tmp_path / "ids.npy", ids)
    split = LocalSplit(tmp_path / "ids.npy", np.zeros(len(ids), np.int8))
    data = feed.SplitFeed(split, 64, seed=0, in_memory_bytes=0)  # read row by row, as past the in-memory cap
    data[0]  # the first read's own imports and allocations aside
    before = resident_file_bytes()
    epoch_rows_seen = sum(len(data[index][0]) for index in range(len(data)))
    assert epoch_rows_seen == len(ids) and resident_file_bytes() - before < 2 * 2**20


def test_test_metrics_read_batch_by_batch_equal_the_whole_arrays(stored, monkeypatch):
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 16)  # batches that straddle row groups
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(MAXLEN,), dtype="int32")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(NUM_WORDS, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    whole = evaluation.classification_metrics(stored["labels"], evaluation.score(model, stored["ids"]))
    assert evaluation.measure(model, stored["grouped"]) == whole
    assert evaluation.measure(model, stored["single"]) == whole
