"""`make bench`'s command line (the benchmark itself runs in tests/e2e/test_benchmark.py)."""

from __future__ import annotations

from tools import bench


def test_bench_refuses_nonsense_options(capsys):
    assert bench.main(["--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
