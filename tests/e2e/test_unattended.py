"""Unattended runs end cleanly: each test causes the fault for real on a pipeline in its own
process (SIGTERM or SIGINT from outside, a training past its timeout, an absurd size) and checks
the outcome: a prompt stop, one `error:` line, the flow run not left Running, no scratch, no child
process, nothing published, and a rerun that reuses the finished stages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.imdb_pipeline import main
from tasks.registry import publishing
from tests.helpers import (
    REPO_ROOT,
    latest_flow_run_log,
    run_error_line,
    small_run_options,
    stage_states,
    wait_for_text,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

DATA_STAGES = ("download", "split", "pad-and-store")
STOP_SECONDS = 15  # from the signal to the exit: seconds, not the rest of the training
# Publishing a small run takes milliseconds; this wrapper makes each file take half a second so
# that a signal lands inside the publish stage. Everything else is the real command line.
SLOW_PUBLISH = """
import sys, time
from tasks.storage import fs
real = fs.write_verified
def slow(uri, data, **options):
    time.sleep(0.5)
    return real(uri, data, **options)
fs.write_verified = slow
from flows.imdb_pipeline import main
sys.exit(main(sys.argv[1:]))
"""


def harness_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def start_pipeline(options: list[str], log_path: Path, *, code: str | None = None) -> subprocess.Popen:
    """The command line in its own process group, reporting to the session's Prefect server."""
    command = ["-c", code, *options] if code else ["-m", "flows.imdb_pipeline", *options]
    env = {**os.environ, "PREFECT_API_URL": harness_api_url(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, *command],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for_epochs(process: subprocess.Popen, work_dir: Path, epochs: int, timeout: float = 300) -> None:
    """Until every training in a child process has reported `epochs` epochs (its progress file)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [len(path.read_text().splitlines()) for path in work_dir.glob("training/*/progress.jsonl")]
        if len(counts) == 2 and min(counts) >= epochs:
            return
        assert process.poll() is None and time.monotonic() < deadline, f"no {epochs} epochs: {counts}"
        time.sleep(0.1)


def processes_where(field: int, value: int) -> set[int]:
    """Processes whose /proc stat `field` (after the name: 1 parent, 3 process group) is `value`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[field]) == value:
                found.add(int(entry.name))
    return found


def children_of(pid: int) -> set[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    return processes_where(1, pid)


def alive(pids: set[int]) -> set[int]:
    def running(pid: int) -> bool:
        try:
            return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    return {pid for pid in pids if running(pid)}


def training_children() -> set[int]:
    """This process's live children that run a training (`python -m tasks.training.worker`)."""
    return {pid for pid in alive(children_of(os.getpid())) if b"tasks.training.worker" in _command_line(pid)}


def _command_line(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:  # it ended meanwhile
        return b""


def signal_and_wait(process: subprocess.Popen, number: int, *, group: bool = False) -> float:
    """Sends `number` to the pipeline (or its whole process group, as a terminal's Ctrl+C does);
    returns the seconds until it exited."""
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, number)
    else:
        process.send_signal(number)
    try:
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return time.monotonic() - sent


def latest_flow_run_state() -> str:
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0].state.name


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def assert_stopped_cleanly(process: subprocess.Popen, log_path: Path, tmp_path: Path, number: int) -> None:
    log = log_path.read_text()
    assert process.returncode == 128 + number, log[-3000:]
    assert log.strip().splitlines()[-1] == (
        f"error: interrupted by {signal.Signals(number).name}: the run stopped and nothing was published; "
        "a rerun reuses every stage that had finished"
    )
    assert "Traceback" not in log, log[-3000:]
    assert latest_flow_run_state() == "Crashed"
    assert [run for run in publishing.list_runs(str(tmp_path / "store")) if run["complete"]] == []
    assert not (tmp_path / "store" / "champion.json").exists()
    assert files_under(tmp_path / "work") == []  # the run's scratch and every training's are gone


def test_sigterm_while_seeds_train_in_child_processes_stops_them_all_and_a_rerun_reuses_the_data(
    imdb_npz, tmp_path, capsys
):
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--seeds", "2", "--max-epochs", "200", "--patience", "200"
    )
    log_path = tmp_path / "run.log"
    process = start_pipeline(options, log_path)
    wait_for_epochs(process, tmp_path / "work", 2)
    children = alive(children_of(process.pid))
    assert len(children) >= 2  # the two trainings (and multiprocessing's resource tracker)
    stopped_after = signal_and_wait(process, signal.SIGTERM)  # the process only, as a worker's cancel does
    assert stopped_after < STOP_SECONDS, log_path.read_text()[-3000:]
    assert_stopped_cleanly(process, log_path, tmp_path, signal.SIGTERM)
    assert wait_until(lambda: not alive(children), timeout=1), alive(children)  # no orphan keeps training

    rerun = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--seeds", "2")
    assert main(rerun) == 0
    assert stage_states(DATA_STAGES) == dict.fromkeys(DATA_STAGES, "Cached")
    with capsys.disabled():
        print(f"SIGTERM with --seeds 2: the run exited {stopped_after:.1f} s after the signal")


def test_ctrl_c_while_a_variant_trains_stops_the_run_and_its_training_process(imdb_npz, tmp_path):
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "300", "--patience", "300"
    )
    log_path = tmp_path / "run.log"
    process = start_pipeline(options, log_path)
    wait_for_text(process, log_path, "embedding epoch 2/300")
    stopped_after = signal_and_wait(process, signal.SIGINT, group=True)
    assert stopped_after < STOP_SECONDS, log_path.read_text()[-3000:]
    assert_stopped_cleanly(process, log_path, tmp_path, signal.SIGINT)
    assert "embedding epoch 300/300" not in log_path.read_text()
    print(f"SIGINT (Ctrl+C) during training: the run exited {stopped_after:.1f} s after the signal")


def test_sigterm_while_publishing_leaves_no_manifest_and_a_rerun_reuses_the_trained_variant(imdb_npz, tmp_path, capsys):
    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding")
    log_path = tmp_path / "run.log"
    process = start_pipeline(options, log_path, code=SLOW_PUBLISH)
    wait_for_text(process, log_path, "published embedding/")
    stopped_after = signal_and_wait(process, signal.SIGTERM)
    assert stopped_after < STOP_SECONDS, log_path.read_text()[-3000:]
    assert_stopped_cleanly(process, log_path, tmp_path, signal.SIGTERM)
    interrupted = publishing.list_runs(str(tmp_path / "store"))
    assert len(interrupted) == 1 and not interrupted[0]["complete"]  # the half-published prefix has no manifest

    assert main(options) == 0
    assert stage_states((*DATA_STAGES, "train-embedding")) == dict.fromkeys((*DATA_STAGES, "train-embedding"), "Cached")
    with capsys.disabled():
        print(f"SIGTERM while publishing: the run exited {stopped_after:.1f} s after the signal")


def training_processes() -> set[int]:
    """Live training processes (`python -m tasks.training.worker`) started by this test's process."""

    def trains(pid: int) -> bool:
        try:
            return b"tasks.training.worker" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False

    return {pid for pid in alive(children_of(os.getpid())) if trains(pid)}


def test_trainings_take_the_processes_started_warm_with_the_run_and_a_run_that_skips_starts_none(
    imdb_npz, tmp_path, capsys
):
    options = small_run_options(str(imdb_npz), tmp_path, "--skip-unchanged")
    assert main(options) == 0
    log = latest_flow_run_log()
    assert "2 training process(es) started ahead of the train stage" in log
    assert log.count("a warm process: started with the run, it loaded TensorFlow alongside the data stages") == 2
    assert training_processes() == set()
    capsys.readouterr()

    assert main(options) == 0  # the same run again: it skips as unchanged, before any process starts
    assert capsys.readouterr().out.startswith("unchanged: ")
    assert "started ahead of the train stage" not in latest_flow_run_log()
    assert wait_until(lambda: training_processes() == set(), timeout=5), training_processes()


@pytest.mark.parametrize("seeds", ["1", "2"])
def test_a_training_past_its_timeout_is_stopped_with_one_line(seeds, imdb_npz, tmp_path, capsys):
    options = small_run_options(
        str(imdb_npz),
        tmp_path,
        "--variants",
        "embedding",
        "--seeds",
        seeds,
        "--max-epochs",
        "100000",
        "--patience",
        "100000",
        "--training-timeout",
        "3",
    )
    started = time.monotonic()
    assert main(options) == 1
    took = time.monotonic() - started
    line = run_error_line(capsys.readouterr())
    assert line.startswith("error: training embedding seed ") and "took longer than --training-timeout 3 s" in line
    # The timed-out children were ended, not left training (a few seconds: Prefect's timer ends the
    # task first, then its training process is terminated).
    assert wait_until(lambda: not training_children(), timeout=STOP_SECONDS), training_children()
    assert [run for run in publishing.list_runs(str(tmp_path / "store")) if run["complete"]] == []
    assert list((tmp_path / "work" / "training").iterdir()) == []
    print(f"--training-timeout 3 with --seeds {seeds}: the run failed after {took:.1f} s")


def test_an_absurd_size_is_refused_within_seconds_in_a_fresh_process(tmp_path):
    started = time.monotonic()
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.imdb_pipeline",
            "--storage",
            str(tmp_path / "store"),
            "--num-words",
            "2000000000",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=120,
    )
    took = time.monotonic() - started
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines()[-1].startswith("error: --num-words: 2000000000 would need about ")
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "store").exists()
    print(f"--num-words 2000000000 refused after {took:.1f} s (imports included)")
