"""Where the temporary Prefect server of a command-line run keeps its database: a home folder of
its own per run under `$PREFECT_HOME/runs/`, begun from a copy of a database migrated once per
installed Prefect version.

Two runs at once then never share one SQLite database (two servers migrating and writing one
file block each other), and no run pays for Prefect's migrations, most of a cold start: the
migrated database is made by `make install`, or by the first run that finds none, and kept in
the virtual environment beside the Prefect it was migrated by, so an upgrade makes a new one.

A run holds an exclusive lock on its home for as long as it lives and writes `ended` when it
ends, whatever the ending (a failure, SIGTERM, SIGINT). A home that is unlocked but not ended
belongs to a run that was killed without a word (SIGKILL, the out-of-memory killer): its flow run
still reads Running in that database (tasks/runtime/crashed_runs.py marks it Crashed). The newest
KEEP_ENDED_HOMES ended homes are kept, so the last runs can still be looked at in Prefect's UI
(`PREFECT_HOME=.prefect/runs/<folder> make server`); older ones are removed when a run starts.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

DATABASE_NAME = "prefect.db"  # Prefect's default file name under its home
# Beside the interpreter and Prefect itself: `make clean` removes it with them, a new virtual
# environment starts without one.
MIGRATED_FOLDER = Path(sys.prefix) / "share" / "imdb-rnn-pipeline"
MIGRATION_TIMEOUT_SECONDS = 300  # measured 7-14 s on a busy 2-core machine
RUNS_FOLDER = "runs"
LOCK_NAME = "lock"
ENDED_NAME = "ended"
# Enough to look back at the last few runs in the UI; each home is about 1-10 MB.
KEEP_ENDED_HOMES = 10


def migrated_path(prefect_version: str, folder: Path = MIGRATED_FOLDER) -> Path:
    """Where the migrated database of `prefect_version` is kept (made by `migrated_database`)."""
    return folder / f"prefect-{prefect_version}.db"


def migrated_database(prefect_version: str, folder: Path = MIGRATED_FOLDER) -> Path | None:
    """A Prefect database with every migration of `prefect_version` applied, made now if missing;
    None when it cannot be made there (a read-only environment): the server then migrates its own.

    Made under a temporary name and renamed into place, so a run never copies half of one; two
    runs making it at once each rename a complete one."""
    database = migrated_path(prefect_version, folder)
    if database.exists():
        return database
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".migrating-") as scratch:
            scratch_database = Path(scratch) / DATABASE_NAME
            _migrate(scratch_database)
            os.replace(scratch_database, database)
    except (OSError, subprocess.SubprocessError):
        return None
    return database


def _migrate(database: Path) -> None:
    """Prefect's own `prefect server database upgrade` on a new SQLite file at `database`."""
    environment = {
        **os.environ,
        "PREFECT_HOME": str(database.parent),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
    }
    subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=MIGRATION_TIMEOUT_SECONDS,
    )


@dataclass
class RunHome:
    """A run's own Prefect home, locked while the run lives; `close()` marks it ended."""

    path: Path
    _lock: IO[str] | None = field(default=None, repr=False)

    def close(self, how: str = "ended") -> None:
        (self.path / ENDED_NAME).write_text(how + "\n")
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None


def open_run_home(prefect_home: Path, database: Path | None) -> RunHome:
    """A new home under `prefect_home`/runs, locked, with a copy of `database` (when given).

    Made under a hidden name and renamed once locked: a look at the homes never takes a home
    being made for one whose run died."""
    runs = prefect_home / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    making = Path(tempfile.mkdtemp(dir=runs, prefix=".new-"))
    lock = (making / LOCK_NAME).open("w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if database is not None:
        shutil.copyfile(database, making / DATABASE_NAME)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = runs / f"{stamp}-{os.getpid()}-{making.name.removeprefix('.new-')}"
    making.rename(path)
    return RunHome(path, lock)


def is_live(home: Path) -> bool:
    """Whether a run still holds `home`."""
    try:
        with (home / LOCK_NAME).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file: not a run's home
        return False
    return False


def run_homes(prefect_home: Path) -> list[Path]:
    """Every run's home under `prefect_home`, oldest first (homes being made are left out)."""
    runs = prefect_home / RUNS_FOLDER
    if not runs.is_dir():
        return []
    return sorted(path for path in runs.iterdir() if path.is_dir() and not path.name.startswith("."))


def dead_homes(prefect_home: Path) -> list[Path]:
    """Homes of runs that died without ending: unlocked, and no `ended` written."""
    return [home for home in run_homes(prefect_home) if not (home / ENDED_NAME).exists() and not is_live(home)]


def prune_run_homes(prefect_home: Path, keep: int = KEEP_ENDED_HOMES) -> list[Path]:
    """Removes the ended homes but the newest `keep`; returns those removed. Homes of live runs and
    of dead runs not yet marked stay."""
    ended = [home for home in run_homes(prefect_home) if (home / ENDED_NAME).exists() and not is_live(home)]
    removed = ended[: max(0, len(ended) - keep)]
    for home in removed:
        shutil.rmtree(home, ignore_errors=True)
    return removed


if __name__ == "__main__":
    import prefect

    made = migrated_database(prefect.__version__)
    print(
        f"migrated Prefect database: {made}" if made else f"cannot write {MIGRATED_FOLDER}: each run migrates its own"
    )
