"""A training kept in storage: each one in a folder of its own, written create-only, and read back
only when it is still what was stored."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.errors import StorageError
from tasks.storage import layout
from tasks.training import jobs
from tests.helpers import trained_variant


def trained_in(folder: Path, model: bytes) -> jobs.TrainedVariant:
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(model)
    (folder / "history.json").write_bytes(b'{"epochs": []}')
    return trained_variant(model_path=str(folder / "model.keras"), history_path=str(folder / "history.json"))


def test_two_runs_keeping_the_same_training_at_once_each_read_back_their_own(tmp_path):
    destination = layout.training_cache_uri(str(tmp_path / "store"), "key", "embedding")
    trainings = [trained_in(tmp_path / f"scratch-{index}", f"model {index}".encode() * 1000) for index in range(8)]
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda trained: jobs.store_trained(trained, destination), trainings))
    assert len({record.model_path for record in stored}) == 8
    for index, record in enumerate(stored):
        collected = jobs.collect_trained(record, tmp_path / "runs" / str(index))
        assert (collected / "model.keras").read_bytes() == f"model {index}".encode() * 1000


def test_a_stored_model_changed_in_storage_is_refused(tmp_path):
    destination = layout.training_cache_uri(str(tmp_path / "store"), "key", "onehot")
    stored = jobs.store_trained(trained_in(tmp_path / "scratch", b"the model"), destination)
    Path(stored.model_path).write_bytes(b"another model")
    with pytest.raises(StorageError, match=r"model\.keras: sha256 differs from the one recorded when it was stored"):
        jobs.collect_trained(stored, tmp_path / "run")
