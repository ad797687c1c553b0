"""The bar every RNN variant must reach: logistic regression on bag-of-words counts.

It reads the same stored splits as the RNNs (the same padded ids, so the same vocabulary and the
same truncation to `maxlen`) batch by batch, counts each id per review into sparse counts, and fits
scikit-learn's LogisticRegression on at most `baseline_max_rows` training reviews, far quicker than
any RNN trains. Its val accuracy is what the under-trained guard compares
each RNN attempt with; its test metrics stand beside the variants' in every summary.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.config import BASELINE_MAX_ROWS
from tasks.data.corpus import PAD_ID
from tasks.data.store import DatasetInfo
from tasks.errors import DataError
from tasks.training.evaluation import ClassificationMetrics, classification_metrics
from tasks.training.splits import open_split

if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

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

    # Each review's ids sorted (padding, 0, first): a word's count is the length of its run, and the
    # runs come in the order of a canonical CSR matrix (indices sorted, no duplicates) directly.
    rows, width = token_ids.shape
    ordered = np.sort(token_ids, axis=1)
    run_starts = np.ones(ordered.shape, dtype=bool)
    run_starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    starts = np.flatnonzero(run_starts & (ordered != PAD_ID))
    row_of = starts // width
    ends = np.minimum(np.append(starts[1:], rows * width), (row_of + 1) * width)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=rows))])
    counts = (ends - starts).astype(np.float64)
    return sparse.csr_matrix((counts, ordered.reshape(-1)[starts], indptr), shape=(rows, num_words))


def sample_rows(rows: int, max_rows: int, seed: int) -> np.ndarray | None:
    """The sorted positions of `max_rows` of `rows` rows drawn without replacement from `seed`, or
    None (every row) when there are no more than `max_rows`."""
    if rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))


def count_split(
    uri: str, num_words: int, maxlen: int, max_rows: int | None = None, seed: int = 0
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Sparse id counts (`count_ids`) and labels of the stored split at `uri`, built batch by batch:
    never its whole id matrix. Past `max_rows` rows, only `sample_rows(rows, max_rows, seed)`, in
    file order."""
    from scipy import sparse  # on first use: a cached run never fits the baseline

    counts, labels, start = [], [], 0
    with open_split(uri, expected_maxlen=maxlen) as split:
        kept = None if max_rows is None else sample_rows(split.rows, max_rows, seed)
        if kept is not None:
            log.info("baseline: %d of the %d reviews of %s (baseline_max_rows)", max_rows, split.rows, uri)
        for ids, batch_labels in split.batches():
            end = start + len(ids)
            if kept is not None:
                chosen = kept[np.searchsorted(kept, start) : np.searchsorted(kept, end)] - start
                ids, batch_labels = ids[chosen], batch_labels[chosen]
            counts.append(count_ids(ids, num_words))
            labels.append(batch_labels)
            start = end
    return sparse.vstack(counts, format="csr"), np.concatenate(labels)


def _split_metrics(model: LogisticRegression, uri: str, num_words: int, maxlen: int) -> ClassificationMetrics:
    """Metrics of `model` on the stored split at `uri`, scored batch by batch (1 probability per row kept)."""
    labels, probabilities = [], []
    with open_split(uri, expected_maxlen=maxlen) as split:
        for ids, batch_labels in split.batches():
            probabilities.append(model.predict_proba(count_ids(ids, num_words))[:, 1])
            labels.append(batch_labels)
    return classification_metrics(np.concatenate(labels), np.concatenate(probabilities))


def fit_bag_of_words(dataset: DatasetInfo, max_rows: int = BASELINE_MAX_ROWS) -> BaselineResult:
    """Fits on train (at most `max_rows` reviews of it, sampled with the data set's seed); returns val
    and test metrics, parameters and fit time. Deterministic: the same stored splits always give the
    same numbers."""
    num_words, maxlen = int(dataset.metadata["num_words"]), int(dataset.metadata["maxlen"])
    from sklearn.linear_model import LogisticRegression  # on first use: a cached run never fits it

    started = time.perf_counter()
    train_uri = dataset.split_uris["train"]
    # A seeded sample rather than the first rows: a split written in its source's order (a file
    # sorted by label, or by date) would make its first rows a biased sample, and sampling costs
    # only the reading of the rows it skips. Within the cap it keeps every row, in order.
    seed = int(dataset.metadata["seed"])
    train_counts, train_labels = count_split(train_uri, num_words, maxlen, max_rows, seed)
    if len(np.unique(train_labels)) < 2:
        raise DataError(f"{train_uri}: every training review has the same label; nothing to learn")
    model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=MAX_ITERATIONS).fit(train_counts, train_labels)
    del train_counts  # the val and test splits are scored batch by batch, without it
    metrics = {name: _split_metrics(model, dataset.split_uris[name], num_words, maxlen) for name in ("val", "test")}
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
