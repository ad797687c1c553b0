"""Bad input fails with one `error:` line that names the problem, a non-zero exit status, and
nothing published: option values and malformed imdb.npz files, without a flow run (the runs that
fail on bad data are in tests/e2e/test_bad_input.py)."""

from __future__ import annotations

import numpy as np
import pytest

import flows.imdb_pipeline as pipeline
from flows.cli import OPTIONS
from flows.imdb_pipeline import main
from tasks.data import corpus
from tasks.errors import DataError
from tests.helpers import BAD_NPZ, keras_load_data, object_reviews, review_lists, write_npz

# Options any value of which is acceptable: a path names a folder that is created when needed.
UNCONSTRAINED = {"--cache-dir", "--work-dir"}

# (command line, the option the error must name, words the error must contain)
BAD_OPTIONS = [
    (["--source", " "], "--source", "must be keras, offline, auto or a URI"),
    (["--source-sha256", "ab" * 31], "--source-sha256", "64 hexadecimal characters"),
    (["--source-url-env", "IMDB-URL"], "--source-url-env", "must name an environment variable"),
    (["--presign-minutes", "-1"], "--presign-minutes", "greater than or equal to 0"),
    (["--presign-minutes", "61"], "--presign-minutes", "less than or equal to 60"),
    (["--download-timeout", "0"], "--download-timeout", "greater than 0"),
    (["--download-timeout", "nan"], "--download-timeout", "finite number"),
    (["--download-timeout", "1e12"], "--download-timeout", "less than or equal to"),
    (["--download-timeout", "soon"], "--download-timeout", "invalid float value: 'soon'"),
    (["--num-words", "3"], "--num-words", "greater than or equal to 4"),
    (["--num-words", "many"], "--num-words", "invalid int value: 'many'"),
    (["--maxlen", "1.5"], "--maxlen", "invalid int value: '1.5'"),
    (["--num-words", str(2**31)], "--num-words", "less than or equal to 2147483647"),
    (["--maxlen", str(2**31)], "--maxlen", "less than or equal to 2147483647"),
    # Sizes whose memory estimate exceeds any machine's (petabytes): refused before anything is allocated.
    (["--num-words", "2000000000"], "--num-words", "2000000000 would need about 1,527,309.5 GiB of memory"),
    (
        ["--maxlen", "2000000000", "--variants", "embedding"],
        "--maxlen",
        "GiB of memory (a streamed window of padded ids)",
    ),
    (["--rnn-units", "10000000"], "--rnn-units", "GiB of memory (weights and optimizer state)"),
    (["--embedding-dim", "10000000000"], "--embedding-dim", "GiB of memory (a training batch's activations)"),
    (["--batch-size", str(10**12)], "--batch-size", "GiB of memory (a training batch's activations)"),
    (["--val-fraction", "nan"], "--val-fraction", "finite number"),
    (["--test-fraction", "1"], "--test-fraction", "less than 1"),
    (["--text-column", ""], "--text-column", "at least 1 character"),
    (["--label-column", ""], "--label-column", "at least 1 character"),
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
    (["--baseline-max-rows", "1"], "--baseline-max-rows", "greater than or equal to 2"),
    (["--max-overlap", "-0.01"], "--max-overlap", "greater than or equal to 0"),
    (["--max-overlap", "1.5"], "--max-overlap", "less than or equal to 1"),
    (["--max-drift", "0"], "--max-drift", "greater than 0"),
    (["--max-drift", "nan"], "--max-drift", "finite number"),
    (["--storage", ""], "--storage", "must not be empty"),
    (["--storage", "s3://KEY:SECRET@bucket/x"], "--storage", "s3://***@bucket/x carries credentials"),
    (["--storage", "ftp://host/x"], "--storage", "unknown storage scheme 'ftp'"),
    (["--storage", "gs://bucket/x"], "--storage", "unknown storage scheme 'gs'"),
    (["--promote", "sometimes"], "--promote", "'never', 'auto' or 'always'"),
    (["--xla", "yes"], "--xla", "'auto', 'on' or 'off'"),
    (["--champion-metric", "f1"], "--champion-metric", "'accuracy', 'roc_auc' or 'loss'"),
    (["--seed", "-1"], "--seed", "greater than or equal to 0"),
    (["--seed", str(2**32)], "--seed", "less than 4294967296"),
    (["--refresh=yes"], "--refresh", "ignored explicit argument 'yes'"),
    (["--skip-unchanged=no"], "--skip-unchanged", "ignored explicit argument 'no'"),
    (["--window", "last:0"], "--window", "window last:0 picks no snapshot"),
    (["--window", "newest"], "--window", "window must be all, latest or last:N, not 'newest'"),
    (["--sweep", "rnn_units"], "--sweep", "'rnn_units' is not FIELD=VALUE[,VALUE...]"),
    (["--sweep", "seeds=1,2"], "--sweep", "'seeds' cannot be swept; sweepable: rnn_units, embedding_dim, batch_size"),
    (["--sweep", "rnn_units=8,0"], "--sweep", "rnn_units=0: Input should be greater than or equal to 1"),
    (["--sweep", "learning_rate=1e-3,2"], "--sweep", "learning_rate=2: Input should be less than or equal to 1"),
    (["--sweep", "rnn_units=8,8"], "--sweep", "rnn_units repeats a value"),
    (["--sweep", "rnn_units=8,10000000"], "--sweep", "rnn_units=10000000: model.rnn_units: 10000000 would need about"),
    (["--sweep", "rnn_units=8", "rnn_units=16"], "--sweep", "rnn_units is swept twice"),
    (["--sweep", "rnn_units=1,2,3,4,5,6,7,8,9", "batch_size=1,2,3,4,5,6,7,8"], "--sweep", "72 points, more than 64"),
    (["--dask-address", "127.0.0.1:8786"], "--dask-address", "is not a scheduler address like tcp://host:8786"),
    (["--dask-address", "tcp://127.0.0.1"], "--dask-address", "names no port"),
    (["--dask-address", "http://scheduler:8786"], "--dask-address", "is not a scheduler address"),
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
def test_a_bad_option_value_exits_2_with_one_line_naming_the_option(argv, option, words, tmp_path, capsys, monkeypatch):
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
    [
        (["--epochs", "3"], "unrecognized arguments: --epochs 3"),
        (["--max-epochs"], "--max-epochs: expected one argument"),
    ],
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
    assert set(OPTIONS) >= UNCONSTRAINED


# --- malformed imdb.npz ---------------------------------------------------------------------------


def test_the_unmodified_npz_loads(tmp_path):
    train, test = corpus.load_keras_npz(write_npz(tmp_path / "valid.npz"), num_words=50)
    assert (len(train), len(test)) == (2, 2)


@pytest.mark.parametrize("case", BAD_NPZ)
def test_a_malformed_npz_is_a_data_error_naming_the_file(case, tmp_path):
    arrays, words = BAD_NPZ[case]
    path = write_npz(tmp_path / f"{case}.npz", **arrays)
    with pytest.raises(DataError) as caught:
        corpus.load_keras_npz(path, num_words=50)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message


def test_ids_near_the_int64_limit_become_oov_as_keras_load_data_makes_them(tmp_path, monkeypatch):
    huge = [2**63 - 1, 2**63 - 2, 2**63 - 3, 2**40]  # the first three wrapped around when shifted by 3
    path = write_npz(
        tmp_path / "huge.npz", x_train=object_reviews(*([4, rank] for rank in huge)), y_train=np.array([0, 1, 0, 1])
    )
    (x_train, _), _ = keras_load_data(path, monkeypatch, num_words=50)
    train, _ = corpus.load_keras_npz(path, num_words=50)
    assert review_lists(train) == [list(row) for row in x_train]
