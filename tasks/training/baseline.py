"""The bar every RNN variant must reach: logistic regression on bag-of-words counts.

It reads the same stored splits as the RNNs (the same padded ids, so the same vocabulary and the
same truncation to `maxlen`), counts each id per review, and fits scikit-learn's
LogisticRegression, far quicker than any RNN trains. Its val accuracy is what the under-trained guard compares
each RNN attempt with; its test metrics stand beside the variants' in every summary.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.data.corpus import PAD_ID
from tasks.errors import DataError
from tasks.training.evaluation import ClassificationMetrics, classification_metrics

if TYPE_CHECKING:
    from scipy import sparse
from tasks.data.store import DatasetInfo, read_split

log = logging.getLogger(__name__)

DESCRIPTION = "logistic regression on bag-of-words counts of the same ids"
# scikit-learn's default regularisation. On the offline corpus raw counts, log counts and
# presence all reach val 0.79-0.80 with C from 0.1 to 10: the bar does not hinge on tuning.
INVERSE_REGULARISATION = 1.0
MAX_ITERATIONS = 2000  # lbfgs converges in a few hundred on 16,000 reviews x 500 ids


class BaselineResult(BaseModel):
    """The bar: the fitted baseline's val and test metrics, its size and how long it took."""

    model_config = ConfigDict(frozen=True)

    description: str
    parameters: int
    fit_seconds: float
    val: ClassificationMetrics  # its val accuracy is what the under-trained guard compares with
    test: ClassificationMetrics


def count_ids(token_ids: np.ndarray, num_words: int) -> sparse.csr_matrix:
    """(n, num_words) counts of each id per review; padding is not a word and is not counted.

    Raises DataError for ids outside [0, num_words), which no stored split of this pipeline holds.
    """
    if token_ids.size and not 0 <= int(token_ids.min()) <= int(token_ids.max()) < num_words:
        raise DataError(f"ids must lie in [0, {num_words}), found {token_ids.min()}..{token_ids.max()}")
    from scipy import sparse  # on first use: a cached run never fits the baseline

    rows = np.repeat(np.arange(len(token_ids)), token_ids.shape[1])
    ids = token_ids.reshape(-1)
    words = ids != PAD_ID
    counts = sparse.csr_matrix(
        (np.ones(int(words.sum())), (rows[words], ids[words])), shape=(len(token_ids), num_words)
    )
    counts.sum_duplicates()
    return counts


def fit_bag_of_words(dataset: DatasetInfo) -> BaselineResult:
    """Fits on train; returns val and test metrics, parameters and fit time. Deterministic: the same
    stored splits always give the same numbers."""
    num_words, maxlen = int(dataset.metadata["num_words"]), int(dataset.metadata["maxlen"])
    splits = {name: read_split(dataset.split_uris[name], expected_maxlen=maxlen) for name in ("train", "val", "test")}
    from sklearn.linear_model import LogisticRegression  # on first use: a cached run never fits it

    started = time.perf_counter()
    model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=MAX_ITERATIONS)
    train_ids, train_labels, _ = splits["train"]
    if len(np.unique(train_labels)) < 2:
        raise DataError(f"{dataset.split_uris['train']}: every training review has the same label; nothing to learn")
    model.fit(count_ids(train_ids, num_words), train_labels)
    metrics = {
        name: classification_metrics(labels, model.predict_proba(count_ids(ids, num_words))[:, 1])
        for name, (ids, labels, _) in splits.items()
        if name != "train"
    }
    seconds = time.perf_counter() - started
    log.info(
        "baseline (%s): val accuracy %.4f, test accuracy %.4f, fitted in %.1f s",
        DESCRIPTION,
        metrics["val"].accuracy,
        metrics["test"].accuracy,
        seconds,
    )
    return BaselineResult(
        description=DESCRIPTION,
        parameters=num_words + 1,
        fit_seconds=round(seconds, 2),
        val=metrics["val"],
        test=metrics["test"],
    )
