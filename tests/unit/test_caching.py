"""Cache keys depend on content and the parameters that shape a stage's output, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tasks.config import ChampionConfig, DataConfig, ModelConfig, PipelineConfig, StorageConfig, TrainingConfig
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
    """The project modules (tasks, flows) Python really loads for `module`, in a fresh interpreter."""
    probe = (
        f"import sys, {module}; print(' '.join(name for name in sys.modules if name.startswith(('tasks.', 'flows.'))))"
    )
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


def test_the_pipeline_code_hash_covers_the_flow_and_every_module_it_loads(tmp_path):
    hashed = set(cache_keys.stage_modules(cache_keys.PIPELINE_MODULE))
    assert {cache_keys.PIPELINE_MODULE, "flows.cli", cache_keys.TRAINING_MODULE} <= hashed
    assert _modules_loaded_by_importing(cache_keys.PIPELINE_MODULE) <= hashed
    for package in ("tasks", "flows"):
        shutil.copytree(
            cache_keys.PACKAGE_DIR.parent / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    before = cache_keys.code_hash(cache_keys.PIPELINE_MODULE, tmp_path / "tasks")
    assert before == cache_keys.pipeline_code_hash()
    with (tmp_path / "flows" / "cli.py").open("a") as module:
        module.write("\n# a change\n")
    assert cache_keys.code_hash(cache_keys.PIPELINE_MODULE, tmp_path / "tasks") != before


def test_the_config_key_leaves_out_only_the_options_that_say_how_or_where_a_run_works():
    key = cache_keys.config_key(PipelineConfig())
    steering = PipelineConfig(
        skip_unchanged=True,
        refresh=True,
        dask_address="tcp://scheduler:8786",
        storage=StorageConfig(root="s3://bucket/prefix", work_dir="/tmp/w"),
        data=DataConfig(cache_dir="/tmp/c", download_timeout_seconds=5),
        training=TrainingConfig(timeout_seconds=60),
    )
    assert cache_keys.config_key(steering) == key
    for shaping in (
        PipelineConfig(seed=7),
        PipelineConfig(data=DataConfig(source="offline")),
        PipelineConfig(model=ModelConfig(variants=("onehot",))),
        PipelineConfig(training=TrainingConfig(learning_rate=1e-3)),
        PipelineConfig(champion=ChampionConfig(promote="never")),
        PipelineConfig(sweep={"rnn_units": (4, 8)}),
    ):
        assert cache_keys.config_key(shaping) != key
