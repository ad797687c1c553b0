"""`make bench`'s command line (the benchmark itself runs in tests/e2e/test_benchmark.py)."""

from __future__ import annotations

from tasks import benchmark


def test_bench_refuses_nonsense_options(capsys):
    assert benchmark.main(["--epochs", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
