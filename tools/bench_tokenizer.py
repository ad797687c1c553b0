"""`make bench ARGS="--section tokenize"`: the tokenize-and-encode pass on the offline corpus.

Times the batch tokenizer (tasks/data/tokenizer.py) splitting, looking up and padding every IMDB
review of the bundled corpus, in CPU seconds of this process (so reviews/s is per core, whatever
else the machine runs), against `corpus.tokenize` (one regular expression per review, the encoding
the tokenizer must reproduce) measured in the same run; and counts the reviews whose ids differ.

It runs the tokenizer's loops in one part, on one core: in the pipeline a batch runs in parts on
every core at once, which takes less time but a little more CPU (the cores share their caches).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tasks.data import corpus, parallel, prepare, sources, store, tokenizer
from tasks.data.split import rank_words

REPEATS = 5  # the best of these: the least disturbed by other processes


def _best_cpu_seconds(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def bench_tokenizer(num_words: int = 500, maxlen: int = 100) -> dict:
    """Reviews per CPU second of the batch tokenizer and of the per-review regular expression, and
    the reviews whose padded ids differ between the two (0 expected)."""
    table = pcsv.read_csv(sources.offline_csv())
    table = table.filter(pc.equal(table["source"], corpus.OFFLINE_CORPUS_SOURCE))
    texts, labels = table["text"].combine_chunks(), table["label"].to_numpy().astype(np.int8)
    word_index = rank_words(tokenizer.count_words(texts))
    ids = prepare.word_ids(word_index, num_words)

    def batch() -> np.ndarray:
        reviews = prepare.encode_texts(texts, ids, labels)
        return store.pad_reviews(reviews, maxlen)

    lookup = {
        word: rank + corpus.INDEX_FROM if rank < num_words - corpus.INDEX_FROM else corpus.OOV_ID
        for word, rank in word_index.items()
    }

    def per_review() -> np.ndarray:
        rows = [
            [corpus.START_ID, *[lookup[w] for w in corpus.tokenize(text) if w in lookup]] for text in texts.to_pylist()
        ]
        return store.pad_reviews(corpus.Reviews.from_lists(rows, labels), maxlen)

    parts, parallel.PARTS = parallel.PARTS, 1
    try:
        batch_seconds = _best_cpu_seconds(batch)
    finally:
        parallel.PARTS = parts
    regex_seconds = _best_cpu_seconds(per_review)
    mismatches = int(np.sum(np.any(batch() != per_review(), axis=1)))
    return {
        "reviews": len(labels),
        "batch_reviews_per_cpu_second": round(len(labels) / batch_seconds),
        "regex_reviews_per_cpu_second": round(len(labels) / regex_seconds),
        "speedup": round(regex_seconds / batch_seconds, 2),
        "mismatched_reviews": mismatches,
    }


if __name__ == "__main__":
    print(bench_tokenizer())
