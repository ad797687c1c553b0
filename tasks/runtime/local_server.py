"""The temporary Prefect API server of a local run, started before anything else.

Without `PREFECT_API_URL`, Prefect starts the same server (uvicorn serving Prefect's API app, no
UI) the first time a flow needs it, after the flow's module and Prefect's server package are
imported; the run then waits for it, longer on a fresh `PREFECT_HOME` while its database is
created. Started here first, it comes up on another core while this process imports and prepares,
and this process never imports Prefect's server package (a heavy import). The run then uses it
through `PREFECT_API_URL`, as it would use a long-running server (BENCHMARKS.md has the timings).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import PipelineError
from tasks.runtime import server_homes
from tasks.runtime.parent_death import death_signal_setter

HEALTH_POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 10.0  # for the logs and events still on their way to the server
# Prefect has no public API to start its API-only server: `prefect server start` also serves the UI
# and runs the long-running services, and the class Prefect starts its own temporary server with
# (SubprocessASGIServer) is internal. So the server is started as that class does: uvicorn serving
# this app factory, told what Prefect tells it (API only, services of an ephemeral server; the
# PREFECT__ settings are Prefect's private ones), and one thing more: no registering of every
# installed block type in a fresh database (a sizeable share of a cold start). That catalog is for
# the UI, which this server does not serve; a block the run saves registers its own type, and `make
# server` registers them all when it starts. tests/unit/test_prefect_internals.py fails when Prefect
# changes the factory, those settings or the way it starts its own server.
SERVER_APP = "prefect.server.api.server:create_app"
SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
}
PORT_IN_USE_EXIT = 3  # uvicorn's exit status when it cannot bind its port


class LocalServer:
    """A started server process; `wait_until_ready()` blocks until its API answers."""

    def __init__(self, startup_timeout: float, home: Path | None = None) -> None:
        self.startup_timeout = startup_timeout
        self.home = home  # its PREFECT_HOME, and with it its database (None: the run's own)
        self.port, self.process = self._start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not _healthy(self.api_url):
            status = self.process.poll()
            if status == PORT_IN_USE_EXIT:  # another process took the port first: try another
                self.port, self.process = self._start()
            elif status is not None:
                raise PipelineError(f"the temporary Prefect server exited with status {status} while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise PipelineError(
                    f"the temporary Prefect server did not start within {self.startup_timeout:g} s "
                    "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
                )
            time.sleep(HEALTH_POLL_SECONDS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()

    def _start(self) -> tuple[int, subprocess.Popen]:
        import prefect  # the package only (its server package is what the child imports)

        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parent.parent),
            "--factory",
            SERVER_APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        from prefect.settings import get_current_settings

        environment = {
            **os.environ,
            **SERVER_ENVIRONMENT,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            **({"PREFECT_HOME": str(self.home)} if self.home else {}),
        }
        # A session of its own: a signal to the run's whole process group (a closing terminal, systemd,
        # `kill -- -PGID`) reaches the run, which then reports its end to this server and stops it,
        # instead of finding it already gone and retrying for a minute. The death signal still ends
        # it with the run, SIGKILL included.
        return port, subprocess.Popen(
            command, env=environment, preexec_fn=death_signal_setter(signal.SIGTERM), start_new_session=True
        )


@contextmanager
def local_server_unless_configured() -> Iterator[LocalServer | None]:
    """Starts a temporary server and points `PREFECT_API_URL` at it, unless a server is configured
    (`PREFECT_API_URL`) or Prefect's temporary server is turned off; stops it on the way out.

    The server keeps its database in a home of this run's own (tasks/runtime/server_homes.py),
    unless a database is configured. While it starts, old homes are removed.

    Call after Prefect's settings are final: the server's process gets them."""
    import prefect
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield None
        return
    prefect_home = Path(settings.home)
    home = None
    if not _database_configured():
        home = server_homes.open_run_home(prefect_home, server_homes.migrated_database(prefect.__version__))
    timeout = settings.server.ephemeral.startup_timeout_seconds
    server = LocalServer(timeout, home.path if home else None)
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ["PREFECT_UI_URL"] = ""  # this server has no UI: no links to it in the logs
    refresh_global_settings_context()
    try:
        if home:
            server_homes.prune_run_homes(prefect_home)
        yield server
    finally:
        if server.process.poll() is None:  # a server that is gone takes no more logs or events
            _drain_prefect_workers()
        server.stop()
        if home:
            home.close()
        del os.environ["PREFECT_API_URL"], os.environ["PREFECT_UI_URL"]
        refresh_global_settings_context()


def _database_configured() -> bool:
    """Whether the environment names the server's database: then every server shares that one."""
    from prefect.settings import get_current_settings

    names = get_current_settings().to_environment_variables(exclude_unset=True)
    return any(name.endswith("DATABASE_CONNECTION_URL") for name in names)


def _drain_prefect_workers() -> None:
    """Sends the logs and events Prefect still holds before their server goes away; otherwise its
    workers retry the closed port for a minute before the process may exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=DRAIN_TIMEOUT_SECONDS)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
