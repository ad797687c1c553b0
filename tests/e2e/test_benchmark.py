"""`make bench` on tiny data: it runs both implementations and writes its outputs (timing is not
asserted here: the benchmark reports it, a test would only flake)."""

from __future__ import annotations

import json

from tools import bench


def test_bench_runs_on_tiny_data_and_writes_results(tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench.main(["--rows", "64", "--epochs", "1", "--warmup", "0", "--variants", "onehot", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert {(r["variant"], r["implementation"]) for r in results["results"]} == {
        (variant, implementation) for variant in ("onehot",) for implementation in ("baseline", "ours")
    }
    for row in results["comparison"]:
        assert row["parameters"][0] == row["parameters"][1] == {"onehot": 4_081, "embedding": 8_209}[row["variant"]]
        assert row["time_ratio"] > 0 and row["memory_ratio"] > 0
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")
    table = (out / "results.md").read_text()
    assert table.count("\n") == 3 and table in capsys.readouterr().out
    assert not (out / "data.npz").exists()


def test_bench_measures_batch_scoring_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench.main(["--section", "scoring", "--rows", "300", "--out", str(out)]) == 0
    results = json.loads((out / "scoring.json").read_text())["results"]
    assert [(r["variant"], r["reviews"]) for r in results] == [("onehot", 300), ("embedding", 300)]
    assert all(r["reviews_per_second"] > 0 and r["encode_per_second"] > 0 for r in results)
    assert "| onehot | 300 |" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["scoring.json"]  # input and published copies removed
