"""The flow on one's own labelled reviews: a folder of CSV, gzipped JSONL and Parquet files taken
from the offline corpus's IMDB rows, trained, published and scored as raw text."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from flows.imdb_pipeline import main
from tasks.data import corpus, sources
from tests.helpers import assert_nothing_published, run_error_line, small_run_options
from tools.predict import main as predict
from tools.reproduce import main as reproduce

pytestmark = pytest.mark.e2e

REVIEWS = 360  # a few hundred: enough for every split to pass the lowered data-check floor


def write_own_reviews(folder: Path) -> tuple[list[str], list[int]]:
    """REVIEWS IMDB rows of the offline corpus, half of each label, as three files, labels spelt
    three ways (the corpus is ordered by label: its first rows are all negative)."""
    all_texts, all_labels = corpus.read_offline_corpus(sources.offline_source().local_path)
    rows = [*np.flatnonzero(all_labels == 0)[: REVIEWS // 2], *np.flatnonzero(all_labels == 1)[: REVIEWS // 2]]
    random.Random(0).shuffle(rows)
    texts, labels = [all_texts[row] for row in rows], [int(all_labels[row]) for row in rows]
    third = REVIEWS // 3
    folder.mkdir()
    pq.write_table(
        pa.table({"text": texts[:third], "label": ["positive" if y else "negative" for y in labels[:third]]}),
        folder / "a.parquet",
    )
    rows = [
        {"text": text, "label": label}
        for text, label in zip(texts[third : 2 * third], labels[third : 2 * third], strict=True)
    ]
    (folder / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode()))
    pa_csv.write_csv(
        pa.table({"text": texts[2 * third :], "label": ["pos" if y else "neg" for y in labels[2 * third :]]}),
        folder / "c.csv",
    )
    return texts, labels


def test_the_flow_trains_on_a_folder_of_own_reviews_and_predicts(prefect_harness, tmp_path, capsys):
    texts, _ = write_own_reviews(tmp_path / "reviews")
    options = small_run_options(str(tmp_path / "reviews"), tmp_path, "--num-words", "500", "--maxlen", "60")
    assert main(options) == 0
    output = capsys.readouterr().out.strip().splitlines()
    run_dir = Path(output[-1].removeprefix("run: "))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "vocabulary.json" in [entry["path"] for entry in manifest["files"]]
    words = json.loads((run_dir / "vocabulary.json").read_text())
    assert words["source_kind"] == "reviews" and words["spec"]["exact"] is True

    assert predict(["--run", str(run_dir), "--variant", "embedding", "--text", texts[0], "--text", texts[1]]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all(line["label"] in ("positive", "negative") for line in lines)

    # the manifest reproduces the run: the same files, data set and metrics, even after a new file lands
    write_own_reviews(tmp_path / "later")
    (tmp_path / "later" / "c.csv").rename(tmp_path / "reviews" / "d.csv")
    assert reproduce([str(run_dir)]) == 0
    again = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    reproduced = json.loads((again / "manifest.json").read_text())
    assert again != run_dir and reproduced["dataset_key"] == manifest["dataset_key"]
    assert reproduced["source"]["files"] == manifest["source"]["files"]
    assert json.loads((again / "metrics.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())

    # ... and notices a changed or deleted file, naming it, before anything is published
    runs = sorted((tmp_path / "store" / "runs").iterdir())
    changed = tmp_path / "reviews" / "c.csv"
    changed.write_text(changed.read_text().replace("pos", "neg", 1))
    assert reproduce([str(run_dir)]) == 1
    assert run_error_line(capsys.readouterr()).startswith(f"error: {changed}: changed since the run read it")
    changed.unlink()
    assert reproduce([str(run_dir)]) == 1
    assert run_error_line(capsys.readouterr()).startswith(f"error: {changed}: deleted since the run read it")
    assert sorted((tmp_path / "store" / "runs").iterdir()) == runs


def test_a_bad_file_among_own_reviews_fails_the_run_with_one_line_and_publishes_nothing(
    prefect_harness, tmp_path, capsys
):
    write_own_reviews(tmp_path / "reviews")
    (tmp_path / "reviews" / "d.csv").write_text("text,label\nfine film,positive\nso-so film,mixed\n")
    assert main(small_run_options(str(tmp_path / "reviews"), tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert line == f"error: {tmp_path / 'reviews' / 'd.csv'}: label 'mixed' is none of 0/1, negative/positive, neg/pos"
    assert "run: " not in captured.out
    assert_nothing_published(tmp_path / "store")
