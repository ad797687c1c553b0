"""Bad data fails the run with one `error:` line that names the problem, a non-zero exit status, and
nothing published: malformed imdb.npz files, data failing a data check, tampered Parquet splits, and
sources that do not exist (each case is a flow run; the option values are in tests/unit/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.imdb_pipeline import STAGES, main
from tasks.data import store
from tests.helpers import (
    BAD_NPZ,
    BAD_NPZ_END_TO_END,
    assert_nothing_published,
    latest_flow_run_log,
    run_error_line,
    small_run_options,
    write_imdb_npz,
    write_npz,
)


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
@pytest.mark.parametrize(
    "make, words",
    [
        (_single_class_training_labels, "data check 'single class' failed: all 192 reviews of train have label 1"),
        (
            _test_repeating_training,
            "data check 'train/test overlap' failed: 120 of 120 test reviews (100.00 %) repeat a "
            "train or val review, more than 2.00 % (--max-overlap)",
        ),
    ],
    ids=["single-class", "test-repeats-train"],
)
def test_data_failing_a_check_stops_the_run_before_training_and_publishes_nothing(
    make, words, prefect_harness, tmp_path, capsys
):
    path = make(tmp_path / "imdb.npz")
    assert main(small_run_options(str(path), tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert line.startswith(f"error: {words}") and line.endswith("nothing was trained or published")
    # The stage lines are Prefect's run log (capsys never sees them): read back through the API.
    log = latest_flow_run_log()
    assert f"stage {STAGES.index('check data') + 1}/{len(STAGES)}: check data" in log
    assert f"stage {STAGES.index('baseline') + 1}/" not in log  # stopped before the baseline and training
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
    store_root = root / "store"
    (dataset,) = (store_root / "data").iterdir()
    train = dataset / "train.parquet"
    runs = sorted((store_root / "runs").iterdir())
    return options, train, train.read_bytes(), runs, (store_root / "champion.json").read_bytes()


def _foreign_columns(train: Path) -> None:
    pq.write_table(pa.table({"text": ["a fine film", "dull"], "label": [1, 0]}), train)


def _maxlen_disagreeing_with_metadata(train: Path) -> None:
    table = pq.read_table(train)
    metadata = json.loads(table.schema.metadata[store.METADATA_KEY])
    metadata["maxlen"] += 5
    pq.write_table(table.replace_schema_metadata({store.METADATA_KEY: json.dumps(metadata)}), train)


def _string_tokens(train: Path) -> None:
    table = pq.read_table(train)
    width = table.schema.field("tokens").type.list_size
    words = pa.array(table.column("tokens").combine_chunks().flatten().to_numpy().astype(str))
    tokens = pa.FixedSizeListArray.from_arrays(words, width)
    pq.write_table(table.set_column(0, "tokens", tokens), train)


def _consistent_but_another_maxlen(train: Path) -> None:
    tokens, labels, metadata = store.read_split(str(train))
    store.write_split(str(train), tokens[:, 5:], labels, {**metadata, "maxlen": tokens.shape[1] - 5})


def _not_parquet(train: Path) -> None:
    train.write_bytes(b"PAR1 this is not a Parquet file")


def _labels_outside_0_1(train: Path) -> None:
    tokens, labels, metadata = store.read_split(str(train))
    store.write_split(str(train), tokens, np.where(labels == 1, 7, labels), metadata)


def _ids_beyond_the_vocabulary(train: Path) -> None:
    tokens, labels, metadata = store.read_split(str(train))
    store.write_split(str(train), tokens + 50, labels, metadata)


def _null_labels(train: Path) -> None:
    table = pq.read_table(train)
    labels = pa.array([None, *table.column("label").to_pylist()[1:]], type=pa.int8())
    pq.write_table(table.set_column(1, "label", labels), train)


def _null_token_ids(train: Path) -> None:
    table = pq.read_table(train)
    width = table.schema.field("tokens").type.list_size
    ids = table.column("tokens").combine_chunks().flatten().to_pylist()
    tokens = pa.FixedSizeListArray.from_arrays(pa.array([None, *ids[1:]], type=pa.int32()), width)
    pq.write_table(table.set_column(0, "tokens", tokens), train)


def _labels_wrapping_around_int8(train: Path) -> None:
    table = pq.read_table(train)
    labels = pa.array(table.column("label").to_numpy().astype(np.int64) * 256)  # 256 would cast to 0
    pq.write_table(table.set_column(1, "label", labels), train)


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
        (_null_labels, "column 'label' has 1 null values"),
        (_null_token_ids, "column 'tokens' has 1 null values"),
        (_labels_wrapping_around_int8, "column 'label' holds 0..256, beyond int8"),
    ],
    ids=[
        "foreign-columns",
        "maxlen-vs-metadata",
        "string-tokens",
        "another-maxlen",
        "not-parquet",
        "labels-outside-0-1",
        "ids-beyond-vocabulary",
        "null-labels",
        "null-token-ids",
        "labels-beyond-int8",
    ],
)
def test_a_tampered_stored_split_fails_the_rerun_with_one_line_and_keeps_the_champion(
    tamper, words, published_run, capsys
):
    options, train, original, runs, champion = published_run
    store_root = train.parents[2]
    tamper(train)
    try:
        assert main([*options, "--max-epochs", "4"]) == 1  # a new recipe: training reads the split again
    finally:
        train.write_bytes(original)
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert str(train) in line and words in line and "unexpected" not in line
    assert "run: " not in captured.out
    assert sorted((store_root / "runs").iterdir()) == runs
    assert (store_root / "champion.json").read_bytes() == champion


# --- sources that do not exist ---------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "kind, words",
    [("path", "does not exist"), ("file-uri", "does not exist"), ("http-404", "HTTP 404"), ("s3", "does not exist")],
)
def test_a_source_that_does_not_exist_fails_with_one_line_and_publishes_nothing(
    kind, words, prefect_harness, http_server, request, tmp_path, capsys
):
    base, _ = http_server
    if kind == "s3":
        bucket = request.getfixturevalue("s3_server").bucket
        source = f"s3://{bucket}/absent-{tmp_path.name}/imdb.npz"
    else:
        source = {
            "path": str(tmp_path / "absent.npz"),
            "file-uri": f"file://{tmp_path}/absent.npz",
            "http-404": f"{base}/absent.npz",
        }[kind]
    assert main(small_run_options(source, tmp_path)) == 1
    captured = capsys.readouterr()
    line = run_error_line(captured)
    assert source in line and words in line
    assert "run: " not in captured.out
    assert_nothing_published(tmp_path / "store")
