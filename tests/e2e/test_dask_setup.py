"""A Dask cluster started without the project's code where it is needed: the run stops with one
line that names the fix, not a deserialisation traceback."""

from __future__ import annotations

import os

import pytest

from flows.imdb_pipeline import main
from infra import local_dask
from tests.helpers import assert_nothing_published, run_error_line, small_run_options

pytestmark = pytest.mark.e2e


def test_a_scheduler_without_the_projects_code_stops_the_run_with_the_fix(prefect_harness, imdb_npz, tmp_path, capsys):
    bare = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # as a shell starts it
    cluster = local_dask.start(1, tmp_path / "dask", scheduler_environment=bare)
    try:
        options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1")
        assert main([*options, "--dask-address", cluster.address]) == 1
    finally:
        cluster.stop()
    line = run_error_line(capsys.readouterr())
    assert line.startswith(f"error: the Dask scheduler at {cluster.address} cannot read this run's tasks")
    assert "No module named 'tasks'" in line
    assert line.endswith(": start `dask scheduler` with this checkout on PYTHONPATH, as its workers")
    assert_nothing_published(tmp_path / "store")
