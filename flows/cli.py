"""Command-line options of the pipeline, mapped one to one onto PipelineConfig fields.

Defaults are read from the config models, so `--help` and the Prefect UI show the same values.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from pydantic import BaseModel, ValidationError

from tasks.config import (
    RECIPES,
    ChampionConfig,
    DataCheckConfig,
    DataConfig,
    ModelConfig,
    PipelineConfig,
    StorageConfig,
    TrainingConfig,
)
from tasks.storage import fs

# option -> (config section or "" for top level, field, type)
OPTIONS: dict[str, tuple[str, str, type]] = {
    "--source": ("data", "source", str),
    "--source-sha256": ("data", "source_sha256", str),
    "--source-url-env": ("data", "source_url_env", str),
    "--cache-dir": ("data", "cache_dir", str),
    "--download-timeout": ("data", "download_timeout_seconds", float),
    "--num-words": ("data", "num_words", int),
    "--maxlen": ("data", "maxlen", int),
    "--val-fraction": ("data", "val_fraction", float),
    "--test-fraction": ("data", "test_fraction", float),
    "--text-column": ("data", "text_column", str),
    "--label-column": ("data", "label_column", str),
    "--window": ("data", "window", str),
    "--variants": ("model", "variants", str),
    "--rnn-units": ("model", "rnn_units", int),
    "--embedding-dim": ("model", "embedding_dim", int),
    "--recipe": ("training", "recipe", str),
    "--batch-size": ("training", "batch_size", int),
    "--learning-rate": ("training", "learning_rate", float),
    "--max-epochs": ("training", "max_epochs", int),
    "--patience": ("training", "patience", int),
    "--start-from-epoch": ("training", "start_from_epoch", int),
    "--min-delta": ("training", "min_delta", float),
    "--seeds": ("training", "seeds", int),
    "--restarts": ("training", "restarts", int),
    "--baseline-margin": ("training", "baseline_margin", float),
    "--stall-margin": ("training", "stall_margin", float),
    "--baseline-max-rows": ("training", "baseline_max_rows", int),
    "--xla": ("training", "xla", str),
    "--training-timeout": ("training", "timeout_seconds", int),
    "--min-split-rows": ("checks", "min_split_rows", int),
    "--max-overlap": ("checks", "max_overlap", float),
    "--max-drift": ("checks", "max_drift", float),
    "--storage": ("storage", "root", str),
    "--work-dir": ("storage", "work_dir", str),
    "--presign-minutes": ("storage", "presign_minutes", int),
    "--promote": ("champion", "promote", str),
    "--champion-metric": ("champion", "metric", str),
    "--seed": ("", "seed", int),
    "--refresh": ("", "refresh", bool),
    "--skip-unchanged": ("", "skip_unchanged", bool),
    "--sweep": ("", "sweep", list),
    "--dask-address": ("", "dask_address", str),
}
SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "checks": DataCheckConfig,
    "storage": StorageConfig,
    "champion": ChampionConfig,
    "": PipelineConfig,
}


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports a malformed command line (`--batch-size abc`, an unknown option) as one `error:` line,
    exit status 2, like a value the config refuses; argparse would print the whole usage first."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message.removeprefix('argument ')}\n")


def build_parser(prog: str = "python -m flows.imdb_pipeline") -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=prog,
        description="Train one-hot and embedding SimpleRNNs on IMDB, evaluate them on the test set "
        "and publish checkpoints, plots and a report.",
    )
    for option, (section, field, kind) in OPTIONS.items():
        info = SECTIONS[section].model_fields[field]
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(default)
        description = info.description or field.replace("_", " ")
        if option == "--recipe":
            description = f"{description}: {describe_recipes()}"
        if kind is bool:
            parser.add_argument(option, dest=_dest(option), action="store_true", default=None, help=description)
        elif kind is list:
            parser.add_argument(option, dest=_dest(option), nargs="+", metavar="FIELD=V1,V2", help=description)
        else:
            parser.add_argument(
                option, dest=_dest(option), type=kind, default=None, help=f"{description} (default: {default})"
            )
    return parser


def describe_recipes() -> str:
    """What each recipe preset sets, by option: `reference sets --learning-rate 0.0001, ...`."""
    options = {field: option for option, (section, field, _) in OPTIONS.items() if section == "training"}
    return "; ".join(
        f"{name} sets " + ", ".join(f"{options[field]} {value:g}" for field, value in preset.items())
        for name, preset in RECIPES.items()
    )


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """A validated PipelineConfig from parsed options; options not given keep their defaults."""
    values: dict[str, dict] = {section: {} for section in SECTIONS if section}
    top_level: dict = {}
    for option, (section, field, _) in OPTIONS.items():
        value = getattr(args, _dest(option))
        if value is None:
            continue
        if field == "variants":
            value = tuple(name.strip() for name in value.split(",") if name.strip())
        if field == "source":  # the config becomes the flow run's parameter, which Prefect records
            value = fs.hide_credentials(value.strip())
        (values[section] if section else top_level)[field] = value
    return PipelineConfig.model_validate({**top_level, **values})


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a ValidationError, named by its command-line option."""
    first = error.errors()[0]
    location = tuple(str(part) for part in first["loc"])
    options: dict[tuple[str, ...], str] = {
        (section, field) if section else (field,): option for option, (section, field, _) in OPTIONS.items()
    }
    message = first["msg"].removeprefix("Value error, ")
    if not location:  # a check across sections names its field first: `data.maxlen: ...`
        field, _, rest = message.partition(": ")
        return f"{options.get(tuple(field.split('.')), field)}: {rest}"
    option = options.get(location[:2]) or options.get(location[:1]) or ".".join(location)
    return f"{option}: {message}"


def add_endpoint_option(parser: argparse.ArgumentParser) -> None:
    """`--s3-endpoint-url`: shared by the pipeline and the tools that read its storage."""
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="custom S3 endpoint (MinIO, SeaweedFS, Ceph...); default: AWS_ENDPOINT_URL or AWS",
    )
