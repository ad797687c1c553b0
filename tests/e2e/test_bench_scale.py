"""`make bench ARGS="--section scale"` on tiny sizes: generated reviews, a pipeline run per size,
its stage times and memory in the table, scale.json and the history (the numbers themselves are
not asserted: the benchmark reports them, a test would only flake); and the /proc sampler."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time

from tools import bench, bench_scale

# A process that holds about 300 MB in a child of its own, then waits: a tree for the sampler.
HOLDER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; block = bytearray(300 * 2**20); time.sleep(60)"])
time.sleep(60)
"""


def test_scale_section_runs_every_size_and_records_times_and_memory(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out, history = tmp_path / "bench", tmp_path / "history.jsonl"
    out.mkdir()
    arguments = ["--section", "scale", "--sizes", "600,300", "--out", str(out), "--history", str(history)]
    assert bench.main(arguments) == 0
    summary = json.loads((out / "scale.json").read_text())
    assert summary["sizes"] == [300, 600] and [result["rows"] for result in summary["results"]] == [300, 600]
    printed = capsys.readouterr().out
    for result in summary["results"]:
        assert result["exit_status"] == 0 and "failed" not in result
        stages = result["stage_seconds"]
        assert {"download", "split", "pad and store", "check data", "baseline"} <= stages.keys()
        assert "train" not in stages and result["train_seconds"] > 0
        assert result["data_seconds"] == round(sum(stages.values()), 2) > 0
        assert result["run_wall_seconds"] <= result["wall_seconds"]
        # TensorFlow alone is more than 300 MB; the tree holds the largest process and more.
        assert 3e8 < result["largest_process_bytes"] < result["peak_rss_bytes"] < 20e9
        assert 0 < result["peak_pss_bytes"] <= result["peak_rss_bytes"]
        row = f"| {result['rows']:,} | {result['generated_per_second']:,} | "
        assert row in printed and f"| {result['data_seconds']:.1f} |" in printed
    assert summary["exponent"] is not None and summary["peak_growth_from"] == 300
    assert [goal["verdict"] for goal in summary["goals"]] == ["not judged"] * 4
    [entry] = [json.loads(line) for line in history.read_text().splitlines()]
    assert entry["section"] == "scale" and entry["options"]["sizes"] == [300, 600]
    first, second = summary["results"]
    assert entry["numbers"] == {
        "300 data s": first["data_seconds"],
        "300 peak GB": round(first["peak_rss_bytes"] / 1e9, 3),
        "600 data s": second["data_seconds"],
        "600 peak GB": round(second["peak_rss_bytes"] / 1e9, 3),
        "data exponent": summary["exponent"],
        "peak growth": summary["peak_growth"],
    }
    assert "history of `scale`" in printed
    assert list(scratch.iterdir()) == []  # the generated reviews and the runs' state are gone


def test_the_sampler_sums_the_whole_tree_and_stops_it_over_the_ceiling():
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], start_new_session=True)
    try:
        memory = bench_scale.TreeMemory(holder.pid)
        time.sleep(3)
        memory.stop()
        assert memory.peak_single > 300 * 2**20 and "bytearray" in memory.peak_single_command
        assert memory.peak_total > memory.peak_single  # the holder's own Python counted too
        stopping = bench_scale.TreeMemory(holder.pid, ceiling=100 * 2**20)
        assert holder.wait(timeout=30) == -signal.SIGTERM
        stopping.stop()
        assert stopping.over_ceiling
    finally:
        holder.kill()
