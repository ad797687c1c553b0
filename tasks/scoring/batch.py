"""Batch scoring: raw reviews from a CSV, Parquet or JSONL file (a path or URI) in, Parquet predictions out.

The input is checked whole before anything is scored (a known format, valid UTF-8, the text column
present with no nulls, labels 0/1); the predictions and a summary are then published create-only
under `<storage>/predictions/<batch_id>/`, each verified, with the manifest last.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import csv as pa_csv
from pyarrow import json as pa_json

from tasks.data import checks, drift
from tasks.data.store import METADATA_KEY
from tasks.errors import DataError
from tasks.registry import publishing
from tasks.scoring.scorer import NEGATIVE, POSITIVE, ScoringModel, score_texts
from tasks.storage import fs
from tasks.storage.layout import PREDICTIONS_NAME, SUMMARY_NAME, predictions_uri
from tasks.training.evaluation import THRESHOLD, classification_metrics

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TEXT_COLUMNS = ("review", "text")  # looked for in this order when no --text-column is given
LABEL_COLUMN = "label"  # when present (0/1), the summary reports accuracy and ROC AUC
# Rows encoded and scored at once: large enough that Keras' per-call overhead vanishes, small enough
# that the progress moves often on a large input.
BATCH_ROWS = 8192
# Drift needs enough reviews that sampling alone stays under the threshold: random batches of the
# offline test split against its training split reach a length distance of 0.17 at 500 reviews,
# 0.12 at 1,000 and 0.08 at 2,000 (token frequency and label balance stay lower); above 5,000 a
# sample describes the batch as well and costs a fixed time.
MIN_DRIFT_ROWS = 2000
DRIFT_SAMPLE_ROWS = 5000


@dataclass(frozen=True)
class ReviewsInput:
    """The checked input: texts, the kept id column (or None: row numbers), the labels when given."""

    texts: list[str]
    ids: pa.Array | None
    id_name: str
    labels: np.ndarray | None


def input_format(uri: str) -> str:
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{uri}: unknown input format {suffix or '(no extension)'}; use .csv, .parquet or .jsonl")
    return FORMATS[suffix]


def read_table(uri: str) -> pa.Table:
    """The input as an Arrow table; DataError for an empty file, bytes that are not UTF-8, or a parse error."""
    kind = input_format(uri)
    raw = fs.read_bytes(uri)
    if not raw.strip():
        raise DataError(f"{uri}: empty file")
    if kind != "parquet":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{uri}: not UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        if kind == "csv":
            return pa_csv.read_csv(io.BytesIO(raw))
        if kind == "jsonl":
            return pa_json.read_json(io.BytesIO(raw))
        return pq.read_table(io.BytesIO(raw))
    except pa.ArrowException as error:
        raise DataError(f"{uri}: cannot read as {kind} ({error})") from None


def check_input(table: pa.Table, uri: str, text_column: str | None, id_column: str | None) -> ReviewsInput:
    """The texts, ids and labels of a table; DataError naming the column or rows at fault."""
    if table.num_rows == 0:
        raise DataError(f"{uri}: no rows to score")
    names = table.column_names
    text_name = text_column or next((name for name in TEXT_COLUMNS if name in names), None)
    if text_name is None or text_name not in names:
        wanted = text_column or " or ".join(TEXT_COLUMNS)
        raise DataError(f"{uri}: no text column {wanted} (columns: {', '.join(names)}); pick one with --text-column")
    texts = _non_null(table, text_name, uri)
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        raise DataError(f"{uri}: text column {text_name} holds {texts.type}, not text")
    if id_column is not None and id_column not in names:
        raise DataError(f"{uri}: no id column {id_column} (columns: {', '.join(names)})")
    ids = None if id_column is None else _non_null(table, id_column, uri)
    labels = None if LABEL_COLUMN not in names else _labels(_non_null(table, LABEL_COLUMN, uri), uri)
    return ReviewsInput(texts.to_pylist(), ids, id_column or "row", labels)


def _non_null(table: pa.Table, name: str, uri: str) -> pa.Array:
    column = table.column(name).combine_chunks()
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        raise DataError(f"{uri}: column {name} has {column.null_count} null(s), the first in row {first}")
    return column


def _labels(column: pa.Array, uri: str) -> np.ndarray:
    if pa.types.is_boolean(column.type) or pa.types.is_integer(column.type):
        labels = column.to_numpy(zero_copy_only=False).astype(np.int64)
        if np.isin(labels, (0, 1)).all():
            return labels
    raise DataError(f"{uri}: column {LABEL_COLUMN} must hold 0 or 1")


def score_reviews(
    scoring: ScoringModel, reviews: ReviewsInput, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Probabilities of every review, `BATCH_ROWS` at a time; `progress(done, total)` after each batch."""
    total = len(reviews.texts)
    parts = []
    for start in range(0, total, BATCH_ROWS):
        parts.append(score_texts(scoring, reviews.texts[start : start + BATCH_ROWS]))
        if progress is not None:
            progress(min(start + BATCH_ROWS, total), total)
    return np.concatenate(parts)


def predictions_table(reviews: ReviewsInput, probabilities: np.ndarray, provenance: dict) -> pa.Table:
    """row (or the id column), probability, label; the model's provenance in the schema metadata."""
    ids = reviews.ids if reviews.ids is not None else pa.array(np.arange(len(probabilities), dtype=np.int64))
    labels = np.where(probabilities > THRESHOLD, POSITIVE, NEGATIVE)
    table = pa.table(
        {reviews.id_name: ids, "probability": pa.array(probabilities, pa.float32()), "label": pa.array(labels)}
    )
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(provenance, sort_keys=True)})


def summarize(reviews: ReviewsInput, probabilities: np.ndarray, provenance: dict, seconds: float) -> dict:
    """Counts, the positive share, throughput, and accuracy/ROC AUC when the input has labels."""
    summary = {
        **provenance,
        "rows": len(probabilities),
        "positive_share": float(np.mean(probabilities > THRESHOLD)),
        "seconds": round(seconds, 3),
        "reviews_per_second": round(len(probabilities) / seconds, 1) if seconds > 0 else None,
    }
    if reviews.labels is not None:
        metrics = classification_metrics(reviews.labels, probabilities)
        summary.update(accuracy=metrics.accuracy, roc_auc=metrics.roc_auc)
    return summary


def write_predictions(local_dir: Path, table: pa.Table, summary: dict) -> None:
    """The batch's files in a local folder, ready to publish."""
    local_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, local_dir / PREDICTIONS_NAME)
    (local_dir / SUMMARY_NAME).write_bytes(fs.json_bytes(summary))


def publish_batch(local_dir: Path, storage_root: str, batch_id: str, details: dict) -> str:
    """Uploads the batch create-only and verified, the manifest last; returns the batch's URI."""
    destination = predictions_uri(storage_root, batch_id)
    publishing.publish_run(local_dir, destination, {"run_id": batch_id, **details})
    return destination


@dataclass(frozen=True)
class DriftReference:
    """What a batch is compared with: the statistics of the model's training data set (None, with
    the reason, when its run has none), and the distance above which the batch drifted."""

    statistics: dict | None
    note: str
    max_drift: float
    batch_key: str = "this batch"  # how the batch is named in the drift's numbers and event


def run_batch(
    scoring: ScoringModel,
    input_uri: str,
    text_column: str | None,
    id_column: str | None,
    reference: DriftReference,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pa.Table, dict]:
    """Reads and checks the input, scores it and measures its drift; returns the predictions table
    and the summary."""
    started = time.perf_counter()
    reviews = check_input(read_table(input_uri), input_uri, text_column, id_column)
    probabilities = score_reviews(scoring, reviews, progress)
    provenance = {"input": input_uri, **scoring.provenance()}
    table = predictions_table(reviews, probabilities, provenance)
    summary = summarize(reviews, probabilities, provenance, time.perf_counter() - started)
    return table, {**summary, **batch_drift(scoring, reviews.texts, probabilities, reference)}


def batch_drift(scoring: ScoringModel, texts: list[str], probabilities: np.ndarray, reference: DriftReference) -> dict:
    """`drift`: the batch against the model's training data (lengths, token frequencies, OOV rate,
    and the predicted-positive rate against the training labels' balance), or None with the reason
    in `drift_reference`."""
    if reference.statistics is None:
        return {"drift": None, "drift_reference": reference.note}
    if len(texts) < MIN_DRIFT_ROWS:
        return {
            "drift": None,
            "drift_reference": f"not measured: {len(texts):,} reviews, fewer than "
            f"{MIN_DRIFT_ROWS:,} (below that, sampling noise alone can pass --max-drift)",
        }
    rows = np.unique(np.linspace(0, len(texts) - 1, min(len(texts), DRIFT_SAMPLE_ROWS)).astype(np.int64))
    spec = scoring.encoder.spec
    current = checks.describe_scoring_batch(
        [scoring.encoder.all_ids(texts[row]) for row in rows],
        probabilities[rows] > THRESHOLD,
        spec.maxlen,
        spec.num_words,
        batch_key=reference.batch_key,
    )
    measured = drift.compare_statistics(reference.statistics, current, reference.max_drift)
    return {"drift": {**measured, "described_rows": len(rows)}, "drift_reference": reference.note}
