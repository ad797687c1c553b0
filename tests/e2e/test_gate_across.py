"""The champion gate across data sets: a champion trained on another data set and the candidate both
score the candidate's raw test reviews, each through its own vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.config import ChampionConfig, ModelConfig, TrainingConfig
from tasks.data import corpus, prepare, store, vocabulary
from tasks.registry import cross_gate, gate, publishing
from tasks.registry.records import ChampionRecord
from tasks.storage import fs, layout
from tasks.training.build import build_model
from tasks.training.evaluation import ClassificationMetrics
from tests.helpers import VOCABULARY, champion_record, review_texts, variant_result

NUM_WORDS, MAXLEN = 50, 20
MARGIN = TrainingConfig().stall_margin
TEXTS, LABELS = review_texts(480, seed=5)


def words(shift: int) -> vocabulary.Vocabulary:
    """The generated words ranked differently per data set: the same text gets other ids."""
    ranks = {f"word{rank}": (rank - 1 + shift) % (VOCABULARY - 1) + 1 for rank in range(1, VOCABULARY)}
    spec = vocabulary.TokenizerSpec(num_words=NUM_WORDS, maxlen=MAXLEN, exact=True)
    return vocabulary.Vocabulary(source_kind="offline", spec=spec, word_index=ranks)


def store_vocabulary_dataset(root: Path, vocab: vocabulary.Vocabulary, with_text: bool = True) -> store.DatasetInfo:
    encoder = vocabulary.TextEncoder.of(vocab)
    reviews = corpus.Reviews.from_lists([encoder.encode_one(text) for text in TEXTS], LABELS.astype(np.int8))
    texts = np.array(TEXTS, dtype=object) if with_text else None
    reviews = corpus.Reviews(reviews.ids, reviews.offsets, reviews.labels, texts)
    splits = {
        "train": reviews.take(np.arange(320)),
        "val": reviews.take(np.arange(320, 400)),
        "test": reviews.take(np.arange(400, 480)),
    }
    metadata = {
        "num_words": NUM_WORDS,
        "maxlen": MAXLEN,
        "val_fraction": 0.2,
        "seed": 0,
        "source": "t",
        "source_sha256": str(with_text),
    }
    return prepare.store_reviews(splits, MAXLEN, metadata, str(root), vocab)


def model_file(folder: Path, dataset: store.DatasetInfo, trained: bool) -> Path:
    import keras

    keras.utils.set_random_seed(1)
    model = build_model("embedding", NUM_WORDS, MAXLEN, ModelConfig())
    if trained:
        tokens, labels, _ = store.read_split(dataset.split_uris["train"])
        model.compile(keras.optimizers.RMSprop(0.01), "binary_crossentropy")
        model.fit(tokens, labels, epochs=15, batch_size=32, verbose=0)
    path = folder / "embedding" / "model.keras"
    path.parent.mkdir(parents=True)
    model.save(path)
    return path


def publish_champion(root: Path, dataset: store.DatasetInfo, trained: bool) -> None:
    local = root / "champion-run"
    model_file(local, dataset, trained)
    vocabulary.copy_into_run(dataset.uri, local)
    run_uri = layout.run_uri(str(root / "store"), "r-old")
    publishing.publish_run(local, run_uri, {"run_id": "r-old"})
    record = champion_record(
        run_uri,
        dataset.key,
        0.99,
        vocabulary_uri=f"{run_uri}/vocabulary.json",
        manifest_sha256=publishing.manifest_sha256(run_uri),
    )
    fs.write_json(layout.champion_uri(str(root / "store")), record)


def judge(root: Path, candidate: store.DatasetInfo, candidate_trained: bool) -> tuple[gate.Decision, list]:
    """The gate's decision, and what the cross-data-set scoring returned (champion's, candidate's metrics)."""
    path = model_file(root / "candidate-run", candidate, candidate_trained)
    scored: list = []

    def score_across(held: ChampionRecord, name: str) -> tuple[ClassificationMetrics, ClassificationMetrics] | None:
        scored.append(cross_gate.score_across(held, str(path), candidate))
        return scored[-1]

    variants = {"embedding": variant_result(0.9, 0.3, roc_auc=0.9)}
    return gate.judge(variants, candidate.key, str(root / "store"), ChampionConfig(), MARGIN, score_across), scored


@pytest.mark.parametrize(
    ("champion_trained", "candidate_trained", "promoted"), [(False, True, True), (True, False, False)]
)
def test_auto_promotes_across_data_sets_only_when_better_on_the_same_raw_reviews(
    tmp_path, champion_trained, candidate_trained, promoted
):
    old, new = store_vocabulary_dataset(tmp_path / "a", words(0)), store_vocabulary_dataset(tmp_path / "b", words(17))
    assert old.key != new.key
    publish_champion(tmp_path, old, champion_trained)
    decision, [(held, candidate)] = judge(tmp_path, new, candidate_trained)
    assert (decision.promote, decision.comparable) == (promoted, True)
    assert "on this run's raw test reviews, each through its own vocabulary" in decision.reason
    assert held.examples == candidate.examples == 80  # the candidate's test reviews, for both
    # whichever model is trained reads them well, the champion through its own ids for the same words
    trained = held if champion_trained else candidate
    assert trained.accuracy >= 0.85


def test_without_raw_test_text_a_champion_of_another_data_set_is_not_comparable(tmp_path):
    old, new = (
        store_vocabulary_dataset(tmp_path / "a", words(0)),
        store_vocabulary_dataset(tmp_path / "b", words(17), with_text=False),
    )
    publish_champion(tmp_path, old, trained=False)
    decision, scored = judge(tmp_path, new, candidate_trained=False)
    assert scored == [None]
    assert not decision.promote and decision.comparable is False and "not comparable; kept" in decision.reason
