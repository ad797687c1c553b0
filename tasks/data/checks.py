"""Know the data before training on it: statistics of every split, and checks that stop a bad data
set; drift against the data the champion was trained on is measured by tasks/data/drift.py.

Statistics come from the ragged reviews of the split stage (lengths before padding, whole reviews
for duplicates) and from the stored Parquet splits (the ids and labels training really reads).
Everything is numpy; the only Python loop makes one `bytes` key per review to find exact duplicates.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from tasks.config import DataCheckConfig
from tasks.data.corpus import LABELS, Reviews
from tasks.data.drift import STATISTICS_VERSION, drift_against
from tasks.data.statistics import LENGTH_BIN_LIMIT, LENGTH_BIN_WIDTH, SplitStatistics
from tasks.data.store import SPLITS, DatasetInfo, iter_split
from tasks.errors import DataError
from tasks.reporting import plots
from tasks.storage import fs
from tasks.storage.layout import CHECKS_NAME, LABELS_PLOT, LENGTHS_PLOT

log = logging.getLogger(__name__)

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
    level: Literal["ok", "warning", "error"]
    message: str


class DataCheckResult(BaseModel):
    """What the check-data stage found, as the run's data_checks.json holds it: the data set's
    statistics (`describe_dataset`), every check's finding, and drift against the champion's data
    (None when not measured; `drift_reference` says against what, or why not)."""

    statistics: dict
    checks: list[Finding]
    drift: dict | None
    drift_reference: str

    @property
    def failed(self) -> list[Finding]:
        """The findings that stop the run, in the order they are reported."""
        return [finding for finding in self.checks if finding.level == "error"]


class DataCheckFailed(DataError):
    """A data set failed a check that stops the run before training."""


def describe_stored(dataset: DatasetInfo) -> dict[str, dict]:
    """What training will read: per stored split, rows, the range of its ids and its label values,
    read row group by row group."""
    stored = {}
    for name in SPLITS:
        rows, low, high, labels = 0, None, None, np.zeros(256, dtype=np.int64)
        for tokens, group_labels in iter_split(dataset.split_uris[name], int(dataset.metadata["maxlen"])):
            rows += len(group_labels)
            if tokens.size:
                low = int(tokens.min()) if low is None else min(low, int(tokens.min()))
                high = int(tokens.max()) if high is None else max(high, int(tokens.max()))
            labels += np.bincount(group_labels.astype(np.int64) + 128, minlength=256)
        stored[name] = {
            "uri": dataset.split_uris[name],
            "rows": rows,
            "min_id": low or 0,
            "max_id": high or 0,
            "labels": {str(value - 128): int(labels[value]) for value in np.flatnonzero(labels)},
        }
    return stored


def read_profile(dataset: DatasetInfo) -> dict:
    """The ragged reviews' statistics pad-and-store measured, checked against their recorded sha256."""
    if dataset.profile_uri is None or dataset.profile_sha256 is None:
        raise DataError(f"data set {dataset.key} has no profile; store it again (--refresh)")
    return json.loads(fs.read_verified(dataset.profile_uri, dataset.profile_sha256))


def describe_dataset(profile: dict, dataset: DatasetInfo, ingest: dict | None = None) -> dict:
    """The statistics of one data set: every split (ragged, from its profile), their overlap, the
    stored splits, and for one's own reviews what reading the files found (`ingest`: rows read,
    duplicates dropped, texts with conflicting labels)."""
    maxlen, num_words = int(dataset.metadata["maxlen"]), int(dataset.metadata["num_words"])
    ingested = {} if ingest is None else {"ingest": ingest}
    return ingested | {
        "statistics_version": STATISTICS_VERSION,
        "dataset_key": dataset.key,
        "num_words": num_words,
        "maxlen": maxlen,
        "length_bins": {"width": LENGTH_BIN_WIDTH, "limit": LENGTH_BIN_LIMIT},
        "splits": profile["splits"],
        "duplicates": profile["duplicates"],
        "stored": describe_stored(dataset),
    }


def describe_scoring_batch(
    word_ids: list[list[int]], predicted: np.ndarray, maxlen: int, num_words: int, batch_key: str
) -> dict:
    """A scoring batch's statistics in `describe_dataset`'s shape: one split, `batch`, whose labels are
    the predicted ones, so `compare_statistics` against a training data set measures drift of the
    input (lengths, token frequencies, OOV rate) and of the predicted-positive rate."""
    reviews = Reviews.from_lists(word_ids, np.asarray(predicted, dtype=np.int8))
    described = SplitStatistics(maxlen, num_words)
    described.add(reviews)
    return {
        "statistics_version": STATISTICS_VERSION,
        "dataset_key": batch_key,
        "num_words": num_words,
        "maxlen": maxlen,
        "length_bins": {"width": LENGTH_BIN_WIDTH, "limit": LENGTH_BIN_LIMIT},
        "splits": {"batch": described.describe()},
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
    overlap between other splits, empty reviews, a vocabulary that leaves most words unknown, texts
    of one's own reviews that came with both labels."""
    findings = [finding for name in statistics["splits"] for finding in _split_warnings(name, statistics)]
    for pair in ("train/val", "val/test"):
        across = statistics["duplicates"]["across"][pair]
        first, second = pair.split("/")
        if across["share"] > MAX_SPLIT_OVERLAP:
            message = f"{across['rows']} reviews of {second} ({_share(across['share'])}) repeat a review of {first}"
            findings.append(Finding(check=f"{pair} overlap", level="warning", message=message))
    conflicts = statistics.get("ingest", {}).get("conflicting_labels", 0)
    if conflicts:
        message = f"{conflicts} review text(s) came with both labels; the last one read (latest snapshot) was kept"
        findings.append(Finding(check="conflicting labels", level="warning", message=message))
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


# --- the stage ----------------------------------------------------------------------------------


def check_dataset(
    profile: dict,
    dataset: DatasetInfo,
    config: DataCheckConfig,
    reference: dict | None,
    reference_note: str,
    ingest: dict | None = None,
) -> DataCheckResult:
    """Statistics, every check's finding and drift against `reference` (None: not measured, for
    the reason in `reference_note`); writes the statistics beside the stored splits.

    Does not raise for failed checks: `raise_on_failed_checks(result)` does, once the result is shown.
    """
    statistics = describe_dataset(profile, dataset, ingest)
    _keep_beside_splits(dataset, statistics)
    findings = run_checks(statistics, config)
    drift, reference_note = drift_against(reference, statistics, config.max_drift, reference_note)
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
    return DataCheckResult(statistics=statistics, checks=findings, drift=drift, drift_reference=reference_note)


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


def write_run_files(result: DataCheckResult, run_dir: Path) -> None:
    """The run's `data_checks.json` and its plots: review lengths per split, label balance."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fs.write_json(str(run_dir / CHECKS_NAME), result.model_dump())
    plots.plot_lengths(result.statistics, run_dir / LENGTHS_PLOT)
    plots.plot_labels(result.statistics, run_dir / LABELS_PLOT)


def raise_on_failed_checks(result: DataCheckResult) -> None:
    """Raises DataCheckFailed naming the first failed check and its numbers, and the other failed ones."""
    errors = result.failed
    if errors:
        others = ", ".join(error.check for error in errors[1:])
        raise DataCheckFailed(
            f"data check '{errors[0].check}' failed: {errors[0].message}"
            + (f" (also failed: {others})" if others else "")
            + "; nothing was trained or published"
        )
