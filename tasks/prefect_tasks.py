"""The one module that knows Prefect: each stage's plain function wrapped as a @task.

Wrappers add only orchestration (names, retries, log routing); the logic stays in the plain
modules, which run and test without any Prefect context.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import champion, data, evaluation, features, plots, publishing, reporting, storage
from tasks.config import ChampionConfig, DataConfig, ModelConfig, StorageConfig, TrainingConfig
from tasks.errors import PipelineError, SourceUnreachable
from tasks.sources import SourceInfo, resolve_source
from tasks.training import TrainedVariant, train_variant

LIBRARY_LOGGER = "tasks"  # the plain modules log under tasks.*; Prefect shows these in run logs
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")  # where Prefect reports a failed run
DOWNLOAD_RETRY_DELAYS = [2, 5]  # seconds: ride out a brief network blip, fail fast on a dead host


class _ExpectedErrorsWithoutTraceback(logging.Filter):
    """Drops the traceback of a PipelineError from run logs: its message already names the problem.

    Unexpected exceptions keep their tracebacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            record.exc_info = None
            record.exc_text = None
        return True


_EXPECTED_ERRORS_FILTER = _ExpectedErrorsWithoutTraceback()


def configure_run_logging() -> None:
    """Sends the plain modules' stdlib logs to the run logs, and keeps expected failures to one line.

    Same effect as PREFECT_LOGGING_EXTRA_LOGGERS=tasks, which only works if set before Prefect
    is imported; done at run time so `python -m flows...` and workers behave alike.
    """
    library = logging.getLogger(LIBRARY_LOGGER)
    library.setLevel(logging.INFO)
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in library.handlers:
            library.addHandler(handler)
    for name in RUN_LOGGERS:
        logging.getLogger(name).addFilter(_EXPECTED_ERRORS_FILTER)  # a no-op when already added


def _retry_when_unreachable(task, task_run, state) -> bool:
    try:
        state.result()
    except SourceUnreachable:
        return True
    except Exception:
        return False
    return False


@task(name="check-storage", cache_policy=NO_CACHE)
def check_storage(config: StorageConfig) -> None:
    storage.ensure_writable(config.root)


@task(
    name="download",
    retries=len(DOWNLOAD_RETRY_DELAYS),
    retry_delay_seconds=DOWNLOAD_RETRY_DELAYS,
    retry_condition_fn=_retry_when_unreachable,
    cache_policy=NO_CACHE,
)
def download(config: DataConfig) -> SourceInfo:
    return resolve_source(config)


@task(name="split", cache_policy=NO_CACHE)
def split(source: SourceInfo, config: DataConfig, seed: int) -> dict[str, data.Reviews]:
    return data.split_source(source.kind, source.local_path, config.num_words, config.val_fraction, seed)


@task(name="pad-and-store", cache_policy=NO_CACHE)
def pad_and_store(
    splits: dict[str, data.Reviews], source: SourceInfo, config: DataConfig, seed: int, storage_config: StorageConfig
) -> features.DatasetInfo:
    metadata = features.dataset_metadata(config, seed, source.uri, source.sha256)
    return features.store_dataset(splits, config.maxlen, metadata, storage_config.root)


@task(name="train", task_run_name="train-{variant}", cache_policy=NO_CACHE)
def train(
    variant: str,
    dataset: features.DatasetInfo,
    model_config: ModelConfig,
    training_config: TrainingConfig,
    seed: int,
    run_dir: Path,
) -> TrainedVariant:
    return train_variant(variant, dataset, model_config, training_config, seed, run_dir)


@task(name="evaluate", task_run_name="evaluate-{trained.variant}", cache_policy=NO_CACHE)
def evaluate(trained: TrainedVariant, dataset: features.DatasetInfo) -> dict:
    metrics_path = Path(trained.model_path).with_name("metrics.json")
    return evaluation.evaluate_to_file(trained.model_path, dataset.split_uris["test"], metrics_path)


@task(name="plot", task_run_name="plot-{trained.variant}", cache_policy=NO_CACHE)
def plot_variant(trained: TrainedVariant) -> dict:
    return plots.plot_history_file(Path(trained.history_path))


@task(name="plot-comparison", cache_policy=NO_CACHE)
def plot_comparison(histories: dict[str, dict], run_dir: Path) -> None:
    plots.plot_comparison(histories, run_dir / "comparison.png")


@task(name="champion-gate", cache_policy=NO_CACHE)
def judge_champion(
    variants: dict[str, dict], dataset: features.DatasetInfo, config: ChampionConfig, storage_config: StorageConfig
) -> champion.Decision:
    return champion.judge(variants, dataset.key, storage_config.root, config)


@task(name="report", cache_policy=NO_CACHE)
def report(run_dir: Path, run_id: str, config: dict, source: SourceInfo, dataset: features.DatasetInfo,
           variants: dict[str, dict], decision: champion.Decision) -> None:
    reporting.write_run_files(
        run_dir, run_id, config, source.model_dump(), dataset.model_dump(), variants, decision.model_dump()
    )


@task(name="publish", cache_policy=NO_CACHE)
def publish(run_dir: Path, storage_config: StorageConfig, run_id: str, details: dict) -> str:
    destination = publishing.run_uri(storage_config.root, run_id)
    publishing.publish_run(run_dir, destination, details)
    shutil.rmtree(run_dir)  # published and verified by checksum: the local copy is no longer needed
    return destination


@task(name="promote", cache_policy=NO_CACHE)
def promote(
    decision: champion.Decision, run_uri: str, run_id: str, dataset: features.DatasetInfo,
    variants: dict[str, dict], storage_config: StorageConfig, config: ChampionConfig,
) -> dict | None:
    return champion.promote(decision, run_uri, run_id, dataset.key, variants, storage_config.root, config.metric)
