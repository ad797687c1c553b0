"""Where everything lives under a storage root (a path, `file://` or `s3://` URI): every folder and
file name defined once. A run is assembled under the work dir with the same names, then published
as it is.

    <root>/                                  DEFAULT_ROOT unless told otherwise
      data/<dataset_key>/                    a stored data set: <split>.parquet, vocabulary.json,
                                             data_checks.json
      runs/<run_id>/                         a published run: manifest.json (written last),
                                             report.md, model_card.md, metrics.json, comparison.png,
                                             sweep.png, data_checks.json, data_lengths.png,
                                             data_labels.png, vocabulary.json, and per variant
                                             <variant>/model.keras, history.json, metrics.json,
                                             loss.png, accuracy.png
      champion.json                          the champion record
      champion-history/                      every change to it, one object each
      champion-decisions/<run_id>.json       every run's final gate verdict
      predictions/<batch_id>/                a scored batch: predictions.parquet, summary.json,
                                             manifest.json
      cache/prefect/                         Prefect's cached stage results
      cache/training/<key>/<variant>/        trained variants (model and history) runs reuse

The local scratch of the work dir is laid out here too (TRAINING_SCRATCH_FOLDER).
"""

from __future__ import annotations

from tasks.storage import fs

# Relative to the working directory: the project's folder when run through `make`.
DEFAULT_ROOT = "outputs"

# Folders under the root.
DATA_FOLDER = "data"
RUNS_FOLDER = "runs"
HISTORY_FOLDER = "champion-history"
DECISIONS_FOLDER = "champion-decisions"
PREDICTIONS_FOLDER = "predictions"
CACHE_FOLDER = "cache"
PREFECT_CACHE_FOLDER = "prefect"
TRAINING_CACHE_FOLDER = "training"
SPLIT_PLANS_FOLDER = "splits"
CHAMPION_NAME = "champion.json"

# In a data set's folder, and (the vocabulary and the data checks) in every run's too.
SPLIT_SUFFIX = ".parquet"
VOCABULARY_NAME = "vocabulary.json"
CHECKS_NAME = "data_checks.json"
PROFILE_NAME = "profile.json"  # the ragged reviews' statistics, measured while storing
ASSIGNMENT_NAME = "assignment.npy"  # a split plan's split of every source row
WORD_INDEX_NAME = "word_index.json"  # a split plan's words ranked on its training rows

# In a run's folder; the manifest also ends a predictions folder.
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.md"
MODEL_CARD_NAME = "model_card.md"
METRICS_NAME = "metrics.json"  # every variant's and the baseline's in a run; its own in a variant's folder
COMPARISON_PLOT = "comparison.png"
SWEEP_PLOT = "sweep.png"
LENGTHS_PLOT = "data_lengths.png"
LABELS_PLOT = "data_labels.png"

# In a variant's folder (`<run>/<variant>/`, and its training cache folder).
MODEL_NAME = "model.keras"
TRAINING_HISTORY_NAME = "history.json"
CURVE_PLOTS = {"loss": "loss.png", "accuracy": "accuracy.png"}  # the metric each plot shows

# In a predictions folder.
PREDICTIONS_NAME = "predictions.parquet"
SUMMARY_NAME = "summary.json"

# In the work dir (local scratch, never published): a run is assembled in `<work_dir>/<run_id>/`, a
# training writes its checkpoints in `<work_dir>/training/<key>-<suffix>/`.
TRAINING_SCRATCH_FOLDER = "training"


def dataset_uri(root: str, dataset_key: str) -> str:
    return fs.join(root, DATA_FOLDER, dataset_key)


def split_name(split: str) -> str:
    """A stored split's file name in its data set's folder."""
    return f"{split}{SPLIT_SUFFIX}"


def runs_uri(root: str) -> str:
    return fs.join(root, RUNS_FOLDER)


def run_uri(root: str, run_id: str) -> str:
    return fs.join(runs_uri(root), run_id)


def variant_file(variant: str, name: str) -> str:
    """A file of a variant's folder, relative to its run: what a manifest lists."""
    return f"{variant}/{name}"


def champion_uri(root: str) -> str:
    return fs.join(root, CHAMPION_NAME)


def history_uri(root: str) -> str:
    return fs.join(root, HISTORY_FOLDER)


def decision_uri(root: str, run_id: str) -> str:
    return fs.join(root, DECISIONS_FOLDER, f"{run_id}.json")


def predictions_uri(root: str, batch_id: str) -> str:
    return fs.join(root, PREDICTIONS_FOLDER, batch_id)


def prefect_cache_uri(root: str) -> str:
    return fs.join(root, CACHE_FOLDER, PREFECT_CACHE_FOLDER)


def training_cache_uri(root: str, key: str, variant: str) -> str:
    return fs.join(root, CACHE_FOLDER, TRAINING_CACHE_FOLDER, key, variant)


def split_plan_uri(root: str, key: str) -> str:
    return fs.join(root, CACHE_FOLDER, SPLIT_PLANS_FOLDER, key)
