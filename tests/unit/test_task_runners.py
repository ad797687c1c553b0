"""Where trainings run: the Dask address from the option or the environment, and a storage root
that workers in another folder still find."""

from __future__ import annotations

import pytest

from tasks.config import StorageConfig
from tasks.errors import PipelineError
from tasks.runtime.task_runners import DASK_ADDRESS_VARIABLE, dask_address, shared_storage


def test_the_option_wins_then_the_environment_then_this_machine(monkeypatch):
    monkeypatch.delenv(DASK_ADDRESS_VARIABLE, raising=False)
    assert dask_address(None) is None
    monkeypatch.setenv(DASK_ADDRESS_VARIABLE, " tcp://scheduler:8786/ ")
    assert dask_address(None) == "tcp://scheduler:8786"
    assert dask_address("tcp://other:9000") == "tcp://other:9000"
    monkeypatch.setenv(DASK_ADDRESS_VARIABLE, "")
    assert dask_address(None) is None


def test_a_malformed_address_in_the_environment_is_one_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(DASK_ADDRESS_VARIABLE, "scheduler:8786")
    with pytest.raises(PipelineError, match=f"^{DASK_ADDRESS_VARIABLE}: 'scheduler:8786' is not a scheduler address"):
        dask_address(None)


def test_a_relative_root_becomes_absolute_for_workers_and_others_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shared_storage(StorageConfig(root="outputs")).root == str(tmp_path / "outputs")
    assert shared_storage(StorageConfig(root="outputs")).work_dir == ".work"  # scratch stays each worker's own
    for root in ("/data/imdb", "s3://bucket/imdb", "file:///data/imdb"):
        assert shared_storage(StorageConfig(root=root)).root == root
