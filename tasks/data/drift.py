"""Drift: how far a data set, or a batch of reviews to score, has moved from the data a model was
trained on, and where the statistics of that data come from (a published run, the champion's data
set). Statistics are `checks.describe_dataset`'s; distances are Jensen-Shannon, base 2, of count
vectors summed over every split.
"""

from __future__ import annotations

import numpy as np

from tasks.data.corpus import LABELS, OOV_ID
from tasks.errors import DataError
from tasks.registry.records import ChampionRecord
from tasks.storage import fs
from tasks.storage.layout import CHECKS_NAME, dataset_uri

# The shape of the statistics (tasks/data/checks.py describes them, stamped with this): bump when it
# changes, so drift never compares unlike with unlike.
STATISTICS_VERSION = 1


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


def drift_against(
    reference: dict | None, current: dict, max_drift: float, reference_note: str
) -> tuple[dict | None, str]:
    """`compare_statistics(reference, current, max_drift)` and what the reference is; None when there
    is no reference, or when its statistics are of another version (the note then says so)."""
    if reference is None:
        return None, reference_note
    if reference.get("statistics_version") != STATISTICS_VERSION:
        return None, f"{reference_note} has statistics of another version than {STATISTICS_VERSION}"
    return compare_statistics(reference, current, max_drift), reference_note


def run_statistics(run_uri: str) -> tuple[dict | None, str]:
    """The statistics of the data set a published run trained on, and what they are (or why none)."""
    uri = fs.join(run_uri, CHECKS_NAME)
    if not fs.exists(uri):
        return None, f"not measured: {run_uri} has no {CHECKS_NAME} (published before data checks)"
    statistics = fs.read_json(uri)["statistics"]
    return statistics, f"the training data of {run_uri} (data set {statistics['dataset_key']})"


def champion_statistics(record: ChampionRecord | None, storage_root: str, dataset_key: str) -> tuple[dict | None, str]:
    """The statistics of the data set the champion `record` (of `storage_root`) was trained on when
    that is another one than `dataset_key`, and why not otherwise (no champion, the same data set,
    or a champion published before statistics existed)."""
    if record is None:
        return None, "no champion yet"
    if record.dataset_key == dataset_key:
        return None, "the champion was trained on this data set"
    for uri in (
        fs.join(record.run_uri, CHECKS_NAME),
        fs.join(dataset_uri(storage_root, record.dataset_key), CHECKS_NAME),
    ):
        if fs.exists(uri):
            return fs.read_json(uri)["statistics"], f"the champion's data set {record.dataset_key}"
    return None, f"the champion's data set {record.dataset_key} has no {CHECKS_NAME}"
