"""Data checks on small generated splits: each check that stops a run, the warnings, drift, and
the champion's statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.config import DataCheckConfig, DataConfig
from tasks.data import checks, corpus, drift, prepare, store
from tasks.data.corpus import Reviews
from tasks.data.statistics import SplitStatistics
from tasks.errors import DataError, StorageError
from tasks.registry import gate
from tasks.reporting import plots, report
from tasks.storage import fs, layout
from tests.helpers import champion_record, review_lists

NUM_WORDS, MAXLEN = 50, 20
CONFIG = DataCheckConfig(min_split_rows=20)


def generated_reviews(rows: int, seed: int, positive_share: float = 0.5, lengths=(5, 40)) -> Reviews:
    """Reviews in the pipeline's id scheme: the start id, then word ids in [3, NUM_WORDS) with some oov."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < positive_share).astype(np.int8)
    sequences = []
    for _ in range(rows):
        words = rng.integers(corpus.INDEX_FROM, NUM_WORDS, size=int(rng.integers(*lengths)))
        words[rng.random(len(words)) < 0.1] = corpus.OOV_ID
        sequences.append([corpus.START_ID, *words.tolist()])
    return Reviews.from_lists(sequences, labels)


def healthy_splits(seed: int = 0, **changes: Reviews) -> dict[str, Reviews]:
    splits = {
        "train": generated_reviews(200, seed),
        "val": generated_reviews(50, seed + 1),
        "test": generated_reviews(100, seed + 2),
    }
    return {**splits, **changes}


def stored(splits: dict[str, Reviews], tmp_path) -> store.DatasetInfo:
    metadata = store.dataset_metadata(DataConfig(num_words=NUM_WORDS, maxlen=MAXLEN), 0, "generated", "0" * 64)
    return prepare.store_reviews(splits, MAXLEN, metadata, str(tmp_path / "store"))


def described(splits: dict[str, Reviews], tmp_path) -> dict:
    """The statistics of the splits stored under `tmp_path`: their profile and the stored files."""
    dataset = stored(splits, tmp_path)
    return checks.describe_dataset(checks.read_profile(dataset), dataset)


def findings(splits: dict[str, Reviews], tmp_path, config: DataCheckConfig = CONFIG) -> dict[str, list]:
    statistics = described(splits, tmp_path)
    by_level = {"ok": [], "warning": [], "error": []}
    for finding in checks.run_checks(statistics, config):
        by_level[finding.level].append(finding)
    return by_level


def error_line(splits, tmp_path, config: DataCheckConfig = CONFIG) -> str:
    dataset = stored(splits, tmp_path)
    result = checks.check_dataset(checks.read_profile(dataset), dataset, config, None, "no champion yet")
    with pytest.raises(checks.DataCheckFailed) as caught:
        checks.raise_on_failed_checks(result)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("nothing was trained or published")
    return message


def test_healthy_generated_data_passes_every_check_without_warnings(tmp_path):
    result = findings(healthy_splits(), tmp_path)
    assert not result["error"] and not result["warning"]
    assert [finding.check for finding in result["ok"]] == list(checks.ERROR_CHECKS)


def test_statistics_count_lengths_before_padding_truncation_oov_and_labels(tmp_path):
    reviews = Reviews.from_lists([[1, 5, 2, 7], [1] + [4] * 29, [1], [1, 2, 2]], np.array([1, 0, 1, 1]))
    described = SplitStatistics(maxlen=4, num_words=10)
    described.add(reviews)
    split = described.describe()
    assert split["rows"] == 4 and split["labels"] == {"0": 1, "1": 3} and split["positive_share"] == 0.75
    assert split["length"]["min"] == 1 and split["length"]["max"] == 30 and split["length"]["p50"] == 3.5
    assert split["truncated_share"] == 0.25 and split["padded_share"] == 0.5  # 30 > 4; 1 and 3 < 4
    assert split["empty_reviews"] == 1  # only the start id
    assert split["oov_rate"] == pytest.approx(3 / 34) and split["word_ids"] == {"min": 2, "max": 7}
    assert split["length_histogram"][:2] == [3, 1] and sum(split["length_histogram"]) == 4
    assert split["token_counts"][4] == 29 and sum(split["token_counts"]) == 34


def test_too_few_rows_stop_the_run_naming_the_split_and_the_floor(tmp_path):
    line = error_line(healthy_splits(), tmp_path, DataCheckConfig(min_split_rows=60))
    assert line.startswith("data check 'too few rows' failed: val has 50 reviews, fewer than 60 (--min-split-rows)")


def test_a_single_class_split_stops_the_run(tmp_path):
    line = error_line(healthy_splits(train=generated_reviews(200, 7, positive_share=1.0)), tmp_path)
    assert line.startswith("data check 'single class' failed: all 200 reviews of train have label 1")


def _rewrite_stored(dataset: store.DatasetInfo, name: str, change) -> None:
    tokens, labels, metadata = store.read_split(dataset.split_uris[name])
    tokens, labels = change(tokens.astype(np.int32), labels.copy())
    # as int32 ids (a split written by another tool), so that negative ids can be stored at all
    as_int32 = store.to_table(tokens, labels, {"maxlen": metadata["maxlen"]})
    as_int32 = as_int32.replace_schema_metadata({store.METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    pq.write_table(as_int32, dataset.split_uris[name])


def _stored_error(tmp_path, name: str, change) -> str:
    splits = healthy_splits()
    dataset = stored(splits, tmp_path)
    _rewrite_stored(dataset, name, change)
    result = checks.check_dataset(checks.read_profile(dataset), dataset, CONFIG, None, "no champion yet")
    with pytest.raises(checks.DataCheckFailed) as caught:
        checks.raise_on_failed_checks(result)
    return str(caught.value)


def _label_two(tokens, labels):
    labels[:3] = 2
    return tokens, labels


def test_labels_outside_0_1_in_a_stored_split_stop_the_run(tmp_path):
    line = _stored_error(tmp_path, "test", _label_two)
    assert line.startswith("data check 'labels outside {0, 1}' failed: test has labels 2 (3 reviews)")


@pytest.mark.parametrize(
    "shift, words",
    [
        (NUM_WORDS, f"ids 0..{2 * NUM_WORDS - 1}, outside [0, {NUM_WORDS})"),
        (-NUM_WORDS, f"ids -{NUM_WORDS}..{NUM_WORDS - 1}, outside [0, {NUM_WORDS})"),
    ],
)
def test_ids_outside_the_vocabulary_in_a_stored_split_stop_the_run(shift, words, tmp_path):
    def shifted(tokens, labels):
        tokens[0, -1] = NUM_WORDS - 1 + shift if shift > 0 else shift
        return tokens, labels

    line = _stored_error(tmp_path, "train", shifted)
    assert line.startswith("data check 'ids outside [0, num_words)' failed: train holds ") and words in line


def test_a_test_set_repeating_the_training_set_stops_the_run_with_the_numbers(tmp_path):
    splits = healthy_splits()
    test = splits["train"].take(np.arange(60))  # 60 of 100 test reviews copied from train
    splits["test"] = Reviews(
        np.concatenate([test.ids, splits["test"].take(np.arange(40)).ids]),
        np.concatenate([test.offsets, test.offsets[-1] + splits["test"].take(np.arange(40)).offsets[1:]]),
        np.concatenate([test.labels, splits["test"].labels[:40]]),
    )
    line = error_line(splits, tmp_path)
    assert line.startswith(
        "data check 'train/test overlap' failed: 60 of 100 test reviews (60.00 %) repeat a "
        "train or val review, more than 2.00 % (--max-overlap)"
    )


def test_overlap_at_the_limit_passes_and_counts_val_as_training(tmp_path):
    splits = healthy_splits()
    repeated = Reviews.from_lists(
        review_lists(splits["val"].take([0])) + review_lists(splits["test"].take(np.arange(1, 100))),
        splits["test"].labels,
    )
    result = findings({**splits, "test": repeated}, tmp_path, DataCheckConfig(min_split_rows=20, max_overlap=0.01))
    assert not result["error"]
    statistics = described({**splits, "test": repeated}, tmp_path)
    assert statistics["duplicates"]["test_in_training"] == {"rows": 1, "share": 0.01}
    assert statistics["duplicates"]["across"]["val/test"]["rows"] == 1


def test_several_failed_checks_are_named_on_one_line(tmp_path):
    splits = healthy_splits(train=generated_reviews(200, 7, positive_share=0.0))
    line = error_line(splits, tmp_path, DataCheckConfig(min_split_rows=60))
    assert line.startswith(
        "data check 'single class' failed: all 200 reviews of train have label 0 (also failed: too few rows)"
    )


def test_unusual_data_is_a_warning_not_an_error(tmp_path):
    train = generated_reviews(200, 0, positive_share=0.1)
    duplicated = Reviews.from_lists(review_lists(train)[:190] + review_lists(train)[:10], train.labels)
    empty = Reviews.from_lists([[corpus.START_ID], *review_lists(generated_reviews(49, 1))], np.arange(50) % 2)
    result = findings(healthy_splits(train=duplicated, val=empty), tmp_path)
    assert not result["error"]
    messages = {(finding.check, finding.message) for finding in result["warning"]}
    positive = f"{100 * np.mean(duplicated.labels):.2f} %"
    assert ("label balance", f"train is {positive} positive") in messages
    assert ("label balance across splits", f"val is 50.00 % positive, train {positive}") in messages
    assert ("duplicates", "10 reviews of train (5.00 %) repeat another review of it") in messages
    assert ("empty reviews", "1 reviews of val have no word") in messages


def test_a_vocabulary_leaving_most_words_unknown_is_a_warning(tmp_path):
    unknown = Reviews.from_lists([[corpus.START_ID] + [corpus.OOV_ID] * 8 + [5]] * 50, np.arange(50) % 2)
    messages = {f.check: f.message for f in findings(healthy_splits(val=unknown), tmp_path)["warning"]}
    assert messages["OOV rate"] == f"88.89 % of the words of val are out of the {NUM_WORDS}-word vocabulary"


# --- drift ------------------------------------------------------------------------------------------


def statistics_of(splits, tmp_path) -> dict:
    return described(splits, tmp_path / str(len(list(tmp_path.iterdir()))))


def test_the_same_distribution_does_not_drift(tmp_path):
    measured = drift.compare_statistics(
        statistics_of(healthy_splits(0), tmp_path), statistics_of(healthy_splits(10), tmp_path), max_drift=0.1
    )
    assert not measured["drifted"] and all(0 <= value < 0.1 for value in measured["distances"].values())


@pytest.mark.parametrize(
    "measure, changed",
    [
        ("length", lambda: {"train": generated_reviews(200, 5, lengths=(80, 200))}),
        (
            "label_balance",
            lambda: {
                "train": generated_reviews(200, 5, positive_share=0.9),
                "test": generated_reviews(100, 6, positive_share=0.9),
            },
        ),
    ],
)
def test_drift_is_measured_per_distribution(measure, changed, tmp_path):
    reference = statistics_of(healthy_splits(0), tmp_path)
    measured = drift.compare_statistics(reference, statistics_of(healthy_splits(0, **changed()), tmp_path), 0.1)
    assert measure in measured["drifted"] and measured["distances"][measure] > 0.1
    assert (
        measured["reference_dataset_key"] == reference["dataset_key"]
        and measured["distance"] == "Jensen-Shannon, base 2"
    )


def test_token_frequency_drift(tmp_path):
    reference = statistics_of(healthy_splits(0), tmp_path)
    current = json.loads(json.dumps(reference))
    for split in current["splits"].values():  # every word becomes the oov id
        split["token_counts"] = [0, 0, sum(split["token_counts"])] + [0] * (NUM_WORDS - 3)
    measured = drift.compare_statistics(reference, current, 0.1)
    assert measured["drifted"] == ["token_frequency"] and measured["oov_rate"]["current"] == 1.0


def test_statistics_of_another_version_are_refused(tmp_path):
    reference = statistics_of(healthy_splits(0), tmp_path)
    with pytest.raises(DataError, match="cannot compare data statistics of versions"):
        drift.compare_statistics({**reference, "statistics_version": 0}, reference, 0.1)
    older = {**reference, "statistics_version": 0}
    assert drift.drift_against(older, reference, 0.1, "the champion's data set x") == (
        None,
        f"the champion's data set x has statistics of another version than {drift.STATISTICS_VERSION}",
    )
    assert drift.drift_against(None, reference, 0.1, "no champion yet") == (None, "no champion yet")


def test_drift_is_measured_only_against_a_champion_of_another_data_set(tmp_path):
    root = str(tmp_path / "store")
    assert drift.champion_statistics(gate.read_champion(root)[0], root, "abc") == (None, "no champion yet")
    splits = healthy_splits()
    dataset = stored(splits, tmp_path)
    checks.check_dataset(checks.read_profile(dataset), dataset, CONFIG, None, "")
    fs.write_json(layout.champion_uri(root), champion_record(f"{root}/runs/gone", dataset.key))
    assert drift.champion_statistics(gate.read_champion(root)[0], root, dataset.key) == (
        None,
        "the champion was trained on this data set",
    )
    reference, note = drift.champion_statistics(gate.read_champion(root)[0], root, "another")
    assert reference["dataset_key"] == dataset.key and note == f"the champion's data set {dataset.key}"
    fs.write_json(layout.champion_uri(root), champion_record(f"{root}/runs/old", "old"))
    assert drift.champion_statistics(gate.read_champion(root)[0], root, "another") == (
        None,
        "the champion's data set old has no data_checks.json",
    )


# --- files, report, plots ---------------------------------------------------------------------------


def test_statistics_are_kept_beside_the_splits_and_written_into_the_run(tmp_path):
    splits = healthy_splits()
    dataset = stored(splits, tmp_path)
    reference = statistics_of(healthy_splits(3, train=generated_reviews(200, 4, lengths=(100, 300))), tmp_path)
    result = checks.check_dataset(checks.read_profile(dataset), dataset, CONFIG, reference, "the champion's data set x")
    beside = fs.read_json(fs.join(dataset.uri, layout.CHECKS_NAME))
    assert beside == {"statistics": json.loads(json.dumps(result.statistics))}
    checks.write_run_files(result, tmp_path / "run")
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        "data_checks.json",
        "data_labels.png",
        "data_lengths.png",
    ]
    written = json.loads((tmp_path / "run" / "data_checks.json").read_text())
    assert sorted(written) == ["checks", "drift", "drift_reference", "statistics"]
    assert all(sorted(finding) == ["check", "level", "message"] for finding in written["checks"])
    assert checks.DataCheckResult.model_validate(written) == result  # the file reads back as the result
    section = report.render_data_section(json.loads((tmp_path / "run" / "data_checks.json").read_text()))
    assert section.startswith("## Data") and "| train | 200 |" in section and "OK train/test overlap: passed" in section
    assert "Drift against the champion's data set x (Jensen-Shannon, base 2 distances): " in section
    assert "**drift above 0.1** in length" in section and "![review lengths](data_lengths.png)" in section


def test_the_data_plots_are_pngs(tmp_path):
    statistics = statistics_of(healthy_splits(), tmp_path)
    for draw, name in ((plots.plot_lengths, "lengths.png"), (plots.plot_labels, "labels.png")):
        assert draw(statistics, tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_scoring_batch_is_described_like_a_split_with_its_predictions_as_labels():
    batch = checks.describe_scoring_batch([[1, 5, 2], [1, 7, 7, 9, 2]], np.array([True, False]), 4, 10, "b1")
    split = batch["splits"]["batch"]
    assert batch["dataset_key"] == "b1" and batch["statistics_version"] == drift.STATISTICS_VERSION
    assert split["rows"] == 2 and split["positive_share"] == 0.5 and split["truncated_share"] == 0.5
    assert split["oov_rate"] == pytest.approx(2 / 6)  # two of the six words are out of the vocabulary
    reference = {**batch, "dataset_key": "ref"}
    assert drift.compare_statistics(reference, batch, 0.1)["drifted"] == []


def test_batch_drift_says_why_it_was_not_measured():
    from tasks.scoring.batch import MIN_DRIFT_ROWS, DriftReference, batch_drift

    texts, probabilities = ["a review"] * (MIN_DRIFT_ROWS - 1), np.full(MIN_DRIFT_ROWS - 1, 0.7)
    unknown = DriftReference(None, "not measured: the run has no data_checks.json", 0.1)
    assert batch_drift(None, texts, probabilities, unknown) == {"drift": None, "drift_reference": unknown.note}
    small = DriftReference({"splits": {}}, "the training data", 0.1)
    measured = batch_drift(None, texts, probabilities, small)
    assert measured["drift"] is None and f"{MIN_DRIFT_ROWS - 1:,} reviews, fewer than" in measured["drift_reference"]


def test_the_profile_is_read_only_with_its_recorded_sha256(tmp_path):
    splits = healthy_splits()
    dataset = stored(splits, tmp_path)
    profile = checks.read_profile(dataset)
    described = SplitStatistics(MAXLEN, NUM_WORDS)
    described.add(splits["val"])
    assert profile["splits"]["val"] == json.loads(json.dumps(described.describe()))
    tampered = {**profile, "duplicates": {**profile["duplicates"], "test_in_training": {"rows": 0, "share": 0.0}}}
    assert tampered == profile  # the healthy splits share no review: rewriting the same content is no tampering
    Path(dataset.profile_uri).write_text(json.dumps(tampered, indent=2, sort_keys=True) + "\n")
    assert checks.read_profile(dataset) == profile
    tampered = {**profile, "duplicates": {**profile["duplicates"], "test_in_training": {"rows": 3, "share": 0.03}}}
    Path(dataset.profile_uri).write_text(json.dumps(tampered, indent=2, sort_keys=True) + "\n")
    with pytest.raises(
        StorageError, match=r"profile\.json: sha256 .* differs from the .* recorded when it was written"
    ):
        checks.read_profile(dataset)
    with pytest.raises(DataError, match=f"data set {dataset.key} has no profile; store it again"):
        checks.read_profile(dataset.model_copy(update={"profile_sha256": None}))
