"""Raw text in, labels out: `tools.predict` on a published run, locally and on S3, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.storage import fs
from tests.helpers import cli_error_line, copy_champion, review_texts
from tools.predict import main as predict

pytestmark = pytest.mark.e2e

TEXTS, LABELS = review_texts(60, seed=7)  # reviews the model never saw, as raw text
POSITIVE_TEXT, NEGATIVE_TEXT = TEXTS[int(np.argmax(LABELS))], TEXTS[int(np.argmin(LABELS))]


@pytest.fixture
def published(published_champion) -> Path:
    return published_champion


def predictions(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_labels_raw_text_with_the_champion(published, capsys):
    champion = json.loads((published / "champion.json").read_text())
    run = Path(champion["run_uri"])
    assert champion["vocabulary_uri"] == str(run / "vocabulary.json")
    assert champion["vocabulary_sha256"] == fs.sha256_of(str(run / "vocabulary.json"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert "vocabulary.json" in [entry["path"] for entry in manifest["files"]]

    assert predict(["--storage", str(published), "--text", POSITIVE_TEXT, "--text", NEGATIVE_TEXT]) == 0
    lines = predictions(capsys)
    assert [line["label"] for line in lines] == ["positive", "negative"]
    assert lines[0]["probability"] > 0.5 > lines[1]["probability"]
    assert {(line["run_id"], line["variant"], line["model_uri"]) for line in lines} == {
        (champion["run_id"], champion["variant"], champion["model_uri"])
    }


def test_predict_reads_one_review_per_line_from_a_file_and_a_named_run(published, tmp_path, capsys):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n\n".join(TEXTS) + "\n")  # blank lines are skipped
    run = json.loads((published / "champion.json").read_text())["run_uri"]
    options = ["--storage", str(tmp_path / "nothing"), "--run", run, "--variant", "embedding", "--file", str(reviews)]
    assert predict(options) == 0
    labels = [line["label"] == "positive" for line in predictions(capsys)]
    assert len(labels) == len(TEXTS)
    assert np.mean(np.array(labels) == LABELS) >= 0.85  # loose: the model reaches about 0.97 on stored ids


def test_predict_refuses_a_vocabulary_that_differs_from_the_manifest(published, tmp_path, capsys):
    import shutil

    run = Path(json.loads((published / "champion.json").read_text())["run_uri"])
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    (copy / "vocabulary.json").write_text((copy / "vocabulary.json").read_text().replace('"word1"', '"word01"'))
    assert predict(["--run", str(copy), "--variant", "onehot", "--text", POSITIVE_TEXT]) == 1
    assert "vocabulary.json: sha256" in cli_error_line(capsys.readouterr())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--text", "  "], "no review to score"),
        (["--storage", "{empty}", "--text", "fine"], "no champion under"),
        (["--run", "{empty}", "--text", "fine"], "manifest.json is missing"),
        (["--file", "{binary}"], "not UTF-8"),
    ],
)
def test_predict_refuses_bad_input_with_one_error_line(arguments, message, tmp_path, capsys):
    (tmp_path / "binary.txt").write_bytes(b"caf\xe9\n")
    values = {"{empty}": str(tmp_path), "{binary}": str(tmp_path / "binary.txt")}
    assert predict([values.get(argument, argument) for argument in arguments]) == 1
    assert message in cli_error_line(capsys.readouterr())


def test_predict_reads_the_champion_from_s3(published, s3_prefix, capsys):
    record = copy_champion(published, s3_prefix)
    assert predict(["--storage", s3_prefix, "--text", POSITIVE_TEXT]) == 0
    [line] = predictions(capsys)
    assert (line["label"], line["model_uri"]) == ("positive", record["model_uri"])
