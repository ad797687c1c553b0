"""The benchmark's history file and the run section's goals (the measurements run in
tests/e2e/test_benchmark.py)."""

from __future__ import annotations

import json

from tasks.reporting.tables import format_time_split, parse_time_split
from tools import bench_history, bench_run


def test_history_appends_one_entry_per_section_and_shows_only_comparable_ones(tmp_path):
    path = tmp_path / "history.jsonl"
    bench_history.append(path, "run", {"run_args": ""}, {"our first s": 61.5})
    bench_history.append(path, "run", {"run_args": "--max-epochs 2"}, {"our first s": 9.0})
    bench_history.append(path, "scoring", {"rows": None}, {"onehot reviews/s": 9000})
    with path.open("a") as handle:
        handle.write('{"section": "run", "opti')  # a torn last write
    bench_history.append(path, "run", {"run_args": ""}, {"our first s": 58.25})
    entries = bench_history.read(path)
    assert [entry["section"] for entry in entries] == ["run", "run", "scoring", "run"]
    assert all(entry["machine"] == bench_history.machine() and entry["code"] for entry in entries)
    table = bench_history.table(path, "run", {"run_args": ""})
    rows = table.splitlines()[3:]
    assert len(rows) == 2 and "61.5" in rows[0] and "58.2" in rows[1]  # oldest first; other options left out
    assert bench_history.table(path, "training", {}) == "(no training history yet)"


def test_history_from_another_machine_is_not_shown_beside_this_ones(tmp_path):
    path = tmp_path / "history.jsonl"
    entry = {
        "section": "run",
        "options": {},
        "numbers": {"our first s": 1.0},
        "at": "then",
        "code": "abc",
        "machine": {"cpus": 64, "memory_gib": 512},
    }
    path.write_text(json.dumps(entry) + "\n")
    assert bench_history.table(path, "run", {}) == "(no run history yet)"


def run(first: float, cached: float, accuracy: float) -> dict:
    return {
        "first": {"wall_seconds": first, "test_accuracy": {"onehot": accuracy}},
        "cached": {"wall_seconds": cached, "test_accuracy": {"onehot": accuracy}},
    }


def test_run_goals_compare_our_first_run_with_the_earlier_one_and_our_cached_run_with_our_first():
    goals = {goal["goal"]: goal for goal in bench_run.run_goals(run(120.0, 16.0, 0.78), run(58.0, 12.0, 0.78))}
    assert goals["first run"]["measured"] == 58.0 / 120.0 and goals["first run"]["met"]
    assert goals["cached rerun"]["measured"] == 12.0 / 58.0 and goals["cached rerun"]["met"]
    assert goals["test accuracies"]["met"]
    missed = {goal["goal"]: goal for goal in bench_run.run_goals(run(100.0, 16.0, 0.78), run(61.0, 16.0, 0.77))}
    assert not any(goal["met"] for goal in missed.values())


def test_the_printed_time_split_reads_back_and_adds_up_to_the_wall_time():
    timing = {"flow_started": 105.0, "flow_ended": 150.5, "stage_seconds": {"download": 0.5, "train": 45.0}}
    line = format_time_split(100.0, 151.25, timing)
    assert line == "time: 51.2 s wall = start-up 5.0 + download 0.5 + train 45.0 + finish 0.8 (s)"
    assert parse_time_split(line) == {"wall": 51.2, "start-up": 5.0, "download": 0.5, "train": 45.0, "finish": 0.8}
