"""The scale section's arithmetic (tools/bench_scale.py): which stages are data stages, the growth
and the scaling goals' verdicts (the runs themselves are measured in tests/e2e/test_bench_scale.py)."""

from __future__ import annotations

import pytest

from tasks.reporting.tables import parse_time_split
from tools import bench, bench_scale

GB = bench_scale.GB


def _run(rows: int, data: float, peak_gb: float) -> dict:
    """A completed size as measure_size records it: data stages `data` s in all, peak `peak_gb`."""
    times = bench_scale.stage_times({"wall": data + 40, "split": data, "train": 30.0})
    memory = {name: peak_gb * GB for name in ("peak_rss_bytes", "peak_pss_bytes", "largest_process_bytes")}
    return {"rows": rows, "generated_per_second": 150_000, **times, **memory}


def _summary(*results: dict) -> dict:
    summary: dict = {"results": list(results)}
    summary.update(bench_scale.growth(summary["results"]))
    summary["goals"] = bench_scale.scale_goals(summary)
    return summary


def _verdicts(summary: dict) -> list[str]:
    return [goal["verdict"] for goal in summary["goals"]]


def test_the_data_stages_are_the_stages_before_train():
    line = (
        "time: 60.0 s wall = start-up 10.0 + flow start 0.1 + download 0.4 + split 5.0 + pad and store 2.0 "
        "+ baseline 2.5 + train 30.0 + evaluate 1.0 + publish 2.0 + finish 7.0 (s)"
    )
    times = bench_scale.stage_times(parse_time_split(line))
    assert times["stage_seconds"] == {
        "flow start": 0.1,
        "download": 0.4,
        "split": 5.0,
        "pad and store": 2.0,
        "baseline": 2.5,
    }
    assert (times["data_seconds"], times["train_seconds"], times["other_seconds"]) == (10.0, 30.0, 20.0)
    with pytest.raises(ValueError, match="no 'train'"):
        bench_scale.stage_times(parse_time_split("time: 5.0 s wall = start-up 1.0 + split 4.0 (s)"))


def test_linear_time_and_flat_memory_meet_every_goal():
    summary = _summary(_run(100_000, 5.0, 1.2), _run(1_000_000, 50.0, 2.0), _run(3_000_000, 150.0, 2.2))
    assert summary["exponent"] == pytest.approx(1.0)
    assert (summary["peak_growth"], summary["peak_growth_from"]) == (1.1, 1_000_000)
    assert _verdicts(summary) == ["met"] * 4
    assert [goal["measured"] for goal in summary["goals"]] == [2.0, 1.1, 1.0, 50.0]
    table = bench_scale.scale_table(summary)
    # reviews, generated/s, split, data stages, per 1M, train, rest, wall, peak RSS, PSS, largest process
    assert "| 1,000,000 | 150,000 | 50.0 | 50.0 | 50.0 | 30.0 | 10.0 | 90.0 | 2.00 | 2.00 | 2.00 |" in table
    assert table.count("| met |") == 4


def test_memory_that_grows_and_time_that_grows_faster_than_linear_miss_the_goals():
    summary = _summary(_run(100_000, 5.0, 1.5), _run(1_000_000, 80.0, 12.0), _run(3_000_000, 400.0, 30.0))
    assert summary["exponent"] == pytest.approx(1.288, abs=1e-3)  # log(400 / 5) / log(30)
    assert _verdicts(summary) == ["not met"] * 4


def test_a_largest_size_that_failed_misses_the_goals_it_was_needed_for():
    failed = {"rows": 3_000_000, "failed": "over the memory ceiling: ...", "peak_rss_bytes": 18 * GB}
    summary = _summary(_run(100_000, 5.0, 1.2), _run(1_000_000, 50.0, 2.0), failed)
    assert summary["exponent"] is None and summary["peak_growth"] is None
    assert _verdicts(summary) == ["met", "not met", "not met", "not met"]
    assert "over the memory ceiling" in bench_scale.scale_table(summary)


def test_sizes_below_the_issues_are_measured_but_not_judged():
    summary = _summary(_run(300, 10.0, 1.7), _run(600, 11.0, 1.75))
    assert summary["peak_growth_from"] == 300 and summary["peak_growth"] == pytest.approx(1.029, abs=1e-3)
    assert _verdicts(summary) == ["not judged"] * 4


@pytest.mark.parametrize("text", ["100k", "100,-5", "50", ""])
def test_sizes_option_refuses_what_is_not_a_size(text, tmp_path):
    with pytest.raises(SystemExit):  # had it taken the size, the output would go under tmp_path
        bench.main(["--section", "scale", "--sizes", text, "--out", str(tmp_path), "--history", str(tmp_path / "h")])


def test_sizes_option_sorts_and_reads_underscores():
    assert bench._sizes("3_000_000,100000,1000000,100000") == (100_000, 1_000_000, 3_000_000)
