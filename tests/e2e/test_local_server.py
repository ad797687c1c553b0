"""The temporary Prefect server of a command-line run without PREFECT_API_URL: it serves the run
from a database in a home of the run's own (two runs at once never share one), and never outlives
it, whether the run ends, fails, or is killed outright; the run after one killed outright marks
its flow run Crashed."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tasks.runtime import server_homes
from tests.helpers import REPO_ROOT, prefect_home, small_run_options, wait_for_text


def processes_with_home(home: Path) -> list[int]:
    """Live processes whose PREFECT_HOME is `home` (the run, its trainings) or a run's home in it
    (its server)."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
            if any(value == marker or value.startswith(marker + b"/runs/") for value in variables) and (
                b"Z" not in _state(entry)
            ):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def _state(entry: Path) -> bytes:
    return (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]


def wait_until_gone(home: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_with_home(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def cli_environment(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_homes(home: Path) -> list[Path]:
    return sorted(path for path in (home / "runs").iterdir() if path.is_dir())


def flow_run_states(run_home: Path) -> list[str]:
    """The state of every flow run in a run home's database, read as a file: its server is gone."""
    with contextlib.closing(sqlite3.connect(run_home / "prefect.db")) as database:
        return [state for (state,) in database.execute("SELECT state_type FROM flow_run")]


def start_run(options: list[str], home: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.imdb_pipeline", *options],
            cwd=REPO_ROOT,
            env=cli_environment(home),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def test_a_run_without_a_configured_server_completes_on_its_own_server_which_ends_with_it(imdb_npz, tmp_path):
    home = tmp_path / "prefect-home"  # nothing in it yet: the run's server begins on the migrated copy
    completed = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", *small_run_options(str(imdb_npz), tmp_path)],
        cwd=REPO_ROOT,
        env=cli_environment(home),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.splitlines()[-1].startswith("run: ")
    assert "Error logging to API" not in completed.stderr  # its logs reached the server before it stopped
    [run_home] = run_homes(home)  # the server kept its state in a home of the run's own
    assert flow_run_states(run_home) == ["COMPLETED"]
    assert (run_home / "ended").read_text() == "ended\n"
    assert wait_until_gone(home, 10) == []


def test_two_runs_at_once_without_a_server_each_complete_on_a_database_of_their_own(imdb_npz, tmp_path):
    home = tmp_path / "prefect-home"  # one PREFECT_HOME, as two `make run` in one checkout share
    runs = [
        start_run(small_run_options(str(imdb_npz), tmp_path / name), home, tmp_path / f"{name}.log")
        for name in ("first", "second")
    ]
    try:
        for run in runs:
            run.wait(600)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for run, name in zip(runs, ("first", "second"), strict=True):
        assert run.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    homes = run_homes(home)
    assert len(homes) == 2
    assert [flow_run_states(run_home) for run_home in homes] == [["COMPLETED"], ["COMPLETED"]]


def test_a_migrated_database_is_made_once_per_prefect_version(tmp_path):
    made = server_homes.migrated_database("0.0-test", tmp_path)
    assert made == tmp_path / "prefect-0.0-test.db"
    with contextlib.closing(sqlite3.connect(made)) as database:
        assert database.execute("SELECT version_num FROM alembic_version").fetchall() != []  # migrated
        assert database.execute("SELECT count(*) FROM flow_run").fetchone() == (0,)
    made_at = made.stat().st_mtime_ns
    assert server_homes.migrated_database("0.0-test", tmp_path) == made
    assert made.stat().st_mtime_ns == made_at  # found, not made again
    assert [path.name for path in tmp_path.iterdir()] == [made.name]  # no half-made leftovers


def test_a_killed_run_takes_its_server_and_trainings_with_it(imdb_npz, tmp_path, migrated_prefect_database):
    home, log = prefect_home(tmp_path, migrated_prefect_database), tmp_path / "run.log"
    options = small_run_options(str(imdb_npz), tmp_path, "--max-epochs", "400", "--patience", "400")
    run = start_run(options, home, log)
    try:
        wait_for_text(run, log, "epoch 2/400", 300)  # the server is up and both trainings are running
        assert len(processes_with_home(home)) >= 4  # the run, its server, two trainings
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        if run.poll() is None:
            run.kill()
    assert wait_until_gone(home, 15) == []


def kill_a_run_outright(imdb_npz, tmp_path: Path, home: Path) -> Path:
    """Starts a run, SIGKILLs it once its flow run is Running (as the out-of-memory killer ends a
    run: no word, no cleanup); returns the home its server used, which still says Running."""
    log = tmp_path / "killed.log"
    run = start_run(small_run_options(str(imdb_npz), tmp_path / "killed"), home, log)
    try:
        wait_for_text(run, log, "stage 1/11", 300)
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        if run.poll() is None:
            run.kill()
    assert wait_until_gone(home, 15) == []
    [killed] = run_homes(home)
    assert flow_run_states(killed) == ["RUNNING"]
    return killed


def test_the_run_after_one_killed_outright_marks_its_flow_run_crashed(imdb_npz, tmp_path):
    home = tmp_path / "prefect-home"
    killed = kill_a_run_outright(imdb_npz, tmp_path, home)

    following = subprocess.run(
        [sys.executable, "-m", "flows.imdb_pipeline", *small_run_options(str(imdb_npz), tmp_path / "next")],
        cwd=REPO_ROOT,
        env=cli_environment(home),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert following.returncode == 0, following.stderr[-3000:]
    notes = [line for line in following.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1, following.stderr[-3000:]
    assert "was killed outright: marked Crashed" in notes[0] and notes[0].endswith(f"its records: {killed}")
    assert flow_run_states(killed) == ["CRASHED"]
    assert (killed / "ended").read_text() == "crashed\n"
    assert [flow_run_states(run_home) for run_home in run_homes(home)] == [["CRASHED"], ["COMPLETED"]]


def test_make_runs_marks_a_run_killed_outright_crashed(imdb_npz, tmp_path):
    home = tmp_path / "prefect-home"
    killed = kill_a_run_outright(imdb_npz, tmp_path, home)

    listed = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "runs", f"STORAGE={tmp_path / 'killed' / 'store'}"],
        cwd=REPO_ROOT,
        env=cli_environment(home),
        capture_output=True,
        text=True,
        timeout=400,
    )
    notes = [line for line in listed.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "was killed outright: marked Crashed" in notes[0], listed.stderr[-3000:]
    assert flow_run_states(killed) == ["CRASHED"]
