"""Shared fixtures: small generated IMDB-like data, a local HTTP server, one Prefect test harness."""

from __future__ import annotations

import base64
import functools
import http.server
import os
import re
import tempfile
import threading
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from tasks.runtime.environment import set_prefect_defaults
from tests.helpers import (
    HTTP_TOKEN,
    HTTP_USER,
    PRIVATE_PATH,
    REPO_ROOT,
    SERVER_START_SECONDS,
    TINY_MAXLEN,
    free_port,
    prefect_home,
    write_imdb_npz,
)

# The file Prefect's test harness (prefect.testing.utilities.prefect_test_harness) keeps its database in.
HARNESS_DATABASE_NAME = "prefect-test.db"


def pytest_configure(config: pytest.Config) -> None:
    # Under `make test ARGS=...`, make hands its command-line variables to every process below it
    # (as MAKEFLAGS and as variables of their own): the tests' own make calls (make deploy, make
    # worker...) would get pytest's ARGS, or a STORAGE meant for something else.
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ARGS", "RUN", "STORAGE", "INPUT", "OUTPUT", "SOURCE", "TEXT"):
        os.environ.pop(name, None)
    # Prefect reads these when its ephemeral server starts, inside the session harness.
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-home-")
    set_prefect_defaults(Path(os.environ["PREFECT_HOME"]))
    # Runs killed on purpose are crashed after the shortest window that spares live runs, not 90 s.
    # (Imported only now: importing Prefect reads its settings, PREFECT_HOME among them.)
    from tasks.runtime.heartbeats import MIN_WINDOW_SECONDS, WINDOW_VARIABLE

    os.environ[WINDOW_VARIABLE] = str(MIN_WINDOW_SECONDS)
    # Plain functions also log outside any flow here; that is expected, not worth a warning.
    os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def imdb_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small imdb.npz in the canonical format (object arrays of raw ranks, int labels)."""
    return write_imdb_npz(tmp_path_factory.mktemp("npz") / "imdb.npz")


@pytest.fixture(scope="session")
def tiny_dataset(imdb_npz, tmp_path_factory):
    """The generated reviews split (val 25 %), padded to TINY_MAXLEN ids of 50 words and stored."""
    from tasks.data import prepare
    from tests.helpers import split_npz

    splits = split_npz(imdb_npz, 50, 0.25, seed=0)
    metadata = {
        "num_words": 50,
        "maxlen": TINY_MAXLEN,
        "val_fraction": 0.25,
        "seed": 0,
        "source": "t",
        "source_sha256": "t",
    }
    return prepare.store_reviews(splits, TINY_MAXLEN, metadata, str(tmp_path_factory.mktemp("store")))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves its folder, and under PRIVATE_PATH the same files only to Basic auth of HTTP_USER and
    HTTP_TOKEN, as a host that wants credentials does."""

    requests: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.path.startswith(PRIVATE_PATH):
            expected = base64.b64encode(f"{HTTP_USER}:{HTTP_TOKEN}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self.send_error(401, "credentials needed")
                return
            self.path = self.path.removeprefix(PRIVATE_PATH.rstrip("/"))
        super().do_GET()


@pytest.fixture(scope="session")
def http_server(imdb_npz: Path):
    """Serves the folder of `imdb_npz` on 127.0.0.1; yields (base URL, list of requested paths)."""
    handler = type("Handler", (_QuietHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(imdb_npz.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def prefect_harness(migrated_prefect_database: Path):
    """One Prefect test server for the whole session (a cold start is slow, so it starts once), on a
    copy of the migrated database: Prefect's harness puts its database in a new temporary folder,
    which is given the copy first, so the server finds every migration applied."""
    import shutil

    from prefect.testing import utilities

    def folder_with_the_migrated_database() -> str:
        folder = tempfile.mkdtemp(prefix="prefect-harness-")
        shutil.copyfile(migrated_prefect_database, Path(folder) / HARNESS_DATABASE_NAME)
        return folder

    harness = utilities.prefect_test_harness(server_startup_timeout=180)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utilities, "mkdtemp", folder_with_the_migrated_database)
        harness.__enter__()  # the harness's server starts here
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    database = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    assert "/prefect-harness-" in database and database.endswith(f"/{HARNESS_DATABASE_NAME}"), database
    try:
        yield
    finally:
        harness.__exit__(None, None, None)


@pytest.fixture(scope="session")
def migrated_prefect_database(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A Prefect database (SQLite) with every migration applied, made once for the whole test run
    and shared by both pytest-xdist processes: a server started on a copy of it skips the
    migrations, the biggest share of a cold start. Copy it with `tests.helpers.prefect_home`;
    tests/e2e/test_local_server.py keeps a cold start that migrates from nothing.

    The one `make install` made for the installed Prefect (tasks/runtime/server_homes.py) when there
    is one; else migrated here."""
    import fcntl
    import subprocess
    import sys

    import prefect

    from tasks.runtime import server_homes

    installed = server_homes.migrated_path(prefect.__version__)
    if installed.exists():
        return installed

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    database = shared / "prefect-migrated" / "prefect.db"
    with (shared / "prefect-migrated.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other process waits for this one's database
        if not database.exists():
            home = shared / "prefect-migrating"
            home.mkdir()
            migrated = subprocess.run(
                [str(Path(sys.executable).parent / "prefect"), "server", "database", "upgrade", "-y"],
                env={**os.environ, "PREFECT_HOME": str(home)},
                capture_output=True,
                text=True,
                timeout=SERVER_START_SECONDS,
            )
            assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
            home.rename(database.parent)  # complete, or not there at all
    return database


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory, migrated_prefect_database: Path):
    """A real Prefect server (SQLite) started by `make server` on a free, non-default port of
    127.0.0.1; yields (port, environment for its clients)."""
    import signal
    import subprocess
    import time

    import httpx

    port = free_port()
    home = prefect_home(tmp_path_factory.mktemp("prefect-server"), migrated_prefect_database)
    environment = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    # -o: never rebuild .venv from here; the target's own command is what runs.
    server = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "server", f"PREFECT_PORT={port}"],
        cwd=REPO_ROOT,
        env={**environment, "PREFECT_API_URL": ""},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None, (home / "server.log").read_text()[-2000:]
        time.sleep(1)
    else:
        pytest.fail("the Prefect server did not start in time")
    yield port, environment
    os.killpg(server.pid, signal.SIGTERM)  # make, the server and its children: one session
    server.wait(timeout=30)
    log.close()


@pytest.fixture
def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connection refused, at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/imdb.npz"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the session, with credentials in the environment."""
    from infra.local_s3 import start

    server = start(tmp_path_factory.mktemp("s3"), "pipeline-tests", "test-access", f"secret-{uuid.uuid4().hex}")
    saved = {name: os.environ.get(name) for name in server.environment()}
    os.environ.update(server.environment())
    yield server
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@pytest.fixture
def s3_prefix(s3_server, request) -> str:
    """A fresh s3:// storage root for one test."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40]
    return f"s3://{s3_server.bucket}/{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def dask_processes(tmp_path: Path):
    """A Dask cluster as a user starts one: `dask scheduler` and two single-threaded `dask worker`
    processes on free ports of 127.0.0.1, no dashboard, their logs in tmp_path/dask; stopped after
    the test. Yields infra.local_dask.LocalDask (its `start` takes extra worker environment)."""
    from infra import local_dask

    started: list = []

    def start(environment: dict[str, str] | None = None):
        started.append(local_dask.start(2, tmp_path / "dask", environment))
        return started[-1]

    yield start
    for cluster in started:
        cluster.stop()
