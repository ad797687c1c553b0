"""`python -m tasks.data.compiled` (run by `make install`): every compiled loop of the data stages
run once on a little data, so that numba compiles them into its cache (beside their modules) now,
not in the first run after an install or a change."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tasks.data import corpus, own_reviews, statistics, store, tokenizer


def compile_loops() -> None:
    tokenizer.compile_loops()
    batch = corpus.ReviewBatch(labels=np.zeros(2, np.int8), texts=pa.array(["A  film", "\u0130\u00a0x"]))
    own_reviews.fingerprint_batch(batch, 0, 0.2, 0.2)
    reviews = corpus.Reviews.from_lists([[1, 5, 2], [1]], np.array([0, 1]))
    statistics.SplitStatistics(maxlen=2, num_words=8).add(reviews)
    store.pad_reviews(reviews, 2)
    store.pad_reviews(corpus.Reviews(reviews.ids.astype(np.int32), reviews.offsets, reviews.labels), 2)


if __name__ == "__main__":
    compile_loops()
