"""The split and pad-and-store stages' logic on a resolved source, shared by the flow's stages and
the tools that prepare data without a flow (bench, seeds): one way to turn a source into a data set.

Pad-and-store streams the source once more: each batch is encoded (raw text through the plan's word
index, an imdb.npz's ranks shifted), padded, written to its split's Parquet file in row groups and
described, so memory stays flat whatever the source's size.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from tasks.config import DataConfig
from tasks.data import corpus, reading, statistics, store, tokenizer, vocabulary
from tasks.data.pieces import map_pieces, source_pieces
from tasks.data.sources import SourceInfo
from tasks.data.split import SPLITS, SplitPlan, piece_slices, plan_splits
from tasks.errors import DataError
from tasks.storage import cache_keys, fs
from tasks.storage.layout import PROFILE_NAME, dataset_uri, split_name, split_plan_uri

log = logging.getLogger(__name__)


def dataset_metadata(source: SourceInfo, config: DataConfig, seed: int) -> dict:
    """What the stored data set's key hashes beside its content: the source and the options that shape it."""
    metadata = store.dataset_metadata(config, seed, source.uri, source.sha256)
    return metadata | store.own_reviews_metadata(config) if source.kind == "reviews" else metadata


def plan_key(source: SourceInfo, config: DataConfig, seed: int) -> str:
    """The split plan's key: the source's content, the options that shape the split, and the code."""
    return cache_keys.split_key(source.sha256, config, seed, source.kind == "reviews")


def split_resolved(
    source: SourceInfo, config: DataConfig, seed: int, root: str, dask_address: str | None = None
) -> SplitPlan:
    """The split plan of a resolved source, under `root`'s cache (see tasks/data/split.py)."""
    return plan_splits(source, config, seed, root, plan_key(source, config, seed), dask_address)


def word_ids(word_index: dict[str, int], num_words: int) -> tokenizer.WordIds:
    """Word -> model id of Keras' scheme: rank r as r + 3, ranks at or past num_words - 3 as oov."""
    ceiling = num_words - corpus.INDEX_FROM
    return tokenizer.WordIds(
        {word: rank + corpus.INDEX_FROM if rank < ceiling else corpus.OOV_ID for word, rank in word_index.items()}
    )


def encode_texts(texts: pa.Array | pa.ChunkedArray, ids: tokenizer.WordIds, labels: np.ndarray) -> corpus.Reviews:
    """Each review as the start id and its known words' ids (unknown words skipped, as the canonical
    file skips words never seen in training)."""
    encoded, offsets = ids.encode(texts, corpus.START_ID)
    return corpus.Reviews(encoded, offsets, labels)


def _encoder(source: SourceInfo, plan: SplitPlan, num_words: int) -> Callable[[corpus.ReviewBatch], corpus.Reviews]:
    word_index = plan.word_index()
    if word_index is None:
        return functools.partial(_encode_ranks, num_words=num_words)
    return functools.partial(_encode_texts, ids=word_ids(word_index, num_words))


def _encode_ranks(batch: corpus.ReviewBatch, num_words: int) -> corpus.Reviews:
    if batch.ranks is None:
        raise DataError("a source of raw texts needs a word index to encode them")
    return corpus.encode_ranks(batch.ranks, num_words)


def _encode_texts(batch: corpus.ReviewBatch, ids: tokenizer.WordIds) -> corpus.Reviews:
    if batch.texts is None:
        raise DataError("a source of word ranks has no texts to encode")
    return encode_texts(batch.texts, ids, batch.labels)


def store_splits(
    plan: SplitPlan, source: SourceInfo, config: DataConfig, seed: int, root: str, dask_address: str | None = None
) -> store.DatasetInfo:
    """Pads and stores the plan's splits under `<root>/data/<key>/`, with their profile (statistics)
    and the vocabulary that encodes raw text for them; reuses a complete folder of the same key.

    With `dask_address` and a source of several files, each file is encoded, padded and described
    on a Dask worker into part files under the plan's folder, which are then appended in order:
    the same files, row for row, as here."""
    metadata = dataset_metadata(source, config, seed)
    pieces = source_pieces(source)
    with _SplitFiles(metadata, config.maxlen, source.kind != "npz") as files:
        if dask_address and len(pieces) > 1:
            parts = fs.join(split_plan_uri(root, plan.key), "parts", uuid.uuid4().hex[:12])
            slices = piece_slices(plan.assignment(), plan.piece_rows)
            arguments = [
                (piece, plan, config, rows, metadata, fs.join(parts, f"{index:05d}"))
                for index, (piece, rows) in enumerate(zip(pieces, slices, strict=True))
            ]
            try:
                for encoded in map_pieces(encode_piece, arguments, dask_address):
                    files.append(encoded)
            finally:
                fs.remove_tree(parts)
        else:
            encode = _encoder(source, plan, config.num_words)
            for name, reviews, texts in _encoded_parts(source, config, plan.assignment(), encode):
                files.add(name, reviews, texts)
        return files.publish(root, _vocabulary(source, plan, config))


def encode_piece(
    piece: SourceInfo, plan: SplitPlan, config: DataConfig, assignment: np.ndarray, metadata: dict, folder: str
) -> dict[str, tuple[str, statistics.SplitStatistics]]:
    """One piece of the source encoded, padded and described: each split's part file under `folder`
    and its statistics (runs on a Dask worker)."""
    encode = _encoder(piece, plan, config.num_words)
    with _SplitFiles(metadata, config.maxlen, piece.kind != "npz") as files:
        for name, reviews, texts in _encoded_parts(piece, config, assignment, encode):
            files.add(name, reviews, texts)
        return files.upload_parts(folder)


def store_reviews(
    splits: dict[str, corpus.Reviews],
    maxlen: int,
    metadata: dict,
    root: str,
    words: vocabulary.Vocabulary | None = None,
) -> store.DatasetInfo:
    """Stores reviews already in memory as pad-and-store stores a source's (for tools and tests)."""
    with_text = all(splits[name].texts is not None for name in SPLITS)
    with _SplitFiles(metadata, maxlen, with_text) as files:
        for name in SPLITS:
            texts = pa.array(splits[name].texts, pa.string()) if with_text else None
            files.add(name, splits[name], texts)
        return files.publish(root, words)


def _encoded_parts(
    source: SourceInfo,
    config: DataConfig,
    assignment: np.ndarray,
    encode: Callable[[corpus.ReviewBatch], corpus.Reviews],
) -> Iterator[tuple[str, corpus.Reviews, pa.Array | None]]:
    """The source's reviews batch by batch, encoded, as (split, reviews, raw texts) in the source's
    order (`assignment`: the split of each of its rows)."""
    start = 0
    for batch in reading.read_batches(source, config.text_column, config.label_column, config.cache_dir):
        codes = assignment[start : start + len(batch)]
        start += len(batch)
        reviews = encode(batch)
        for code, name in enumerate(SPLITS):
            rows = np.flatnonzero(codes == code)
            if rows.size:
                texts = None if batch.texts is None else batch.texts.take(pa.array(rows)).cast(pa.string())
                yield name, reviews.take(rows), texts


class _SplitFiles:
    """The three splits' Parquet files written in a scratch folder as reviews arrive, described as
    they go, then published under the data set's key (or a complete folder of that key reused)."""

    def __init__(self, metadata: dict, maxlen: int, with_text: bool) -> None:
        self.metadata, self.maxlen, self.with_text = metadata, maxlen, with_text
        self.num_words = int(metadata["num_words"])

    def __enter__(self) -> _SplitFiles:
        self._scratch = tempfile.TemporaryDirectory(prefix="imdb-store-")
        folder = Path(self._scratch.name)
        self.writers = {
            name: store.SplitWriter(
                folder / split_name(name), {**self.metadata, "split": name}, self.maxlen, self.with_text
            )
            for name in SPLITS
        }
        self.described = {name: statistics.SplitStatistics(self.maxlen, self.num_words) for name in SPLITS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for writer in self.writers.values():  # no thread may still write into the scratch folder
            with contextlib.suppress(Exception):
                writer.wait()
        self._scratch.cleanup()

    def add(self, name: str, reviews: corpus.Reviews, texts: pa.Array | None) -> None:
        self.described[name].add(reviews)
        self.writers[name].write(store.pad_reviews(reviews, self.maxlen), reviews.labels, texts)

    def append(self, encoded: dict[str, tuple[str, statistics.SplitStatistics]]) -> None:
        """Appends a piece's part files (`encode_piece`), row group by row group, and its statistics."""
        for name, (uri, described) in encoded.items():
            for tokens, labels, texts in store.iter_split_rows(uri):
                self.writers[name].write(tokens, labels, texts)
            self.described[name].merge(described)

    def upload_parts(self, folder: str) -> dict[str, tuple[str, statistics.SplitStatistics]]:
        """Each split's file as written so far, uploaded under `folder`, with its statistics."""
        parts = {}
        for name in SPLITS:
            self.writers[name].close()
            uri = fs.join(folder, split_name(name))
            fs.upload_file(self.writers[name].path, uri)
            parts[name] = (uri, self.described[name])
        return parts

    def publish(self, root: str, words: vocabulary.Vocabulary | None) -> store.DatasetInfo:
        digests = "".join(self.writers[name].close() for name in SPLITS)
        key = store.dataset_key(self.metadata, hashlib.sha256(digests.encode()).hexdigest())
        folder = dataset_uri(root, key)
        uris = {name: fs.join(folder, split_name(name)) for name in SPLITS}
        profile_uri = fs.join(folder, PROFILE_NAME)
        if all(fs.exists(uri) for uri in [*uris.values(), profile_uri]):
            log.info("data set %s already stored at %s; reusing it", key, folder)
        else:
            for name in SPLITS:
                fs.move_file(self.writers[name].path, uris[name])
                log.info("stored %s: %d reviews x %d ids", uris[name], self.writers[name].rows, self.maxlen)
        profile = {
            "splits": {name: self.described[name].describe() for name in SPLITS},
            "duplicates": statistics.describe_overlap({name: self.described[name].fingerprints() for name in SPLITS}),
        }
        return store.DatasetInfo(
            key=key,
            uri=folder,
            split_uris=uris,
            rows={name: self.writers[name].rows for name in SPLITS},
            metadata=self.metadata,
            vocabulary_uri=None if words is None else vocabulary.store_vocabulary(words, folder),
            profile_uri=profile_uri,
            profile_sha256=fs.write_json(profile_uri, profile),
        )


def _vocabulary(source: SourceInfo, plan: SplitPlan, config: DataConfig) -> vocabulary.Vocabulary | None:
    """The vocabulary that encodes raw text for the data set: the plan's ranks for raw texts (exact),
    the word index beside an imdb.npz (Keras' own tokenisation is unknown: not exact), else none."""
    word_index = plan.word_index()
    if word_index is not None:
        return vocabulary.text_vocabulary_of(source.kind, word_index, config.num_words, config.maxlen)
    return vocabulary.build_vocabulary(source.kind, source.word_index_path, config.num_words, config.maxlen)
