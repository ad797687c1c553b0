"""`make snapshots`: the offline corpus's IMDB rows written as dated snapshots, one more per call,
read back through the pipeline's own reader of one's own reviews."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from tasks.data import own_reviews, sources
from tasks.data.corpus import OFFLINE_CORPUS_SOURCE
from tools.snapshots import main, write_next_snapshot

COUNT = 4  # more parts than formats: a format comes round again


@pytest.fixture(scope="module")
def corpus_rows() -> pd.DataFrame:
    return pd.read_csv(sources.offline_csv())


def read_back(prefix: str) -> dict[str, list[own_reviews.Review]]:
    return {
        snapshot.name: list(own_reviews.read_review_files(snapshot.files, "text", "label"))
        for snapshot in own_reviews.list_snapshots(prefix)
    }


def test_each_call_adds_the_next_snapshot_until_count_then_writes_nothing(tmp_path, corpus_rows, capsys):
    prefix = str(tmp_path / "reviews")
    for call in range(COUNT):
        assert main(["--into", prefix, "--count", str(COUNT)]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {prefix}/date=2026-12-0{call + 1}/reviews.")
        assert len(own_reviews.list_snapshots(prefix)) == call + 1
    files = sorted(path for path in (tmp_path / "reviews").rglob("*") if path.is_file())
    assert main(["--into", prefix, "--count", str(COUNT)]) == 0
    assert capsys.readouterr().out == f"all {COUNT} snapshots are written under {prefix}: nothing to write\n"
    assert sorted(path for path in (tmp_path / "reviews").rglob("*") if path.is_file()) == files

    snapshots = read_back(prefix)
    assert list(snapshots) == [f"date=2026-12-0{day}" for day in range(1, COUNT + 1)]  # name order is part order
    endings = [path.name.removeprefix("reviews.") for path in files]
    assert endings == ["csv", "parquet", "jsonl.gz", "csv"]

    imdb = corpus_rows[corpus_rows["source"] == OFFLINE_CORPUS_SOURCE]
    written = [(review.text, review.label) for reviews in snapshots.values() for review in reviews]
    # Every IMDB row exactly once, with its label; no part empty or lopsided.
    assert Counter(written) == Counter(zip(imdb["text"].astype(str), imdb["label"].astype(int), strict=True))
    sizes = [len(reviews) for reviews in snapshots.values()]
    assert max(sizes) - min(sizes) <= 1
    for reviews in snapshots.values():
        assert 0.4 < sum(review.label for review in reviews) / len(reviews) < 0.6
    other = set(corpus_rows.loc[corpus_rows["source"] != OFFLINE_CORPUS_SOURCE, "text"].astype(str))
    assert other and not other & {text for text, _ in written}  # never a Rotten Tomatoes snippet


def test_snapshots_are_written_through_the_storage_layer_to_any_filesystem():
    prefix = "memory://snapshots-test/reviews"
    assert write_next_snapshot(prefix, 2).endswith("/date=2026-12-01/reviews.csv")
    assert write_next_snapshot(prefix, 2).endswith("/date=2026-12-02/reviews.parquet")
    assert write_next_snapshot(prefix, 2) is None
    assert sum(len(reviews) for reviews in read_back(prefix).values()) == 25_000


def test_a_count_outside_its_range_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--into", str(tmp_path), "--count", "0"])
    assert exited.value.code == 2 and "must be from 1 to 365, not 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_one_format_for_every_snapshot_when_asked(tmp_path):
    prefix = str(tmp_path / "reviews")
    for _ in range(3):
        assert main(["--into", prefix, "--count", "3", "--format", "csv"]) == 0
    assert sorted(path.name for path in (tmp_path / "reviews").rglob("*") if path.is_file()) == ["reviews.csv"] * 3
