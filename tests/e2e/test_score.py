"""Batch scoring end to end: `flows.batch_scoring` on CSV, Parquet and JSONL, locally and on S3, and every
bad input refused with one `error:` line and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows.batch_scoring import main as score
from tasks.data import vocabulary
from tasks.registry import publishing
from tasks.storage import fs
from tests.helpers import copy_champion, drift_events, review_texts, run_error_line

pytestmark = pytest.mark.e2e

TEXTS, LABELS = review_texts(300, seed=11)  # reviews the model never saw, as raw text


def reviews_frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(TEXTS))], "review": TEXTS, "label": LABELS})


def predictions_of(capsys) -> tuple[str, list[str]]:
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("predictions: ")
    return out[-1].removeprefix("predictions: "), out


def test_score_writes_verified_predictions_with_their_provenance(published_champion, tmp_path, capsys):
    source = tmp_path / "reviews.csv"
    reviews_frame().to_csv(source, index=False)
    run = json.loads((published_champion / "champion.json").read_text())["run_uri"]
    options = ["--input", str(source), "--storage", str(tmp_path / "x"), "--run", run, "--variant", "onehot"]
    assert score([*options, "--id-column", "id", "--output", str(tmp_path / "out")]) == 0
    uri, out = predictions_of(capsys)
    assert Path(uri).parent == tmp_path / "out" / "predictions"
    assert publishing.verify_run(uri) == []
    assert sorted(p.name for p in Path(uri).iterdir()) == ["manifest.json", "predictions.parquet", "summary.json"]
    table = pq.read_table(Path(uri) / "predictions.parquet")
    assert table.column_names == ["id", "probability", "label"]
    assert table.column("id").to_pylist() == reviews_frame()["id"].tolist()
    provenance = json.loads(table.schema.metadata[b"imdb_rnn_pipeline"])
    model_file = Path(run) / "onehot" / "model.keras"
    assert provenance["model_sha256"] == fs.sha256_of(str(model_file))
    assert provenance["vocabulary_sha256"] == fs.sha256_of(str(Path(run) / "vocabulary.json"))
    assert (provenance["run_id"], provenance["variant"]) == (Path(run).name, "onehot")

    # the fast form scores exactly as the published model does on the same encoded text
    raw = vocabulary.parse_vocabulary((Path(run) / "vocabulary.json").read_bytes(), "v")
    expected = keras.models.load_model(model_file).predict(vocabulary.TextEncoder.of(raw).encode(TEXTS), verbose=0)
    probabilities = table.column("probability").to_numpy()
    np.testing.assert_allclose(probabilities, expected.reshape(-1), atol=1e-5)
    assert table.column("label").to_pylist() == ["positive" if p > 0.5 else "negative" for p in probabilities]
    summary = json.loads((Path(uri) / "summary.json").read_text())
    assert summary["rows"] == len(TEXTS) and summary["accuracy"] >= 0.85  # loose: about 0.97 on stored ids
    assert any(line.startswith(f"labels: accuracy {summary['accuracy']:.4f}, roc_auc 0.") for line in out)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_score_reads_parquet_and_jsonl_with_a_text_column_and_numbers_rows(
    published_champion, tmp_path, suffix, capsys
):
    frame = reviews_frame().drop(columns=["id", "label"]).rename(columns={"review": "text"})
    source = tmp_path / f"reviews{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(source)
    else:
        frame.to_json(source, orient="records", lines=True)
    assert score(["--input", str(source), "--storage", str(published_champion), "--output", str(tmp_path)]) == 0
    uri, out = predictions_of(capsys)
    table = pq.read_table(Path(uri) / "predictions.parquet")
    assert table.column("row").to_pylist() == list(range(len(TEXTS)))
    assert not any(line.startswith("labels:") for line in out)


BAD_INPUTS = {
    "missing column": ("reviews.csv", b"id,body\n1,great\n", "no text column review or text"),
    "missing id column": ("reviews.csv", b"review\ngreat\n", "no id column id"),
    "empty file": ("reviews.csv", b"", "empty file"),
    "no rows": ("reviews.csv", b"review,label\n", "no rows to score"),
    "nulls": ("reviews.jsonl", b'{"review": "fine"}\n{"review": null}\n', "1 null(s), the first in row 1"),
    "not UTF-8": ("reviews.csv", b"review\ncaf\xe9\n", "not UTF-8"),
    "bad labels": ("reviews.csv", b"review,label\ngreat,5\n", "label must hold 0 or 1"),
    "unknown format": ("reviews.xlsx", b"review\n", "unknown input format .xlsx"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_score_refuses_bad_input_with_one_error_line_and_writes_nothing(published_champion, tmp_path, case, capsys):
    name, content, message = BAD_INPUTS[case]
    (tmp_path / name).write_bytes(content)
    options = ["--input", str(tmp_path / name), "--storage", str(published_champion), "--output", str(tmp_path)]
    assert score([*options, *(["--id-column", "id"] if case == "missing id column" else [])]) == 1
    assert message in run_error_line(capsys.readouterr())
    assert not (tmp_path / "predictions").exists()


def test_score_refuses_a_champion_whose_run_does_not_verify(published_champion, tmp_path, capsys):
    store = tmp_path / "store"
    champion = json.loads((published_champion / "champion.json").read_text())
    run = Path(champion["run_uri"])
    shutil.copytree(run, store / "runs" / run.name)
    (store / "runs" / run.name / "report.md").write_text("changed")
    record = {**champion, "run_uri": str(store / "runs" / run.name)}
    (store / "champion.json").write_text(json.dumps(record))
    (tmp_path / "reviews.csv").write_text("review\ngreat\n")
    assert score(["--input", str(tmp_path / "reviews.csv"), "--storage", str(store)]) == 1
    assert "does not verify: report.md: sha256 differs" in run_error_line(capsys.readouterr())
    assert not (store / "predictions").exists()


def test_score_reads_and_writes_s3(published_champion, s3_prefix, capsys):
    copy_champion(published_champion, s3_prefix)
    fs.write_bytes(f"{s3_prefix}/in/reviews.csv", reviews_frame().to_csv(index=False).encode())
    assert score(["--input", f"{s3_prefix}/in/reviews.csv", "--storage", s3_prefix, "--id-column", "id"]) == 0
    uri, _ = predictions_of(capsys)
    assert uri.startswith(f"{s3_prefix}/predictions/")
    assert publishing.verify_run(uri) == []
    summary = fs.read_json(f"{uri}/summary.json")
    assert summary["rows"] == len(TEXTS) and summary["accuracy"] >= 0.85


def test_a_batch_is_compared_with_the_models_training_data_and_a_drifted_one_raises_the_event(
    published_champion, tmp_path, capsys
):

    texts, _ = review_texts(2400, seed=5)  # the training data's generator, unseen reviews
    batches = {"few": texts[:100], "alike": texts, "cut": [" ".join(text.split()[:3]) for text in texts]}
    summaries = {}
    for name, batch in batches.items():
        pd.DataFrame({"review": batch}).to_csv(tmp_path / f"{name}.csv", index=False)
        options = ["--input", str(tmp_path / f"{name}.csv"), "--storage", str(published_champion)]
        assert score([*options, "--output", str(tmp_path / name)]) == 0
        uri, out = predictions_of(capsys)
        summaries[name] = json.loads((Path(uri) / "summary.json").read_text())
        probabilities = pq.read_table(Path(uri) / "predictions.parquet").column("probability").to_numpy()
        summaries[name]["predicted_positive"] = float(np.mean(probabilities > 0.5))
        summaries[name]["printed"] = [line for line in out if line.startswith("drift")]

    assert summaries["few"]["drift"] is None and "100 reviews, fewer than 2,000" in summaries["few"]["drift_reference"]
    champion = json.loads((published_champion / "champion.json").read_text())
    alike, cut = summaries["alike"]["drift"], summaries["cut"]["drift"]
    assert alike["reference_dataset_key"] == champion["dataset_key"] and alike["described_rows"] == 2400
    assert "length" not in alike["drifted"] and "length" in cut["drifted"]
    assert cut["distances"]["length"] > 2 * alike["distances"]["length"]
    assert cut["mean_length"]["current"] < 5 < alike["mean_length"]["current"]
    # The batch's predicted-positive rate (from its predictions), beside the training labels' rate.
    assert cut["positive_share"]["current"] == pytest.approx(summaries["cut"]["predicted_positive"])
    assert alike["positive_share"]["current"] == pytest.approx(summaries["alike"]["predicted_positive"])
    assert "DRIFTED in" in summaries["cut"]["printed"][0] and "no drift" not in summaries["cut"]["printed"][0]
    events = drift_events(cut["dataset_key"])
    assert events and events[0].resource.id.startswith("imdb-rnn-pipeline.predictions.")
    assert events[0].payload["distances"]["length"] == pytest.approx(cut["distances"]["length"])
