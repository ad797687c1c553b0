"""Dask runs beyond the cluster itself (see test_dask.py, whose helpers they use; a file of their
own so that both test processes share the Dask tests): a run to S3 with the credentials only in
the workers' environment, and two command-line runs on the same workers, each with its own
temporary Prefect server."""

from __future__ import annotations

import pytest

from tests.e2e.test_dask import SWEEP, TRAININGS, run_on_dask
from tests.helpers import dask_trainings, latest_flow_run_log, prefect_home, small_run_options
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_dask_run_to_s3_reads_and_writes_only_through_s3(
    dask_processes, s3_server, s3_prefix, imdb_npz, tmp_path, capsys
):
    cluster = dask_processes(s3_server.environment())  # workers get the storage's credentials in their environment
    run_uri = run_on_dask(cluster.address, imdb_npz, tmp_path, capsys, "--storage", s3_prefix)
    assert run_uri.startswith(f"{s3_prefix}/runs/")
    trainings = dask_trainings(latest_flow_run_log())
    assert set(trainings) == TRAININGS
    assert verify_main([run_uri]) == 0
    assert not (tmp_path / "store").exists()
    assert not [path for path in (tmp_path / "work").rglob("*") if path.is_file()]


def test_command_line_runs_without_a_prefect_server_train_on_the_same_workers_one_after_another(
    dask_processes, imdb_npz, tmp_path, migrated_prefect_database
):
    """What `make dask` then `make run` twice does: each run starts its own temporary Prefect server
    (a new port each time), which its trainings on the long-lived workers must reach."""
    import os
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    cluster = dask_processes()
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home(tmp_path, migrated_prefect_database))
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", *SWEEP, "--dask-address", cluster.address
    )
    for extra in ([], ["--refresh"]):  # the second run trains again rather than reuse the first's results
        result = subprocess.run(
            [sys.executable, "-m", "flows.imdb_pipeline", *options, *extra],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert verify_main([result.stdout.strip().splitlines()[-1].removeprefix("run: ")]) == 0
    worker_logs = "".join((tmp_path / "dask" / f"worker-{index}.log").read_text() for index in range(2))
    assert worker_logs.count(": training on Dask worker tcp://127.0.0.1:") == 4  # two points, twice
