"""Bad input fails with one `error:` line that names the problem, a non-zero exit status, and
nothing published: option values, malformed imdb.npz files, tampered Parquet splits, and sources
that do not exist."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flows.imdb_pipeline as pipeline
from flows.imdb_pipeline import main
from tasks import data, features
from tasks.cli import OPTIONS
from tasks.errors import DataError
from tests.helpers import assert_nothing_published, keras_load_data, run_error_line, small_run_options, write_imdb_npz

# Options any value of which is acceptable: a path names a folder that is created when needed.
UNCONSTRAINED = {"--cache-dir", "--work-dir"}

# (command line, the option the error must name, words the error must contain)
BAD_OPTIONS = [
    (["--source", " "], "--source", "must be keras, offline, auto or a URI"),
    (["--source-sha256", "ab" * 31], "--source-sha256", "64 hexadecimal characters"),
    (["--download-timeout", "0"], "--download-timeout", "greater than 0"),
    (["--download-timeout", "nan"], "--download-timeout", "finite number"),
    (["--download-timeout", "1e12"], "--download-timeout", "less than or equal to"),
    (["--download-timeout", "soon"], "--download-timeout", "invalid float value: 'soon'"),
    (["--num-words", "3"], "--num-words", "greater than or equal to 4"),
    (["--num-words", "many"], "--num-words", "invalid int value: 'many'"),
    (["--maxlen", "1.5"], "--maxlen", "invalid int value: '1.5'"),
    (["--val-fraction", "nan"], "--val-fraction", "finite number"),
    (["--variants", ","], "--variants", "at least one variant is needed"),
    (["--rnn-units", "0"], "--rnn-units", "greater than or equal to 1"),
    (["--rnn-units", "eight"], "--rnn-units", "invalid int value: 'eight'"),
    (["--embedding-dim", "0"], "--embedding-dim", "greater than or equal to 1"),
    (["--batch-size", "abc"], "--batch-size", "invalid int value: 'abc'"),
    (["--learning-rate", "inf"], "--learning-rate", "finite number"),
    (["--max-epochs", "-3"], "--max-epochs", "greater than or equal to 1"),
    (["--patience", "-1"], "--patience", "greater than or equal to 0"),
    (["--patience", "1.5"], "--patience", "invalid int value: '1.5'"),
    (["--recipe", "fast"], "--recipe", "'reference' or 'robust'"),
    (["--start-from-epoch", "-1"], "--start-from-epoch", "greater than or equal to 0"),
    (["--min-delta", "-0.1"], "--min-delta", "greater than or equal to 0"),
    (["--seeds", "0"], "--seeds", "greater than or equal to 1"),
    (["--seeds", "33"], "--seeds", "less than or equal to 32"),
    (["--restarts", "-1"], "--restarts", "greater than or equal to 0"),
    (["--restarts", "21"], "--restarts", "less than or equal to 20"),
    (["--baseline-margin", "-0.1"], "--baseline-margin", "greater than or equal to 0"),
    (["--baseline-margin", "nan"], "--baseline-margin", "finite number"),
    (["--stall-margin", "0.5"], "--stall-margin", "less than 0.5"),
    (["--training-timeout", "0"], "--training-timeout", "greater than or equal to 1"),
    (["--training-timeout", str(10**12)], "--training-timeout", "less than or equal to"),
    (["--min-split-rows", "1"], "--min-split-rows", "greater than or equal to 2"),
    (["--max-overlap", "-0.01"], "--max-overlap", "greater than or equal to 0"),
    (["--max-overlap", "1.5"], "--max-overlap", "less than or equal to 1"),
    (["--max-drift", "0"], "--max-drift", "greater than 0"),
    (["--max-drift", "nan"], "--max-drift", "finite number"),
    (["--storage", ""], "--storage", "must not be empty"),
    (["--storage", "ftp://host/x"], "--storage", "unknown storage scheme 'ftp'"),
    (["--storage", "gs://bucket/x"], "--storage", "unknown storage scheme 'gs'"),
    (["--promote", "sometimes"], "--promote", "'never', 'auto' or 'always'"),
    (["--champion-metric", "f1"], "--champion-metric", "'accuracy', 'roc_auc' or 'loss'"),
    (["--seed", "-1"], "--seed", "greater than or equal to 0"),
    (["--seed", str(2**32)], "--seed", "less than 4294967296"),
    (["--refresh=yes"], "--refresh", "ignored explicit argument 'yes'"),
]


def _flow_must_not_start(*args, **kwargs):
    pytest.fail("the flow started although the command line is invalid")


def exit_status(argv: list[str]) -> int:
    """main's status; argparse ends a malformed command line with SystemExit instead of returning."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def single_error_line(captured) -> str:
    """The only line of stderr, an `error:` line (nothing else runs before a command line is refused)."""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err[-3000:]
    return lines[0]


@pytest.mark.parametrize("argv, option, words", BAD_OPTIONS, ids=[" ".join(argv) for argv, _, _ in BAD_OPTIONS])
def test_a_bad_option_value_exits_2_with_one_line_naming_the_option(
    argv, option, words, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(pipeline, "imdb_rnn_pipeline", _flow_must_not_start)
    store = tmp_path / "store"
    assert exit_status(["--storage", str(store), *argv]) == 2
    captured = capsys.readouterr()
    line = single_error_line(captured)
    assert line.startswith(f"error: {option}: ") and words in line
    assert captured.out == ""
    assert not store.exists()


@pytest.mark.parametrize(
    "argv, words",
    [(["--epochs", "3"], "unrecognized arguments: --epochs 3"),
     (["--max-epochs"], "--max-epochs: expected one argument")],
)
def test_a_malformed_command_line_exits_2_with_one_line(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "imdb_rnn_pipeline", _flow_must_not_start)
    assert exit_status(["--storage", str(tmp_path / "store"), *argv]) == 2
    assert single_error_line(capsys.readouterr()) == f"error: {words}"
    assert not (tmp_path / "store").exists()


def test_every_constrained_option_has_a_bad_value_case():
    covered = {option for _, option, _ in BAD_OPTIONS}
    assert all(argv[0].split("=")[0] == option for argv, option, _ in BAD_OPTIONS)
    assert not covered & UNCONSTRAINED
    missing = set(OPTIONS) - covered - UNCONSTRAINED
    assert not missing, f"add a bad value to BAD_OPTIONS (or list the option in UNCONSTRAINED): {sorted(missing)}"
    assert UNCONSTRAINED <= set(OPTIONS)


# --- malformed imdb.npz ---------------------------------------------------------------------------

def _reviews(*rows: list) -> np.ndarray:
    array = np.empty(len(rows), dtype=object)
    array[:] = list(rows)
    return array


def write_npz(path: Path, **arrays: np.ndarray | None) -> Path:
    """A tiny valid imdb.npz (two reviews of raw ranks per split, labels 0 and 1) with `arrays`
    replacing its keys; None drops a key."""
    valid = {"x_train": _reviews([4, 5, 6], [7, 8]), "y_train": np.array([0, 1]),
             "x_test": _reviews([9, 4], [5]), "y_test": np.array([1, 0])}
    np.savez(path, **{key: value for key, value in {**valid, **arrays}.items() if value is not None})
    return path


# name -> (arrays replacing the valid ones, words the error must contain)
BAD_NPZ = {
    "missing-keys": ({"x_test": None, "y_test": None}, "missing x_test, y_test"),
    "float-ids": ({"x_train": _reviews([1.5, 2.0], [3.0])}, "must be integers, found float"),
    "float-id-matrix": ({"x_train": np.array([[1.0, 2.0], [3.0, 4.0]])}, "must be integers, found float64"),
    "string-ids": ({"x_train": _reviews(["good", "film"], ["bad"])}, "must be integers, found str"),
    "digit-string-ids": ({"x_train": _reviews(["5", "7"], ["9"])}, "must be integers, found str"),
    "bool-ids": ({"x_train": _reviews([True, True], [True])}, "must be integers, found bool"),
    "ids-beyond-int64": ({"x_train": _reviews([1, 2**70], [3])}, "must fit in 64-bit integers"),
    "negative-ids": ({"x_train": _reviews([4, -5], [3])}, "must be >= 1"),
    "zero-ids": ({"x_test": _reviews([0, 1], [3])}, "must be >= 1"),
    "rows-not-sequences": ({"x_train": np.array([4, 5])}, "must be sequences of word ids"),
    "single-value": ({"x_train": np.array(5)}, "is a single value"),
    "string-labels": ({"y_train": np.array(["pos", "neg"])}, "must be integers 0 or 1"),
    "float-labels": ({"y_test": np.array([1.0, 0.0])}, "must be integers 0 or 1"),
    "labels-outside-0-1": ({"y_train": np.array([0, 2])}, "must be integers 0 or 1"),
    "labels-2d": ({"y_train": np.array([[0], [1]])}, "must be integers 0 or 1"),
    "fewer-labels": ({"y_test": np.array([1])}, "2 reviews but 1 labels"),
    "empty-test-split": ({"x_test": _reviews(), "y_test": np.zeros(0, dtype=int)}, "'x_test' is empty"),
}
# The subset also run end to end through the CLI (each costs a flow start).
BAD_NPZ_END_TO_END = ["missing-keys", "float-ids", "ids-beyond-int64", "negative-ids", "string-labels",
                      "empty-test-split"]


def test_the_unmodified_npz_loads(tmp_path):
    train, test = data.load_keras_npz(write_npz(tmp_path / "valid.npz"), num_words=50)
    assert (len(train), len(test)) == (2, 2)


@pytest.mark.parametrize("case", BAD_NPZ)
def test_a_malformed_npz_is_a_data_error_naming_the_file(case, tmp_path):
    arrays, words = BAD_NPZ[case]
    path = write_npz(tmp_path / f"{case}.npz", **arrays)
    with pytest.raises(DataError) as caught:
        data.load_keras_npz(path, num_words=50)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message


def test_ids_near_the_int64_limit_become_oov_as_keras_load_data_makes_them(tmp_path, monkeypatch):
    huge = [2**63 - 1, 2**63 - 2, 2**63 - 3, 2**40]  # the first three wrapped around when shifted by 3
    path = write_npz(tmp_path / "huge.npz", x_train=_reviews(*([4, rank] for rank in huge)),
                     y_train=np.array([0, 1, 0, 1]))
    (x_train, _), _ = keras_load_data(path, monkeypatch, num_words=50)
    train, _ = data.load_keras_npz(path, num_words=50)
    assert train.to_lists() == [list(row) for row in x_train]


@pytest.mark.e2e
@pytest.mark.parametrize("case", BAD_NPZ_END_TO_END)
def test_a_malformed_npz_fails_the_run_with_one_line_and_publishes_nothing(case, prefect_harness, tmp_path, capsys):
    arrays, words = BAD_NPZ[case]
    path = write_npz(tmp_path / f"{case}.npz", **arrays)
    assert main(small_run_options(str(path), tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert str(path) in line and words in line and "unexpected" not in line
    assert "run: " not in captured.out
    assert_nothing_published(tmp_path / "store")


# --- data that fails a data check ---------------------------------------------------------------

def _single_class_training_labels(path: Path) -> Path:
    write_imdb_npz(path)
    arrays = dict(np.load(path, allow_pickle=True))  # our own generated file
    arrays["y_train"][:] = 1
    np.savez(path, **arrays)
    return path


def _test_repeating_training(path: Path) -> Path:
    write_imdb_npz(path)
    arrays = dict(np.load(path, allow_pickle=True))  # our own generated file
    arrays["x_test"], arrays["y_test"] = arrays["x_train"][:120], arrays["y_train"][:120]
    np.savez(path, **arrays)
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("make, words", [
    (_single_class_training_labels, "data check 'single class' failed: all 192 reviews of train have label 1"),
    (_test_repeating_training, "data check 'train/test overlap' failed: 120 of 120 test reviews (100.00 %) repeat a "
                               "train or val review, more than 2.00 % (--max-overlap)"),
], ids=["single-class", "test-repeats-train"])
def test_data_failing_a_check_stops_the_run_before_training_and_publishes_nothing(
    make, words, prefect_harness, tmp_path, capsys
):
    path = make(tmp_path / "imdb.npz")
    assert main(small_run_options(str(path), tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert line.startswith(f"error: {words}") and line.endswith("nothing was trained or published")
    assert "stage 5/" not in captured.err  # stopped before the baseline and training
    assert "run: " not in captured.out
    assert_nothing_published(tmp_path / "store")
    assert not (tmp_path / "store" / "cache" / "training").exists()


# --- tampered Parquet splits -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def published_run(prefect_harness, tmp_path_factory):
    """One successful run to tamper with afterwards: (options, train.parquet, its bytes, runs, champion)."""
    root = tmp_path_factory.mktemp("tamper")
    npz = write_imdb_npz(root / "imdb.npz")
    options = small_run_options(str(npz), root, "--variants", "embedding")
    assert main(options) == 0
    store = root / "store"
    (dataset,) = (store / "data").iterdir()
    train = dataset / "train.parquet"
    runs = sorted((store / "runs").iterdir())
    return options, train, train.read_bytes(), runs, (store / "champion.json").read_bytes()


def _foreign_columns(train: Path) -> None:
    pq.write_table(pa.table({"text": ["a fine film", "dull"], "label": [1, 0]}), train)


def _maxlen_disagreeing_with_metadata(train: Path) -> None:
    table = pq.read_table(train)
    metadata = json.loads(table.schema.metadata[features.METADATA_KEY])
    metadata["maxlen"] += 5
    pq.write_table(table.replace_schema_metadata({features.METADATA_KEY: json.dumps(metadata)}), train)


def _string_tokens(train: Path) -> None:
    table = pq.read_table(train)
    width = table.schema.field("tokens").type.list_size
    words = pa.array(table.column("tokens").combine_chunks().flatten().to_numpy().astype(str))
    tokens = pa.FixedSizeListArray.from_arrays(words, width)
    pq.write_table(table.set_column(0, "tokens", tokens), train)


def _consistent_but_another_maxlen(train: Path) -> None:
    tokens, labels, metadata = features.read_split(str(train))
    features.write_split(str(train), tokens[:, 5:], labels, {**metadata, "maxlen": tokens.shape[1] - 5})


def _not_parquet(train: Path) -> None:
    train.write_bytes(b"PAR1 this is not a Parquet file")


def _labels_outside_0_1(train: Path) -> None:
    tokens, labels, metadata = features.read_split(str(train))
    features.write_split(str(train), tokens, np.where(labels == 1, 7, labels), metadata)


def _ids_beyond_the_vocabulary(train: Path) -> None:
    tokens, labels, metadata = features.read_split(str(train))
    features.write_split(str(train), tokens + 50, labels, metadata)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "tamper, words",
    [
        (_foreign_columns, "not a split written by this pipeline"),
        (_maxlen_disagreeing_with_metadata, "disagrees with maxlen="),
        (_string_tokens, "must hold integers"),
        (_consistent_but_another_maxlen, "tokens per review, but maxlen 20 is expected"),
        (_not_parquet, "not a readable Parquet file"),
        (_labels_outside_0_1, "data check 'labels outside {0, 1}' failed: train has labels 7"),
        (_ids_beyond_the_vocabulary, "data check 'ids outside [0, num_words)' failed: train holds ids 50..99"),
    ],
    ids=["foreign-columns", "maxlen-vs-metadata", "string-tokens", "another-maxlen", "not-parquet",
         "labels-outside-0-1", "ids-beyond-vocabulary"],
)
def test_a_tampered_stored_split_fails_the_rerun_with_one_line_and_keeps_the_champion(
    tamper, words, published_run, capsys
):
    options, train, original, runs, champion = published_run
    store = train.parents[2]
    tamper(train)
    try:
        assert main([*options, "--max-epochs", "4"]) == 1  # a new recipe: training reads the split again
    finally:
        train.write_bytes(original)
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert str(train) in line and words in line and "unexpected" not in line
    assert "run: " not in captured.out
    assert sorted((store / "runs").iterdir()) == runs
    assert (store / "champion.json").read_bytes() == champion


# --- sources that do not exist ---------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.parametrize("kind, words", [("path", "does not exist"), ("file-uri", "does not exist"),
                                         ("http-404", "HTTP 404"), ("s3", "does not exist")])
def test_a_source_that_does_not_exist_fails_with_one_line_and_publishes_nothing(
    kind, words, prefect_harness, http_server, request, tmp_path, capsys
):
    base, _ = http_server
    if kind == "s3":
        bucket = request.getfixturevalue("s3_server").bucket
        source = f"s3://{bucket}/absent-{tmp_path.name}/imdb.npz"
    else:
        source = {"path": str(tmp_path / "absent.npz"), "file-uri": f"file://{tmp_path}/absent.npz",
                  "http-404": f"{base}/absent.npz"}[kind]
    assert main(small_run_options(source, tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert source in line and words in line
    assert "run: " not in captured.out
    assert_nothing_published(tmp_path / "store")
