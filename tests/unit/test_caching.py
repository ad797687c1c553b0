"""Cache keys depend on content and the parameters that shape a stage's output, and nothing else."""

from __future__ import annotations

from tasks import caching
from tasks.config import DataConfig, ModelConfig, TrainingConfig


def test_training_key_ignores_the_other_variants_and_the_timeout():
    key = caching.training_key("d1", "onehot", ModelConfig(), TrainingConfig(), 42)
    assert key == caching.training_key("d1", "onehot", ModelConfig(variants=("onehot",)),
                                       TrainingConfig(timeout_seconds=60), 42)
    for changed in (
        caching.training_key("d2", "onehot", ModelConfig(), TrainingConfig(), 42),
        caching.training_key("d1", "embedding", ModelConfig(), TrainingConfig(), 42),
        caching.training_key("d1", "onehot", ModelConfig(rnn_units=4), TrainingConfig(), 42),
        caching.training_key("d1", "onehot", ModelConfig(), TrainingConfig(learning_rate=1e-3), 42),
        caching.training_key("d1", "onehot", ModelConfig(), TrainingConfig(), 7),
    ):
        assert changed != key


def test_data_keys_follow_content_and_parameters():
    config = DataConfig()
    assert caching.split_key("abc", config, 42) == caching.split_key("abc", DataConfig(maxlen=50), 42)
    assert caching.split_key("abc", config, 42) != caching.split_key("abd", config, 42)
    assert caching.split_key("abc", config, 42) != caching.split_key("abc", DataConfig(num_words=1000), 42)
    assert caching.download_key(config, "sha1") != caching.download_key(config, "sha2")
    assert caching.store_key({"maxlen": 100}, "outputs") != caching.store_key({"maxlen": 100}, "s3://bucket/x")
    assert caching.store_key({"maxlen": 100}, "outputs") != caching.store_key({"maxlen": 99}, "outputs")


def test_code_version_is_stable_and_differs_per_file():
    assert caching.code_version(caching.TRAINING_CODE) == caching.code_version(caching.TRAINING_CODE)
    assert caching.code_version(("data.py",)) != caching.code_version(("models.py",))
