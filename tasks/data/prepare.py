"""The split and pad-and-store stages' logic on a resolved source, shared by the flow's stages and
the tools that prepare data without a flow (bench, seeds): one way to turn a source into a data set."""

from __future__ import annotations

from tasks.config import DataConfig
from tasks.data import store, vocabulary
from tasks.data.sources import SourceInfo
from tasks.data.split import Splits, split_own_source, split_source


def split_resolved(source: SourceInfo, config: DataConfig, seed: int) -> Splits:
    """Train, val and test reviews of a resolved source: own reviews by the hash of their text, the
    IMDB sources as the recipe splits them."""
    if source.kind == "reviews":
        return split_own_source([file.uri for file in source.files], config, seed)
    return Splits(split_source(source.kind, source.local_path, config.num_words, config.val_fraction, seed))


def dataset_metadata(source: SourceInfo, config: DataConfig, seed: int) -> dict:
    """What the stored data set's key hashes beside its content: the source and the options that shape it."""
    metadata = store.dataset_metadata(config, seed, source.uri, source.sha256)
    return metadata | store.own_reviews_metadata(config) if source.kind == "reviews" else metadata


def store_splits(splits: Splits, source: SourceInfo, config: DataConfig, seed: int, root: str) -> store.DatasetInfo:
    """Pads and stores the splits under `root` with the vocabulary that encodes raw text for them:
    ranked on the training split for own reviews, the source's word index for the IMDB sources."""
    words: vocabulary.Vocabulary | None
    if source.kind == "reviews":
        train = splits.reviews["train"]
        train_texts = list(train.texts if train.texts is not None else [])
        words = vocabulary.text_vocabulary(source.kind, train_texts, config.num_words, config.maxlen)
    else:
        words = vocabulary.build_vocabulary(
            source.kind, source.local_path, source.word_index_path, config.num_words, config.maxlen
        )
    return store.store_dataset(splits.reviews, config.maxlen, dataset_metadata(source, config, seed), root, words)
