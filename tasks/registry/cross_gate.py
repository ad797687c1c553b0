"""Comparing a champion and a candidate trained on different data sets: both score the candidate's raw
test reviews, each through its own vocabulary, so the comparison is on the same reviews.

This needs the raw text in the candidate's test split (the offline corpus keeps it; the canonical
file has none) and a vocabulary on both sides; without them the two are not comparable.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow.parquet as pq

from tasks.data.store import LABEL_COLUMN, TEXT_COLUMN, DatasetInfo
from tasks.data.vocabulary import TextEncoder, parse_vocabulary
from tasks.registry.records import ChampionRecord
from tasks.storage import fs
from tasks.training import evaluation

log = logging.getLogger(__name__)


def test_texts(dataset: DatasetInfo) -> tuple[list[str], np.ndarray] | None:
    """The raw texts and labels of a data set's test split; None when it has no text."""
    table = pq.read_table(io.BytesIO(fs.read_bytes(dataset.split_uris["test"])))
    if TEXT_COLUMN not in table.column_names:
        return None
    return table.column(TEXT_COLUMN).to_pylist(), table.column(LABEL_COLUMN).to_numpy()


def score_across(
    champion: ChampionRecord, candidate_model: str, dataset: DatasetInfo
) -> tuple[evaluation.ClassificationMetrics, evaluation.ClassificationMetrics] | None:
    """Test metrics of the champion and of the candidate (its model file, `dataset` its data set) on the
    candidate's raw test reviews, each through its own vocabulary; None when that is impossible (no
    raw text, a side without a vocabulary), with the reason logged."""
    reviews = test_texts(dataset)
    if reviews is None or dataset.vocabulary_uri is None or not champion.vocabulary_uri:
        log.info("champion and candidate cannot score the same raw reviews (no raw test text or no vocabulary)")
        return None
    texts, labels = reviews
    # Here, not at the top: scoring loads Keras, which the pipeline's process needs only in this rare case.
    from tasks.scoring import scorer

    held = scorer.load_scoring_model("", champion.run_uri, champion.variant)
    champion_metrics = evaluation.classification_metrics(labels, scorer.score_texts(held, texts))
    encoder = TextEncoder.of(parse_vocabulary(fs.read_bytes(dataset.vocabulary_uri), dataset.vocabulary_uri))
    candidate_ids = encoder.encode(texts)
    candidate_metrics = evaluation.classification_metrics(
        labels, evaluation.score(evaluation.load_model(candidate_model), candidate_ids)
    )
    return champion_metrics, candidate_metrics
