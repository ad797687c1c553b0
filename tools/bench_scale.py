"""`make bench ARGS="--section scale"`: the pipeline's data stages and one training epoch on growing
numbers of realistic reviews, their time and peak memory, and how both grow.

For each size (100k, 1M and 3M reviews unless `--sizes` says otherwise) `tools/scale_data.py` writes
that many reviews resampled from the offline corpus's IMDB sentences, as Parquet files under a
scratch folder, and `python -m flows.imdb_pipeline --source <folder>` trains the embedding variant
for one epoch on them in a fresh process with a fresh Prefect home and storage (`RUN_OPTIONS`).

- Stage times come from the run's own `time:` line: the flow's stage clock (`StageLog`), which marks
  each stage as the flow enters it. The data stages are every stage before `train`.
- Memory is sampled from /proc every `SAMPLE_SECONDS`: the summed RSS of the run's whole process tree
  (the run, Prefect's temporary server, the training process), which the goals judge; the summed PSS
  beside it (pages the processes share counted once); and the largest single process's RSS.
- A run whose tree passes `MEMORY_CEILING` of the machine's memory is stopped (it would take the
  machine, and the other users on it, down with it) and reported as over; larger sizes are then
  skipped, since they would only fail later.

It prints a table per size, then the growth (the log-log slope of data-stage time against reviews,
smallest to largest size; the peak's ratio from 1M to the largest) against the scaling goals.
Written to `scale.json`; the numbers go into the history.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.reporting.tables import markdown_table
from tools import bench_run, scale_data

DEFAULT_SIZES = (100_000, 1_000_000, 3_000_000)
SMALLEST_SIZE = 200  # fewer reviews leave a val split below RUN_OPTIONS' --min-split-rows
# The pipeline's options on top of the data: one variant, one epoch and nothing that would add work
# beyond it (no restart, no guard against the baseline, no promotion), so that the data stages and
# one epoch are what the run does. A split of a tiny size may hold fewer than the default 50 reviews.
RUN_OPTIONS = (
    "--variants", "embedding", "--max-epochs", "1", "--restarts", "0",
    "--baseline-margin", "1", "--promote", "never", "--min-split-rows", "10",
)  # fmt: skip
TRAIN_STAGE = "train"  # the data stages are the ones before it in the run's time line
OUTSIDE_STAGES = ("start-up", "finish")  # the time line's parts that are not stages of the flow
SAMPLE_SECONDS = 0.2  # /proc sampling period: short enough to catch a stage's peak of a second or two
MEMORY_CEILING = 0.75  # of the machine's memory: a run's tree above it is stopped
STOP_GRACE_SECONDS = 60  # after SIGTERM, before SIGKILL
# Only a hung run reaches it: today's split stage (about 5,000 reviews/s) takes 10 minutes at 3M reviews.
RUN_TIMEOUT_SECONDS = 4 * 3600
GB = 1e9  # the goals are in decimal gigabytes

# The scaling goals, on a 2-core, 24 GiB machine.
REFERENCE_ROWS = 1_000_000  # the peak is judged at 1M reviews, and its growth from there
LARGEST_MIN_ROWS = 3_000_000  # the largest size must be at least this
PEAK_GOAL_GB = 2.5
PEAK_GROWTH_GOAL = 1.2
EXPONENT_GOAL = 1.1
SECONDS_PER_MILLION_GOAL = 60.0


@dataclass
class TreeMemory:
    """Peaks of a process tree's resident memory, sampled from /proc on a thread until `stop()`."""

    root: int
    peak_total: int = 0
    peak_proportional: int = 0  # the tree's summed PSS: pages shared by its processes counted once
    peak_single: int = 0
    peak_single_command: str = ""
    ceiling: float = math.inf
    over_ceiling: bool = False

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            sizes = {pid: resident_bytes(pid) for pid in process_tree(self.root)}
            total = sum(sizes.values())
            self.peak_total = max(self.peak_total, total)
            self.peak_proportional = max(self.peak_proportional, sum(map(proportional_bytes, sizes)))
            largest = max(sizes, key=sizes.__getitem__, default=None)
            if largest is not None and sizes[largest] > self.peak_single:
                self.peak_single, self.peak_single_command = sizes[largest], _command(largest)
            if total > self.ceiling and not self.over_ceiling:
                self.over_ceiling = True
                _stop_group(self.root)


def process_tree(root: int) -> list[int]:
    """`root` and every process descending from it, from /proc (an empty list once it has ended)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            parent = _parent(entry.name)
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root] if Path(f"/proc/{root}").exists() else []
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _parent(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # ended meanwhile
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])  # after the command, which may hold spaces


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int) -> int:
    """A process's resident set size (0 once it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def proportional_bytes(pid: int) -> int:
    """A process's proportional set size: each page it shares divided among its sharers (0 once ended)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        return next(int(line.split()[1]) for line in lines if line.startswith("Pss:")) * 1024
    except (OSError, StopIteration, IndexError, ValueError):
        return 0


def _command(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(word.decode(errors="replace") for word in words if word)[:80]


def _stop_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # ended meanwhile
        os.killpg(pid, signal.SIGTERM)  # the run was started as the leader of its own group


def machine_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE


def measure_size(rows: int, scratch: Path, seed: int, run_args: list[str]) -> dict:
    """Writes `rows` reviews, runs the pipeline on them and returns what was measured; the reviews
    and the run's state are removed afterwards."""
    place = scratch / f"rows-{rows}"
    started = time.perf_counter()
    scale_data.write_reviews(place / "reviews", rows, seed)
    generated = time.perf_counter() - started
    command, environment = bench_run.pipeline_command(
        bench_run.REPO_ROOT, place / "run", ["--source", str(place / "reviews"), *RUN_OPTIONS, *run_args]
    )
    log_path = place / "run.log"
    with log_path.open("w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=bench_run.REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=log, text=True,
            start_new_session=True,
        )  # fmt: skip
        memory = TreeMemory(process.pid, ceiling=MEMORY_CEILING * machine_memory())
        output = _wait(process)
        wall = time.perf_counter() - started
        memory.stop()
    result = {
        "rows": rows,
        "generate_seconds": round(generated, 2),
        "generated_per_second": round(rows / generated),
        "wall_seconds": round(wall, 2),
        "peak_rss_bytes": memory.peak_total,
        "peak_pss_bytes": memory.peak_proportional,
        "largest_process_bytes": memory.peak_single,
        "largest_process": memory.peak_single_command,
        "exit_status": process.returncode,
    }
    split = bench_run.time_split(output.splitlines())
    if process.returncode != 0 or split is None:
        reason = "over the memory ceiling" if memory.over_ceiling else f"exit status {process.returncode}"
        result["failed"] = f"{reason}: {_error_line(log_path)}"
    else:
        result.update(stage_times(split))
    shutil.rmtree(place)
    return result


def _wait(process: subprocess.Popen) -> str:
    """The run's standard output once it has ended; SIGTERM then SIGKILL to its group after the timeout."""
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _stop_group(process.pid)
        try:
            output, _ = process.communicate(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    return output


def _error_line(path: Path) -> str:
    """The run's `error: ...` line from its log, else its last line."""
    lines = path.read_text(errors="replace").strip().splitlines() or ["(no output)"]
    return next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1])


def stage_times(split: dict[str, float]) -> dict:
    """The time line's parts: every stage before `train` (the data stages), `train`, and the rest."""
    names = [name for name in split if name not in ("wall", *OUTSIDE_STAGES)]
    if TRAIN_STAGE not in names:
        raise ValueError(f"the run's time line has no {TRAIN_STAGE!r} stage: {', '.join(split)}")
    data = {name: split[name] for name in names[: names.index(TRAIN_STAGE)]}
    rest = split["wall"] - sum(data.values()) - split[TRAIN_STAGE]
    return {
        "stage_seconds": data,
        "data_seconds": round(sum(data.values()), 2),
        "train_seconds": split[TRAIN_STAGE],
        "other_seconds": round(rest, 2),
        "run_wall_seconds": split["wall"],
    }


def bench_scale(out: Path, sizes: list[int], seed: int, run_args: list[str]) -> dict:
    """Every size in turn (none after one that failed); writes scale.json, returns its summary."""
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        for rows in sizes:
            failed = next((result["rows"] for result in results if "failed" in result), None)
            if failed is not None:
                results.append({"rows": rows, "failed": f"skipped: {failed:,} reviews failed"})
                continue
            print(f"measuring {rows:,} reviews ...", file=sys.stderr, flush=True)
            results.append(measure_size(rows, Path(folder), seed, run_args))
    summary = {"sizes": sizes, "seed": seed, "run_args": run_args, "results": results}
    summary.update(growth(results))
    summary["goals"] = scale_goals(summary)
    (out / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def growth(results: list[dict]) -> dict:
    """How the runs grow from the smallest to the largest size: the log-log slope of data-stage time
    against reviews, and the peak's ratio from 1M reviews (else the smallest size); None for both
    unless the smallest and the largest size both completed."""
    by_rows = sorted(results, key=lambda result: result["rows"])
    first, last = by_rows[0], by_rows[-1]
    if first["rows"] == last["rows"] or not all("data_seconds" in result for result in (first, last)):
        return {"exponent": None, "peak_growth": None, "peak_growth_from": None}
    exponent = math.log(last["data_seconds"] / first["data_seconds"]) / math.log(last["rows"] / first["rows"])
    reference = next((result for result in by_rows if result["rows"] == REFERENCE_ROWS), first)
    peak_growth = last["peak_rss_bytes"] / reference["peak_rss_bytes"] if "data_seconds" in reference else None
    return {
        "exponent": round(exponent, 3),
        "peak_growth": None if peak_growth is None else round(peak_growth, 3),
        "peak_growth_from": reference["rows"],
    }


def scale_goals(summary: dict) -> list[dict]:
    """The scaling goals, each `met`, `not met` (a size it needs failed counts as not met) or `not
    judged`: the peak at 1M needs a 1M size; the growth and the time per million need 1M and a
    largest size of at least 3M, as the issue asks."""
    results = {result["rows"]: result for result in summary["results"]}
    largest = results[max(results)]
    enough = REFERENCE_ROWS in results and largest["rows"] >= LARGEST_MIN_ROWS
    at_million = results.get(REFERENCE_ROWS, {})
    per_million = largest["data_seconds"] / largest["rows"] * 1e6 if "data_seconds" in largest else None
    peak = at_million.get("peak_rss_bytes")
    growth_from = summary["peak_growth_from"]
    goals = [
        ("peak RSS at 1M reviews", f"<= {PEAK_GOAL_GB} GB", None if peak is None else peak / GB, PEAK_GOAL_GB,
         REFERENCE_ROWS in results),
        (f"peak growth, {'-' if growth_from is None else f'{growth_from:,}'} -> largest", f"<= {PEAK_GROWTH_GOAL} x",
         summary["peak_growth"], PEAK_GROWTH_GOAL, enough),
        ("data-stage time exponent, smallest -> largest", f"<= {EXPONENT_GOAL}", summary["exponent"], EXPONENT_GOAL,
         enough),
        ("data-stage s per million, largest size", f"<= {SECONDS_PER_MILLION_GOAL:.0f}", per_million,
         SECONDS_PER_MILLION_GOAL, enough),
    ]  # fmt: skip
    return [
        {
            "goal": goal,
            "target": target,
            "measured": None if measured is None else round(measured, 3),
            "verdict": "not judged" if not sizes_enough else "met" if measured is not None and measured <= limit
            else "not met",
        }
        for goal, target, measured, limit, sizes_enough in goals
    ]  # fmt: skip


def scale_table(summary: dict) -> str:
    """Per size: generator speed, each data stage, data stages in all and per million reviews, the
    epoch, the rest, wall time and peaks; then the goals, as markdown."""
    results = summary["results"]
    stages = list(dict.fromkeys(name for result in results for name in result.get("stage_seconds", {})))
    columns = (
        "reviews", "generated/s", *(f"{name} s" for name in stages), "data stages s", "data s per 1M", "train s",
        "rest s", "wall s", "peak RSS GB (tree)", "peak PSS GB (tree)", "largest process GB",
    )  # fmt: skip
    rows = []
    for result in results:
        if "data_seconds" not in result:
            peak = _gb(result.get("peak_rss_bytes"))
            rows.append((f"{result['rows']:,}", result["failed"], *[""] * (len(columns) - 5), peak, "", ""))
            continue
        rows.append(
            (
                f"{result['rows']:,}",
                f"{result['generated_per_second']:,}",
                *(f"{result['stage_seconds'].get(name, 0):.1f}" for name in stages),
                f"{result['data_seconds']:.1f}",
                f"{result['data_seconds'] / result['rows'] * 1e6:,.1f}",
                f"{result['train_seconds']:.1f}",
                f"{result['other_seconds']:.1f}",
                f"{result['run_wall_seconds']:.1f}",
                _gb(result["peak_rss_bytes"]),
                _gb(result["peak_pss_bytes"]),
                _gb(result["largest_process_bytes"]),
            )
        )
    goals = [
        (goal["goal"], goal["target"], "-" if goal["measured"] is None else f"{goal['measured']:,.3f}",
         "**not met**" if goal["verdict"] == "not met" else goal["verdict"])
        for goal in summary["goals"]
    ]  # fmt: skip
    return markdown_table(rows, columns) + "\n\n" + markdown_table(goals, ("goal", "target", "measured", ""))


def _gb(value: float | None) -> str:
    return "-" if value is None else f"{value / GB:.2f}"
