"""`make bench ARGS="--section run"`: the whole `make run`, first and fully cached, against the code
of an earlier commit, side by side in one bench run.

Each code version runs `python -m flows.imdb_pipeline` in a process of its own, from its own
source tree (the earlier commit is extracted with `git archive`), with the same Python and
packages, its own fresh Prefect home, storage, scratch and download cache: the first run is what
a clean clone sees, cold Prefect database included; the second reuses everything cached. The
versions take turns (earlier first, ours first, earlier cached, ours cached) so a slow spell of
the machine hits both. Wall time is measured from outside; the split of ours comes from the time
line the pipeline prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tasks.reporting.tables import markdown_table, parse_time_split
from tasks.storage.layout import METRICS_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
# The code before `make run`'s time was worked on: the reference every later run is compared with.
BASELINE_COMMIT = "ea0866f"
FIRST_RUN_GOAL = 0.5  # ours at most half the earlier code's first run
CACHED_RUN_GOAL = 0.25  # a fully cached rerun at most a quarter of ours' first run
RUN_TIMEOUT_SECONDS = 3600


def extract_commit(commit: str, destination: Path) -> Path:
    """The source tree of `commit` of this repository, written under `destination`."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"").decode(errors="replace").strip() or str(error)
        raise ValueError(f"cannot extract commit {commit} from {REPO_ROOT} ({detail})") from None
    destination.mkdir(parents=True)
    with tempfile.TemporaryFile() as buffer:
        buffer.write(archive)
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as tar:
            tar.extractall(destination, filter="data")
    return destination


def pipeline_command(code: Path, place: Path, run_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a `python -m flows.imdb_pipeline` from `code` whose
    state (Prefect home, storage, scratch, download cache) is kept under `place`, created here."""
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")},
        "PREFECT_HOME": str(place / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(code),
    }
    place.mkdir(parents=True, exist_ok=True)
    locations = ["--storage", str(place / "store"), "--work-dir", str(place / "work")]
    locations += ["--cache-dir", str(place / "cache")]
    return [sys.executable, "-m", "flows.imdb_pipeline", *locations, *run_args], environment


def run_pipeline(code: Path, place: Path, run_args: list[str]) -> dict:
    """One `python -m flows.imdb_pipeline` from `code`, its state kept under `place`: wall seconds,
    the printed time split (when the code prints one this parser reads) and the test accuracies."""
    command, environment = pipeline_command(code, place, run_args)
    started = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=code,
        env=environment,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the pipeline in {code} failed:\n{completed.stderr[-3000:]}")
    lines = completed.stdout.splitlines()
    run_dir = Path(next(line for line in reversed(lines) if line.startswith("run: ")).removeprefix("run: "))
    return {
        "wall_seconds": round(wall, 2),
        "split": time_split(lines),
        "test_accuracy": {
            folder.name: json.loads((folder / METRICS_NAME).read_text())["accuracy"]
            for folder in sorted(run_dir.iterdir())
            if (folder / METRICS_NAME).exists() and folder.is_dir()
        },
    }


def time_split(lines: list[str]) -> dict[str, float] | None:
    """The seconds of the run's `time: ...` line among its output lines; None without one."""
    line = next((line for line in lines if line.startswith("time: ")), None)
    try:
        return None if line is None else parse_time_split(line)
    except ValueError:  # an earlier commit's format
        return None


def bench_run(out: Path, baseline_commit: str, run_args: list[str]) -> dict:
    """First and cached runs of `baseline_commit` and of this tree, taking turns; writes run.json."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        scratch = Path(folder)
        codes = {baseline_commit: extract_commit(baseline_commit, scratch / "baseline-code"), "ours": REPO_ROOT}
        results: dict[str, dict] = {name: {} for name in codes}
        for attempt in ("first", "cached"):
            for name, code in codes.items():
                print(f"measuring {name}: {attempt} run ...", file=sys.stderr, flush=True)
                results[name][attempt] = run_pipeline(code, scratch / name, run_args)
    summary = {
        "baseline_commit": baseline_commit,
        "run_args": run_args,
        "results": results,
        "goals": run_goals(results[baseline_commit], results["ours"]),
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_goals(baseline: dict, ours: dict) -> list[dict]:
    """The three goals: ours' first run against the earlier one, ours' cached run against ours'
    first, and the same test accuracies."""
    first_ratio = ours["first"]["wall_seconds"] / baseline["first"]["wall_seconds"]
    cached_ratio = ours["cached"]["wall_seconds"] / ours["first"]["wall_seconds"]
    same = ours["first"]["test_accuracy"] == baseline["first"]["test_accuracy"]
    return [
        {"goal": "first run", "target": f"<= {FIRST_RUN_GOAL} x earlier", "measured": first_ratio,
         "met": first_ratio <= FIRST_RUN_GOAL},
        {"goal": "cached rerun", "target": f"<= {CACHED_RUN_GOAL} x our first", "measured": cached_ratio,
         "met": cached_ratio <= CACHED_RUN_GOAL},
        {"goal": "test accuracies", "target": "same as earlier", "measured": float(same), "met": same},
    ]  # fmt: skip


def run_table(summary: dict) -> str:
    """The runs side by side, the goals, and ours' time split, as markdown."""
    rows = []
    for name, runs in summary["results"].items():
        accuracy = " / ".join(f"{variant} {value:.4f}" for variant, value in runs["first"]["test_accuracy"].items())
        first, cached = runs["first"]["wall_seconds"], runs["cached"]["wall_seconds"]
        label = "this tree" if name == "ours" else f"commit {name}"
        rows.append((label, f"{first:.1f}", f"{cached:.1f}", f"{cached / first:.3f}", accuracy))
    columns = ("code", "first run s", "cached rerun s", "cached / first", "test accuracy")
    goals = [
        (goal["goal"], goal["target"], "same" if goal["goal"] == "test accuracies" and goal["met"] else
         "differ" if goal["goal"] == "test accuracies" else f"{goal['measured']:.3f} x",
         "met" if goal["met"] else "**not met**")
        for goal in summary["goals"]
    ]  # fmt: skip
    parts = [markdown_table(rows, columns), markdown_table(goals, ("goal", "target", "measured", ""))]
    for attempt in ("first", "cached"):
        split = summary["results"]["ours"][attempt]["split"]
        if split:
            cells = [(name, f"{seconds:.1f}") for name, seconds in split.items()]
            parts.append(f"Our {attempt} run, seconds:\n\n" + markdown_table(cells, ("part", "s")))
    return "\n\n".join(parts)
