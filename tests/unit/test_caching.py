"""Cache keys depend on content and the parameters that shape a stage's output, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tasks.config import DataConfig, ModelConfig, TrainingConfig
from tasks.storage import cache_keys


def test_training_key_ignores_the_other_variants_their_sizes_and_the_timeout():
    key = cache_keys.training_key("d1", "onehot", ModelConfig(), TrainingConfig(), 42)
    assert key == cache_keys.training_key(
        "d1", "onehot", ModelConfig(variants=("onehot",), embedding_dim=4), TrainingConfig(timeout_seconds=60), 42
    )
    for changed in (
        cache_keys.training_key("d2", "onehot", ModelConfig(), TrainingConfig(), 42),
        cache_keys.training_key("d1", "embedding", ModelConfig(), TrainingConfig(), 42),
        cache_keys.training_key("d1", "onehot", ModelConfig(rnn_units=4), TrainingConfig(), 42),
        cache_keys.training_key("d1", "onehot", ModelConfig(), TrainingConfig(learning_rate=1e-3), 42),
        cache_keys.training_key("d1", "onehot", ModelConfig(), TrainingConfig(), 7),
    ):
        assert changed != key


def test_data_keys_follow_content_and_parameters():
    config = DataConfig()
    assert cache_keys.split_key("abc", config, 42) == cache_keys.split_key("abc", DataConfig(maxlen=50), 42)
    assert cache_keys.split_key("abc", config, 42) != cache_keys.split_key("abd", config, 42)
    assert cache_keys.split_key("abc", config, 42) != cache_keys.split_key("abc", DataConfig(num_words=1000), 42)
    assert cache_keys.download_key(config, "sha1") != cache_keys.download_key(config, "sha2")
    assert cache_keys.store_key({"maxlen": 100}, "outputs") != cache_keys.store_key({"maxlen": 100}, "s3://bucket/x")
    assert cache_keys.store_key({"maxlen": 100}, "outputs") != cache_keys.store_key({"maxlen": 99}, "outputs")


def _modules_loaded_by_importing(module: str) -> set[str]:
    """The tasks modules Python really loads for `module`, in a fresh interpreter."""
    probe = f"import sys, {module}; print(' '.join(name for name in sys.modules if name.startswith('tasks.')))"
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cache_keys.PACKAGE_DIR.parent
    )
    return set(completed.stdout.split())


@pytest.mark.parametrize(
    "module", [cache_keys.SPLIT_MODULE, cache_keys.STORE_MODULE, cache_keys.TRAINING_MODULE, cache_keys.BASELINE_MODULE]
)
def test_a_stage_key_covers_every_module_the_stage_imports(module):
    hashed = set(cache_keys.stage_modules(module))
    assert module in hashed
    assert _modules_loaded_by_importing(module) <= hashed


def test_a_code_change_in_an_imported_module_changes_the_stage_keys(tmp_path):
    copy = tmp_path / "tasks"
    shutil.copytree(cache_keys.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = {
        module: cache_keys.code_hash(module, copy)
        for module in (cache_keys.SPLIT_MODULE, cache_keys.STORE_MODULE, cache_keys.TRAINING_MODULE)
    }
    assert before[cache_keys.TRAINING_MODULE] == cache_keys.code_hash(cache_keys.TRAINING_MODULE)  # same code, same key
    with (copy / "training" / "guard.py").open("a") as module:  # imported by training only, through another module
        module.write("\n# a change\n")
    after = {module: cache_keys.code_hash(module, copy) for module in before}
    assert after[cache_keys.TRAINING_MODULE] != before[cache_keys.TRAINING_MODULE]
    assert after[cache_keys.SPLIT_MODULE] == before[cache_keys.SPLIT_MODULE]
    with (copy / "data" / "corpus.py").open("a") as module:  # imported by every stage
        module.write("\n# a change\n")
    assert all(cache_keys.code_hash(module, copy) != after[module] for module in before)
