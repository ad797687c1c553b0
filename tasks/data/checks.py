"""Know the data before training on it: statistics of every split, checks that stop a bad data set,
and drift against the data the champion was trained on.

Statistics come from the ragged reviews of the split stage (lengths before padding, whole reviews
for duplicates) and from the stored Parquet splits (the ids and labels training really reads).
Everything is numpy; the only Python loop makes one `bytes` key per review to find exact duplicates.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tasks.config import DataCheckConfig
from tasks.data.corpus import OOV_ID, START_ID, Reviews
from tasks.data.store import SPLITS, DatasetInfo, read_split
from tasks.errors import DataError
from tasks.registry.gate import read_champion
from tasks.reporting import plots
from tasks.storage import fs

log = logging.getLogger(__name__)

CHECKS_NAME = "data_checks.json"  # in the data set folder and in every run
LENGTHS_PLOT = "data_lengths.png"
LABELS_PLOT = "data_labels.png"
STATISTICS_VERSION = 1  # bump when the statistics change shape, so drift never compares unlike with unlike
# Length histogram bins shared by every data set, so two data sets compare bin by bin: 20 ids wide
# up to 1,000, then one bin for everything longer (offline corpus: median 175 ids, p99 915, max 2,474).
LENGTH_BIN_WIDTH = 20
LENGTH_BIN_LIMIT = 1000
LENGTH_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
LABELS = (0, 1)
# The training part of a data set: test reviews found in it are the train/test overlap.
TRAINING_PART = ("train", "val")
# The checks that stop the run, in the order they are reported.
ERROR_CHECKS = (
    "too few rows",
    "single class",
    "labels outside {0, 1}",
    "ids outside [0, num_words)",
    "train/test overlap",
)
# Warnings: logged and reported, the run goes on. The offline corpus triggers none of them.
MIN_CLASS_SHARE = 0.25  # IMDB is balanced 50/50; a split with under a quarter of one class is skewed
MAX_BALANCE_GAP = 0.1  # val or test positive share this far from train's: the splits are not alike
MAX_DUPLICATE_SHARE = 0.01  # repeated reviews within a split (offline corpus: 0.29 % of train)
MAX_SPLIT_OVERLAP = 0.01  # train/val or val/test overlap above this (offline corpus: 0.48 % and 0.08 %)
MAX_OOV_RATE = 0.5  # over half the words unknown: the vocabulary does not fit (offline corpus, 500 words: 0.31)


class Finding(BaseModel):
    """One check's outcome: `error` stops the run, `warning` is logged and reported."""

    check: str
    level: str  # "ok", "warning" or "error"
    message: str


class DataCheckFailed(DataError):
    """A data set failed a check that stops the run before training."""


def review_keys(reviews: Reviews) -> list[bytes]:
    """Each review's ids as bytes: equal keys, identical reviews (no hash that could collide)."""
    ids = np.ascontiguousarray(reviews.ids, dtype=np.int32)
    return [ids[start:end].tobytes() for start, end in itertools.pairwise(reviews.offsets.tolist())]


def length_histogram(lengths: np.ndarray) -> list[int]:
    """Counts per LENGTH_BIN_WIDTH-wide bin from 0; the last bin holds every length >= LENGTH_BIN_LIMIT."""
    last = LENGTH_BIN_LIMIT // LENGTH_BIN_WIDTH
    return np.bincount(np.minimum(lengths // LENGTH_BIN_WIDTH, last), minlength=last + 1).tolist()


def describe_split(reviews: Reviews, maxlen: int, num_words: int) -> dict:
    """Rows, labels, lengths before padding (in ids, the start id included: what `maxlen` cuts),
    truncated and padded shares, empty reviews, OOV rate and range of the word ids, token counts."""
    lengths = reviews.lengths
    is_word = reviews.ids != START_ID
    words = reviews.ids[is_word]
    rows = len(reviews)
    row_of_id = np.repeat(np.arange(rows), lengths)
    words_per_review = np.bincount(row_of_id[is_word], minlength=rows)
    labels, label_counts = np.unique(reviews.labels, return_counts=True)
    quantiles = np.quantile(lengths, LENGTH_QUANTILES) if rows else [0.0] * len(LENGTH_QUANTILES)
    return {
        "rows": rows,
        "labels": {str(int(label)): int(count) for label, count in zip(labels, label_counts, strict=True)},
        "positive_share": float(np.mean(reviews.labels == 1)) if rows else 0.0,
        "length": {
            "min": int(lengths.min()) if rows else 0,
            "mean": float(lengths.mean()) if rows else 0.0,
            "max": int(lengths.max(initial=0)),
            **{f"p{round(q * 100):02d}": float(v) for q, v in zip(LENGTH_QUANTILES, quantiles, strict=True)},
        },
        "length_histogram": length_histogram(lengths),
        "truncated_share": float(np.mean(lengths > maxlen)) if rows else 0.0,
        "padded_share": float(np.mean(lengths < maxlen)) if rows else 0.0,
        "empty_reviews": int(np.sum(words_per_review == 0)),
        "oov_rate": float(np.mean(words == OOV_ID)) if words.size else 0.0,
        "word_ids": {"min": int(words.min()), "max": int(words.max())} if words.size else None,
        # How often each word id occurs (ids beyond the vocabulary, which no split holds, in the last
        # slot): the token-frequency distribution drift compares.
        "token_counts": np.bincount(np.clip(words, 0, num_words - 1), minlength=num_words).tolist(),
    }


def describe_overlap(splits: dict[str, Reviews]) -> dict:
    """Exact duplicates within each split, and reviews of one split found in another."""
    keys = {name: review_keys(splits[name]) for name in SPLITS}
    sets = {name: set(keys[name]) for name in SPLITS}
    within = {
        name: {
            "rows": len(keys[name]) - len(sets[name]),
            "share": (len(keys[name]) - len(sets[name])) / max(len(keys[name]), 1),
        }
        for name in SPLITS
    }
    across = {}
    for first, second in itertools.combinations(SPLITS, 2):
        repeated = sum(key in sets[first] for key in keys[second])
        across[f"{first}/{second}"] = {"rows": repeated, "share": repeated / max(len(keys[second]), 1)}
    training = set().union(*(sets[name] for name in TRAINING_PART))
    in_training = sum(key in training for key in keys["test"])
    return {
        "within": within,
        "across": across,
        "test_in_training": {"rows": in_training, "share": in_training / max(len(keys["test"]), 1)},
    }


def describe_stored(dataset: DatasetInfo) -> dict[str, dict]:
    """What training will read: per stored split, rows, the range of its ids and its label values."""
    stored = {}
    for name in SPLITS:
        tokens, labels, _ = read_split(dataset.split_uris[name], expected_maxlen=int(dataset.metadata["maxlen"]))
        values, counts = np.unique(labels, return_counts=True)
        stored[name] = {
            "uri": dataset.split_uris[name],
            "rows": len(labels),
            "min_id": int(tokens.min()) if tokens.size else 0,
            "max_id": int(tokens.max()) if tokens.size else 0,
            "labels": {str(int(value)): int(count) for value, count in zip(values, counts, strict=True)},
        }
    return stored


def describe_dataset(splits: dict[str, Reviews], dataset: DatasetInfo) -> dict:
    """The statistics of one data set: every split (ragged), their overlap, and the stored splits."""
    maxlen, num_words = int(dataset.metadata["maxlen"]), int(dataset.metadata["num_words"])
    return {
        "statistics_version": STATISTICS_VERSION,
        "dataset_key": dataset.key,
        "num_words": num_words,
        "maxlen": maxlen,
        "length_bins": {"width": LENGTH_BIN_WIDTH, "limit": LENGTH_BIN_LIMIT},
        "splits": {name: describe_split(splits[name], maxlen, num_words) for name in SPLITS},
        "duplicates": describe_overlap(splits),
        "stored": describe_stored(dataset),
    }


def describe_scoring_batch(
    word_ids: list[list[int]], predicted: np.ndarray, maxlen: int, num_words: int, batch_key: str
) -> dict:
    """A scoring batch's statistics in `describe_dataset`'s shape: one split, `batch`, whose labels are
    the predicted ones, so `compare_statistics` against a training data set measures drift of the
    input (lengths, token frequencies, OOV rate) and of the predicted-positive rate."""
    reviews = Reviews.from_lists(word_ids, np.asarray(predicted, dtype=np.int8))
    return {
        "statistics_version": STATISTICS_VERSION,
        "dataset_key": batch_key,
        "num_words": num_words,
        "maxlen": maxlen,
        "length_bins": {"width": LENGTH_BIN_WIDTH, "limit": LENGTH_BIN_LIMIT},
        "splits": {"batch": describe_split(reviews, maxlen, num_words)},
    }


def _share(part: float) -> str:
    return f"{100 * part:.2f} %"


def check_errors(statistics: dict, config: DataCheckConfig) -> list[Finding]:
    """The checks that stop the run: too few rows or a single class in a split, labels outside
    {0, 1} or ids outside [0, num_words) in a stored split, train/test overlap above the limit."""
    num_words, findings = statistics["num_words"], []
    for name, stored in statistics["stored"].items():
        if stored["rows"] < config.min_split_rows:
            findings.append(
                Finding(
                    check="too few rows",
                    level="error",
                    message=f"{name} has {stored['rows']} reviews, fewer than {config.min_split_rows} "
                    "(--min-split-rows)",
                )
            )
        foreign = sorted(set(stored["labels"]) - {str(label) for label in LABELS}, key=int)
        if foreign:
            findings.append(
                Finding(
                    check="labels outside {0, 1}",
                    level="error",
                    message=f"{name} has labels {', '.join(foreign)} "
                    f"({sum(stored['labels'][label] for label in foreign)} reviews) in {stored['uri']}",
                )
            )
        elif len(stored["labels"]) == 1:
            ((label, count),) = stored["labels"].items()
            findings.append(
                Finding(
                    check="single class", level="error", message=f"all {count} reviews of {name} have label {label}"
                )
            )
        if stored["rows"] and not 0 <= stored["min_id"] <= stored["max_id"] < num_words:
            findings.append(
                Finding(
                    check="ids outside [0, num_words)",
                    level="error",
                    message=f"{name} holds ids {stored['min_id']}..{stored['max_id']}, "
                    f"outside [0, {num_words}), in {stored['uri']}",
                )
            )
    overlap = statistics["duplicates"]["test_in_training"]
    if overlap["share"] > config.max_overlap:
        findings.append(
            Finding(
                check="train/test overlap",
                level="error",
                message=f"{overlap['rows']} of {statistics['stored']['test']['rows']} test reviews "
                f"({_share(overlap['share'])}) repeat a train or val review, more than "
                f"{_share(config.max_overlap)} (--max-overlap)",
            )
        )
    return findings


def check_warnings(statistics: dict) -> list[Finding]:
    """What looks unusual without stopping the run: skewed or unlike label balance, duplicates,
    overlap between other splits, empty reviews, a vocabulary that leaves most words unknown."""
    findings = [finding for name in statistics["splits"] for finding in _split_warnings(name, statistics)]
    for pair in ("train/val", "val/test"):
        across = statistics["duplicates"]["across"][pair]
        first, second = pair.split("/")
        if across["share"] > MAX_SPLIT_OVERLAP:
            message = f"{across['rows']} reviews of {second} ({_share(across['share'])}) repeat a review of {first}"
            findings.append(Finding(check=f"{pair} overlap", level="warning", message=message))
    return findings


def _split_warnings(name: str, statistics: dict) -> list[Finding]:
    split, within = statistics["splits"][name], statistics["duplicates"]["within"][name]
    share, train_share = split["positive_share"], statistics["splits"]["train"]["positive_share"]
    candidates = [
        (
            "label balance",
            bool(split["rows"]) and not MIN_CLASS_SHARE <= share <= 1 - MIN_CLASS_SHARE,
            f"{name} is {_share(share)} positive",
        ),
        (
            "label balance across splits",
            name != "train" and abs(share - train_share) > MAX_BALANCE_GAP,
            f"{name} is {_share(share)} positive, train {_share(train_share)}",
        ),
        (
            "duplicates",
            within["share"] > MAX_DUPLICATE_SHARE,
            f"{within['rows']} reviews of {name} ({_share(within['share'])}) repeat another review of it",
        ),
        ("empty reviews", bool(split["empty_reviews"]), f"{split['empty_reviews']} reviews of {name} have no word"),
        (
            "OOV rate",
            split["oov_rate"] > MAX_OOV_RATE,
            f"{_share(split['oov_rate'])} of the words of {name} are out of the "
            f"{statistics['num_words']}-word vocabulary",
        ),
    ]
    return [Finding(check=check, level="warning", message=message) for check, unusual, message in candidates if unusual]


def run_checks(statistics: dict, config: DataCheckConfig) -> list[Finding]:
    """Every check's finding; a stopping check with nothing to say is listed as `ok`."""
    findings = check_errors(statistics, config) + check_warnings(statistics)
    named = {finding.check for finding in findings}
    return findings + [
        Finding(check=check, level="ok", message="passed") for check in ERROR_CHECKS if check not in named
    ]


# --- drift --------------------------------------------------------------------------------------


def _total(statistics: dict, field: str) -> np.ndarray:
    """A per-split count vector summed over every split."""
    return np.sum([np.asarray(split[field], dtype=np.float64) for split in statistics["splits"].values()], axis=0)


def _aligned(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = max(len(first), len(second))
    return np.pad(first, (0, size - len(first))), np.pad(second, (0, size - len(second)))


def _js_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Jensen-Shannon distance of two count vectors, base 2: 0 for the same distribution, 1 for disjoint ones."""
    first, second = _aligned(first, second)
    if not first.sum() or not second.sum():
        return 1.0
    from scipy.spatial.distance import jensenshannon  # on first use, not when the module loads

    return float(jensenshannon(first, second, base=2))


def _label_counts(statistics: dict) -> np.ndarray:
    return np.array(
        [sum(split["labels"].get(str(label), 0) for split in statistics["splits"].values()) for label in LABELS],
        dtype=np.float64,
    )


def compare_statistics(reference: dict, current: dict, max_drift: float) -> dict:
    """Drift of `current` against `reference` (two `describe_dataset` results, whole data sets):
    Jensen-Shannon distances of the length histograms, of the token frequencies (word ids are
    frequency ranks, so this compares vocabularies' shapes and OOV shares) and of the label balance,
    plus the plain numbers behind them. `drifted` names every distance above `max_drift`.

    Refuses statistics of another STATISTICS_VERSION (different bins would compare unlike with unlike).
    """
    versions = {reference.get("statistics_version"), current.get("statistics_version")}
    if versions != {STATISTICS_VERSION}:
        raise DataError(f"cannot compare data statistics of versions {sorted(map(str, versions))}")
    distances = {
        "length": _js_distance(_total(reference, "length_histogram"), _total(current, "length_histogram")),
        "token_frequency": _js_distance(_total(reference, "token_counts"), _total(current, "token_counts")),
        "label_balance": _js_distance(_label_counts(reference), _label_counts(current)),
    }
    return {
        "reference_dataset_key": reference["dataset_key"],
        "dataset_key": current["dataset_key"],
        "distance": "Jensen-Shannon, base 2",
        "distances": distances,
        "max_drift": max_drift,
        "drifted": [name for name, value in distances.items() if value > max_drift],
        "positive_share": {"reference": _positive_share(reference), "current": _positive_share(current)},
        "mean_length": {"reference": _mean_length(reference), "current": _mean_length(current)},
        "oov_rate": {"reference": _oov_rate(reference), "current": _oov_rate(current)},
    }


def _positive_share(statistics: dict) -> float:
    counts = _label_counts(statistics)
    return float(counts[1] / counts.sum()) if counts.sum() else 0.0


def _mean_length(statistics: dict) -> float:
    splits = statistics["splits"].values()
    return float(sum(s["length"]["mean"] * s["rows"] for s in splits) / max(sum(s["rows"] for s in splits), 1))


def _oov_rate(statistics: dict) -> float:
    counts = _total(statistics, "token_counts")
    return float(counts[OOV_ID] / counts.sum()) if counts.sum() else 0.0


# --- the stage ----------------------------------------------------------------------------------


def run_statistics(run_uri: str) -> tuple[dict | None, str]:
    """The statistics of the data set a published run trained on, and what they are (or why none)."""
    uri = fs.join(run_uri, CHECKS_NAME)
    if not fs.exists(uri):
        return None, f"not measured: {run_uri} has no {CHECKS_NAME} (published before data checks)"
    statistics = fs.read_json(uri)["statistics"]
    return statistics, f"the training data of {run_uri} (data set {statistics['dataset_key']})"


def champion_statistics(storage_root: str, dataset_key: str) -> tuple[dict | None, str]:
    """The statistics of the champion's data set when it was trained on another one, and why not
    otherwise (no champion, the same data set, or a champion published before statistics existed)."""
    record, _ = read_champion(storage_root)
    if record is None:
        return None, "no champion yet"
    if record.dataset_key == dataset_key:
        return None, "the champion was trained on this data set"
    for uri in (
        fs.join(record.run_uri, CHECKS_NAME),
        fs.join(storage_root, "data", record.dataset_key, CHECKS_NAME),
    ):
        if fs.exists(uri):
            return fs.read_json(uri)["statistics"], f"the champion's data set {record.dataset_key}"
    return None, f"the champion's data set {record.dataset_key} has no {CHECKS_NAME}"


def check_dataset(
    splits: dict[str, Reviews],
    dataset: DatasetInfo,
    config: DataCheckConfig,
    reference: dict | None,
    reference_note: str,
) -> dict:
    """Statistics, every check's finding and drift against `reference` (None: not measured, for
    the reason in `reference_note`); writes the statistics beside the stored splits.

    Does not raise for failed checks: `raise_on_failed_checks(result)` does, once the result is shown.
    """
    statistics = describe_dataset(splits, dataset)
    _keep_beside_splits(dataset, statistics)
    findings = run_checks(statistics, config)
    drift = (
        compare_statistics(reference, statistics, config.max_drift)
        if reference is not None and reference.get("statistics_version") == STATISTICS_VERSION
        else None
    )
    if reference is not None and drift is None:
        reference_note += f" has statistics of another version than {STATISTICS_VERSION}"
    for finding in findings:
        if finding.level != "ok":
            log.log(
                logging.ERROR if finding.level == "error" else logging.WARNING,
                "data check %s: %s",
                finding.check,
                finding.message,
            )
    if drift and drift["drifted"]:
        log.warning("data drift against %s: %s", reference_note, _describe_drift(drift))
    return {
        "statistics": statistics,
        "checks": [finding.model_dump() for finding in findings],
        "drift": drift,
        "drift_reference": reference_note,
    }


def _describe_drift(drift: dict) -> str:
    return ", ".join(
        f"{name} {value:.4f}{' > ' + format(drift['max_drift'], 'g') if name in drift['drifted'] else ''}"
        for name, value in drift["distances"].items()
    )


def _keep_beside_splits(dataset: DatasetInfo, statistics: dict) -> None:
    """`data_checks.json` in the data set folder: written when missing or no longer what the
    stored data gives (statistics code changed), so a reused data set keeps its statistics."""
    uri = fs.join(dataset.uri, CHECKS_NAME)
    payload = {"statistics": statistics}
    if not fs.exists(uri) or fs.read_json(uri) != payload:
        fs.write_json(uri, payload)


def write_run_files(result: dict, run_dir: Path) -> None:
    """The run's `data_checks.json` and its plots: review lengths per split, label balance."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fs.write_json(str(run_dir / CHECKS_NAME), result)
    plots.plot_lengths(result["statistics"], run_dir / LENGTHS_PLOT)
    plots.plot_labels(result["statistics"], run_dir / LABELS_PLOT)


def raise_on_failed_checks(result: dict) -> None:
    """Raises DataCheckFailed naming the first failed check and its numbers, and the other failed ones."""
    errors = [finding for finding in result["checks"] if finding["level"] == "error"]
    if errors:
        others = ", ".join(error["check"] for error in errors[1:])
        raise DataCheckFailed(
            f"data check '{errors[0]['check']}' failed: {errors[0]['message']}"
            + (f" (also failed: {others})" if others else "")
            + "; nothing was trained or published"
        )
