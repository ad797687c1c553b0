"""The config's defaults and validation, and the command line built on it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from flows.cli import build_parser, config_from_args, describe_validation_error
from flows.imdb_pipeline import main
from tasks.config import RECIPES, PipelineConfig, TrainingConfig


def parse(*argv: str) -> PipelineConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_defaults_are_the_reference_recipe():
    config = parse()
    assert config == PipelineConfig()
    assert (config.data.source, config.data.num_words, config.data.maxlen, config.data.val_fraction) == (
        "auto",
        500,
        100,
        0.2,
    )
    assert config.model.variants == ("onehot", "embedding")
    assert (config.champion.promote, config.champion.metric) == ("auto", "accuracy")
    assert (config.model.rnn_units, config.model.embedding_dim) == (8, 16)
    training = config.training
    assert (training.batch_size, training.learning_rate, training.max_epochs, training.patience) == (64, 1e-4, 100, 3)
    assert (training.recipe, training.start_from_epoch, training.min_delta) == ("reference", 0, 0.0)
    assert (training.seeds, training.restarts, training.baseline_margin) == (1, 9, 0.03)
    assert config.seed == 42
    assert config.refresh is False and config.training.timeout_seconds == 4 * 3600
    assert config.skip_unchanged is False


def test_a_recipe_preset_fills_what_is_not_given_explicitly():
    robust = parse("--recipe", "robust").training
    assert {key: getattr(robust, key) for key in RECIPES["robust"]} == RECIPES["robust"]
    assert parse("--recipe", "robust", "--patience", "7").training.patience == 7  # explicit wins
    assert parse("--recipe", "reference").training == parse().training == TrainingConfig()
    assert PipelineConfig.model_validate(parse("--recipe", "robust").model_dump()) == parse("--recipe", "robust")


def test_help_shows_what_each_recipe_preset_sets():
    help_text = re.sub(r"-\s+", "-", " ".join(build_parser().format_help().split()))  # argparse wraps at hyphens
    for name, preset in RECIPES.items():
        assert (
            f"{name} sets --learning-rate {preset['learning_rate']:g}, --patience {preset['patience']}, "
            f"--start-from-epoch {preset['start_from_epoch']}, --min-delta {preset['min_delta']:g}" in help_text
        )
    robust = parse("--recipe", "robust").training  # and the help says what the preset really gives
    assert f"robust sets --learning-rate {robust.learning_rate:g}, --patience {robust.patience}," in help_text


def test_every_option_reaches_its_config_field():
    config = parse(
        "--source",
        "offline",
        "--storage",
        "s3://bucket/prefix/",
        "--variants",
        "embedding",
        "--max-epochs",
        "5",
        "--seed",
        "7",
        "--num-words",
        "1000",
        "--maxlen",
        "50",
        "--batch-size",
        "32",
        "--learning-rate",
        "0.001",
        "--patience",
        "1",
        "--val-fraction",
        "0.1",
        "--rnn-units",
        "4",
        "--embedding-dim",
        "8",
        "--work-dir",
        "/tmp/w",
        "--cache-dir",
        "/tmp/c",
        "--download-timeout",
        "5",
        "--source-sha256",
        "AB" * 32,
        "--source-url-env",
        "IMDB_SOURCE_URL",
        "--presign-minutes",
        "15",
        "--promote",
        "always",
        "--champion-metric",
        "loss",
        "--training-timeout",
        "60",
        "--refresh",
        "--skip-unchanged",
        "--recipe",
        "robust",
        "--start-from-epoch",
        "2",
        "--min-delta",
        "0.001",
        "--seeds",
        "3",
        "--restarts",
        "1",
        "--stall-margin",
        "0.1",
        "--baseline-margin",
        "0.2",
        "--baseline-max-rows",
        "5000",
        "--xla",
        "off",
        "--sweep",
        "rnn_units=4,16",
        "learning_rate=1e-4,1e-3",
        "--dask-address",
        "tcp://scheduler:8786/",
        "--test-fraction",
        "0.3",
        "--text-column",
        "body",
        "--label-column",
        "sentiment",
        "--window",
        "Last:3",
    )
    assert config.data.model_dump() == {
        "source": "offline",
        "source_sha256": "ab" * 32,
        "source_url_env": "IMDB_SOURCE_URL",
        "cache_dir": "/tmp/c",
        "download_timeout_seconds": 5.0,
        "num_words": 1000,
        "maxlen": 50,
        "val_fraction": 0.1,
        "test_fraction": 0.3,
        "text_column": "body",
        "label_column": "sentiment",
        "window": "last:3",
        "files": (),
    }
    assert config.model.model_dump() == {"variants": ("embedding",), "rnn_units": 4, "embedding_dim": 8}
    assert config.training.model_dump() == {
        "recipe": "robust",
        "batch_size": 32,
        "learning_rate": 0.001,
        "max_epochs": 5,
        "patience": 1,
        "start_from_epoch": 2,
        "min_delta": 0.001,
        "timeout_seconds": 60,
        "seeds": 3,
        "restarts": 1,
        "baseline_margin": 0.2,
        "stall_margin": 0.1,
        "xla": "off",
        "baseline_max_rows": 5000,
    }
    assert config.refresh is True and config.skip_unchanged is True
    assert config.storage.model_dump() == {"root": "s3://bucket/prefix", "work_dir": "/tmp/w", "presign_minutes": 15}
    assert config.champion.model_dump() == {"promote": "always", "metric": "loss"}
    assert config.seed == 7
    assert config.sweep == {"rnn_units": (4, 16), "learning_rate": (1e-4, 1e-3)}
    assert config.dask_address == "tcp://scheduler:8786"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variants", "onehot,lstm"], "--variants: unknown variant 'lstm'; known: onehot, embedding"),
        (["--variants", "onehot,onehot"], "--variants: variants must not repeat"),
        (["--num-words", "3"], "--num-words: Input should be greater than or equal to 4"),
        (["--maxlen", "0"], "--maxlen: Input should be greater than or equal to 1"),
        (["--val-fraction", "1"], "--val-fraction: Input should be less than 1"),
        (["--val-fraction", "0"], "--val-fraction: Input should be greater than 0"),
        (["--batch-size", "0"], "--batch-size: Input should be greater than or equal to 1"),
        (["--learning-rate", "-1"], "--learning-rate: Input should be greater than 0"),
        (["--max-epochs", "0"], "--max-epochs: Input should be greater than or equal to 1"),
        (["--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
        (["--storage", "ftp://host/x"], "--storage: unknown storage scheme 'ftp'; use a path, file:// or s3://"),
        (["--source-sha256", "xyz"], "--source-sha256: source_sha256 must be 64 hexadecimal characters"),
        (["--source", " "], "--source: source must be keras, offline, auto or a URI"),
        (["--promote", "sometimes"], "--promote: Input should be 'never', 'auto' or 'always'"),
        (["--champion-metric", "f1"], "--champion-metric: Input should be 'accuracy', 'roc_auc' or 'loss'"),
    ],
)
def test_bad_options_name_the_option(argv, message):
    with pytest.raises(ValidationError) as caught:
        parse(*argv)
    assert describe_validation_error(caught.value) == message


def test_cli_rejects_bad_input_with_one_line_before_running(capsys):
    assert main(["--num-words", "2", "--storage", "/nonexistent/never/created"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: --num-words: Input should be greater than or equal to 4\n"
