"""The one module that knows Prefect: each stage's plain function wrapped as a @task.

Wrappers add only orchestration (names, retries, log routing); the logic stays in the plain
modules, which run and test without any Prefect context.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import multiprocessing
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.filesystems import RemoteFileSystem
from prefect.runtime import flow_run

from tasks import (
    baseline,
    caching,
    champion,
    data,
    data_checks,
    evaluation,
    features,
    plots,
    publishing,
    reporting,
    sources,
    storage,
    training,
)
from tasks.config import ChampionConfig, DataCheckConfig, DataConfig, ModelConfig, StorageConfig, TrainingConfig
from tasks.errors import ObjectExists, PipelineError, SourceError, SourceUnreachable, StorageError
from tasks.sources import SourceInfo, resolve_source
from tasks.training import TrainedVariant

LIBRARY_LOGGER = "tasks"  # the plain modules log under tasks.*; Prefect shows these in run logs
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")  # where Prefect reports a failed run
DOWNLOAD_RETRY_DELAYS = [2, 5]  # seconds: ride out a brief network blip, fail fast on a dead host
PUBLISH_RETRY_DELAYS = [5, 30]  # seconds: a storage hiccup heals; a retry resumes the upload
# A cached download may be an offline fallback: look for the canonical file again once a day.
DOWNLOAD_CACHE_EXPIRATION = timedelta(days=1)
ARTIFACT_PREFIX = "imdb"  # artifact keys: lowercase letters, digits and dashes only
PROMOTED_EVENT = "imdb-rnn-pipeline.champion.promoted"
FAILED_EVENT = "imdb-rnn-pipeline.run.failed"
DRIFT_EVENT = "imdb-rnn-pipeline.data.drift"
CHILD_PROGRESS_POLL_SECONDS = 1.0  # how often epochs of a seed trained in a child process reach the UI
RECENT_EPOCHS = 5  # epochs in a progress artifact's table: enough for a trend, short enough to read at a glance


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


def _retry_when(should_retry: Callable[[Exception], bool]):
    """A Prefect retry condition: retry a failed task run only when its exception qualifies."""

    def condition(task, task_run, state) -> bool:
        try:
            state.result()
        except Exception as error:
            return should_retry(error)
        return False

    return condition


def cache_options(storage_root: str, refresh: bool) -> dict:
    """Task options that keep cached results (and their records) under `<storage_root>/cache/prefect`.

    A local root is used as a path; an S3 root needs a saved RemoteFileSystem block, named after it.
    """
    location = storage.join(storage_root, "cache", "prefect")
    if storage.is_local(location):
        result_storage = Path(storage.filesystem(location)[1])
    else:
        result_storage = RemoteFileSystem(basepath=location)
        result_storage.save(f"imdb-cache-{hashlib.sha256(location.encode()).hexdigest()[:12]}", overwrite=True)
    return {"result_storage": result_storage, "persist_result": True, "refresh_cache": refresh}


def _download_cache_key(context, parameters: dict) -> str | None:
    """Keyed by the local copy's checksum; without a local copy there is nothing to reuse (None)."""
    config = parameters["config"]
    try:
        path = sources.local_copy_path(config)
    except SourceError:
        return None
    if path is None or not path.is_file():
        return None
    return caching.download_key(config, storage.sha256_of(str(path)))


def _split_cache_key(context, parameters: dict) -> str:
    return caching.split_key(parameters["source"].sha256, parameters["config"], parameters["seed"])


def _store_cache_key(context, parameters: dict) -> str:
    source, config = parameters["source"], parameters["config"]
    metadata = features.dataset_metadata(config, parameters["seed"], source.uri, source.sha256)
    return caching.store_key(metadata, parameters["storage_config"].root)


def _baseline_cache_key(context, parameters: dict) -> str:
    return caching.baseline_key(parameters["dataset"].key)


def _training_cache_key(context, parameters: dict) -> str:
    return caching.training_key(parameters["dataset"].key, parameters["variant"], parameters["model_config"],
                                parameters["training_config"], parameters["seed"],
                                parameters["baseline_val_accuracy"])


@task(name="check-storage", cache_policy=NO_CACHE)
def check_storage(config: StorageConfig) -> None:
    storage.ensure_writable(config.root)


@task(
    name="download",
    retries=len(DOWNLOAD_RETRY_DELAYS),
    retry_delay_seconds=DOWNLOAD_RETRY_DELAYS,
    retry_condition_fn=_retry_when(lambda error: isinstance(error, SourceUnreachable)),
    cache_key_fn=_download_cache_key,
    cache_expiration=DOWNLOAD_CACHE_EXPIRATION,
)
def download(config: DataConfig) -> SourceInfo:
    return resolve_source(config)


@task(name="split", cache_key_fn=_split_cache_key)
def split(source: SourceInfo, config: DataConfig, seed: int) -> dict[str, data.Reviews]:
    return data.split_source(source.kind, source.local_path, config.num_words, config.val_fraction, seed)


@task(name="pad-and-store", cache_key_fn=_store_cache_key)
def pad_and_store(
    splits: dict[str, data.Reviews], source: SourceInfo, config: DataConfig, seed: int, storage_config: StorageConfig
) -> features.DatasetInfo:
    metadata = features.dataset_metadata(config, seed, source.uri, source.sha256)
    return features.store_dataset(splits, config.maxlen, metadata, storage_config.root)


@task(name="check-data", cache_policy=NO_CACHE)
def check_data(splits: dict[str, data.Reviews], dataset: features.DatasetInfo, config: DataCheckConfig,
               storage_config: StorageConfig, run_dir: Path) -> dict:
    """Statistics, checks and drift of the data set, shown in the UI before a failed check stops the
    run; never cached: a reused data set folder is checked again. Emits the drift event above the threshold."""
    reference, note = data_checks.champion_statistics(storage_config.root, dataset.key)
    result = data_checks.check_dataset(splits, dataset, config, reference, note)
    create_markdown_artifact(reporting.render_data_section(result, with_plots=False), key=artifact_key("data-checks"),
                             description=f"statistics and checks of data set {dataset.key}")
    drift = result["drift"]
    if drift and drift["drifted"]:
        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": f"imdb-rnn-pipeline.dataset.{dataset.key}",
                      "prefect.resource.name": f"data set {dataset.key}"},
            payload={key: drift[key] for key in ("dataset_key", "reference_dataset_key", "distances", "max_drift",
                                                 "drifted", "positive_share", "mean_length", "oov_rate")},
        )
    data_checks.raise_on_failed_checks(result)
    data_checks.write_run_files(result, run_dir)
    return result


@task(name="baseline", cache_key_fn=_baseline_cache_key)
def fit_baseline(dataset: features.DatasetInfo) -> dict:
    """The bag-of-words logistic regression every variant is judged against."""
    return baseline.fit_baseline(dataset)


def artifact_key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join((ARTIFACT_PREFIX, *parts)).lower()).strip("-")


def _progress_updater(artifact_id, variant: str, max_epochs: int) -> Callable[[dict], None]:
    """Moves the progress artifact every epoch; its description shows the last epochs as a table
    (a restart of an under-trained or stalled attempt starts the table again with its epoch 1)."""
    epochs: list[dict] = []

    def update(record: dict) -> None:
        if record["epoch"] == 1:
            epochs.clear()
        epochs.append(record)
        update_progress_artifact(
            artifact_id, 100.0 * record["epoch"] / max_epochs,
            description=f"{variant} epoch {record['epoch']}/{max_epochs} ({record['seconds']:.1f} s)\n\n"
            + _epoch_table(epochs[-RECENT_EPOCHS:]),
        )

    return update


def _epoch_table(records: list[dict]) -> str:
    columns = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    rows = [(str(record["epoch"]), *(f"{record[name]:.4f}" for name in columns[1:])) for record in records]
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                      *("| " + " | ".join(row) + " |" for row in rows)])


def _data_uri(png: bytes) -> str:
    """A PNG as an image a browser shows from any page: no file:// link, no URL that expires."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _curves_markdown(history: dict) -> str:
    """A variant's loss and accuracy curves, inline."""
    with tempfile.TemporaryDirectory() as folder:
        plots.plot_history(history, Path(folder))
        return " ".join(f"![{metric}]({_data_uri((Path(folder) / f'{metric}.png').read_bytes())})"
                        for metric in ("loss", "accuracy"))


@task(name="train", task_run_name="train-{variant}-seed-{seed}", cache_key_fn=_training_cache_key)
def train(
    variant: str,
    dataset: features.DatasetInfo,
    model_config: ModelConfig,
    training_config: TrainingConfig,
    seed: int,
    storage_config: StorageConfig,
    baseline_val_accuracy: float | None = None,
    in_child_process: bool = False,
) -> TrainedVariant:
    """Trains one variant and seed (restarting it while it is under-trained against the baseline or
    stalled) and keeps the result in storage; its progress artifact moves every epoch.

    `in_child_process` trains in a fresh process: seeds trained side by side then neither share
    TensorFlow's global random state nor wait for each other's Python.
    """
    key = caching.training_key(dataset.key, variant, model_config, training_config, seed, baseline_val_accuracy)
    # Unique per attempt: two runs training the same thing at once never share a scratch folder.
    scratch = Path(storage_config.work_dir) / "training" / f"{key}-{uuid.uuid4().hex[:8]}"
    key_parts = ("training", variant, f"seed-{seed}") if in_child_process else ("training", variant)
    progress = create_progress_artifact(0.0, key=artifact_key(*key_parts),
                                        description=f"{variant} seed {seed}: training started")
    updater = _progress_updater(progress, f"{variant} seed {seed}", training_config.max_epochs)
    arguments = (variant, dataset, model_config, training_config, seed, scratch)
    try:
        trained = (_train_in_child_process(arguments, baseline_val_accuracy, scratch, updater) if in_child_process
                   else training.train_with_restarts(*arguments, updater, baseline_val_accuracy))
        stored = training.store_trained(trained, storage.join(storage_config.root, "cache", "training", key, variant))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    history = storage.read_json(stored.history_path)
    update_progress_artifact(progress, 100.0, description=f"{variant} seed {seed}: done after {trained.epochs_run} "
                             f"epochs (best val_loss at epoch {trained.best_epoch}); "
                             f"{reporting.guard_label(trained.model_dump())}\n\n"
                             f"{_epoch_table(history['epochs'][-RECENT_EPOCHS:])}\n\n{_curves_markdown(history)}")
    return stored


def _train_in_child_process(arguments: tuple, baseline_val_accuracy: float | None, scratch: Path,
                            updater: Callable[[dict], None]) -> TrainedVariant:
    """`train_with_restarts` in a spawned process; its epochs reach `updater` through a file."""
    scratch.mkdir(parents=True, exist_ok=True)
    progress_file, forwarded = scratch / "progress.jsonl", 0
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(training.train_with_restarts, *arguments,
                             functools.partial(training.append_progress, str(progress_file)), baseline_val_accuracy)
        while True:
            done = future.done()
            lines = progress_file.read_text().splitlines() if progress_file.exists() else []
            for line in lines[forwarded:]:
                updater(json.loads(line))
            forwarded = len(lines)
            if done:
                return future.result()
            time.sleep(CHILD_PROGRESS_POLL_SECONDS)


@task(name="evaluate", task_run_name="evaluate-{trained.variant}-seed-{trained.seed}", cache_policy=NO_CACHE)
def evaluate(trained: TrainedVariant, dataset: features.DatasetInfo) -> dict:
    """Test-set metrics of one trained seed."""
    return evaluation.evaluate_model(trained.model_path, dataset.split_uris["test"])


@task(name="collect", task_run_name="collect-{trained.variant}", cache_policy=NO_CACHE)
def collect(trained: TrainedVariant, test_metrics: dict, run_dir: Path) -> None:
    """The published seed's model, history and test metrics, into the run folder."""
    folder = training.collect_trained(trained, run_dir / trained.variant)
    (folder / "metrics.json").write_text(json.dumps(test_metrics, indent=2) + "\n")


@task(name="plot", task_run_name="plot-{trained.variant}", cache_policy=NO_CACHE)
def plot_variant(trained: TrainedVariant, run_dir: Path) -> dict:
    return plots.plot_history(storage.read_json(trained.history_path), run_dir / trained.variant)


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
           variants: dict[str, dict], baseline_result: dict, decision: champion.Decision,
           data_result: dict | None = None) -> None:
    reporting.write_run_files(
        run_dir, run_id, config, source.model_dump(), dataset.model_dump(), variants, baseline_result,
        decision.model_dump(), data_result,
    )


@task(
    name="publish",
    retries=len(PUBLISH_RETRY_DELAYS),
    retry_delay_seconds=PUBLISH_RETRY_DELAYS,
    retry_condition_fn=_retry_when(lambda error: not isinstance(error, ObjectExists)),
    cache_policy=NO_CACHE,
)
def publish(run_dir: Path, storage_config: StorageConfig, run_id: str, details: dict) -> str:
    destination = publishing.run_uri(storage_config.root, run_id)
    try:
        publishing.publish_run(run_dir, destination, details)
    except StorageError as error:
        raise type(error)(f"{error}; nothing was promoted and {destination} has no manifest (not a run); this "
                          f"run's files stay in {run_dir}, and rerunning the same command reuses the cached "
                          "training and publishes a complete run") from None
    shutil.rmtree(run_dir)  # published and verified by checksum: the local copy is no longer needed
    return destination


@task(name="promote", cache_policy=NO_CACHE)
def promote(
    decision: champion.Decision, run_uri: str, run_id: str, dataset: features.DatasetInfo,
    variants: dict[str, dict], storage_config: StorageConfig, config: ChampionConfig,
) -> champion.Decision:
    """Replaces the champion if the gate said so (and no other run promoted meanwhile); returns the
    final decision, which is also kept under champion-decisions/."""
    decision, record = champion.promote(decision, run_uri, run_id, dataset.key, variants, storage_config.root, config)
    if record:
        emit_event(
            event=PROMOTED_EVENT,
            resource={"prefect.resource.id": f"imdb-rnn-pipeline.champion.{champion.champion_uri(storage_config.root)}",
                      "prefect.resource.name": "champion"},
            payload={key: record[key] for key in ("run_id", "run_uri", "variant", "model_uri", "metric", "dataset_key")}
            | {"value": record["metrics"][config.metric], "reason": decision.reason},
        )
    return decision


@task(name="describe-run", cache_policy=NO_CACHE)
def describe_run(run_uri: str, variants: dict[str, dict], baseline_result: dict, decision: champion.Decision) -> None:
    """The run in the Prefect UI: the report with its plots inline, the metrics table (with the
    baseline), and one artifact listing the run's files with links."""
    files = reporting.published_files(variants)
    report = storage.read_bytes(storage.join(run_uri, "report.md")).decode()
    for path in files.values():
        if path.endswith(".png"):
            report = report.replace(f"]({path})", f"]({_data_uri(storage.read_bytes(storage.join(run_uri, path)))})")
    create_markdown_artifact(report, key=artifact_key("run-report"), description=f"report of {run_uri}")
    create_table_artifact(reporting.rounded(reporting.metrics_records(variants, baseline_result)),
                          key=artifact_key("variant-metrics"),
                          description=f"test metrics per variant; champion: {decision.reason}")
    create_markdown_artifact(_files_markdown(run_uri, files), key=artifact_key("run-files"),
                             description=f"files of {run_uri}")


def _files_markdown(run_uri: str, files: dict[str, str]) -> str:
    """The run's files with their sizes and links: presigned on S3; a path to copy for local
    storage, since a browser does not follow file:// links from an http page."""
    manifest_uri = storage.join(run_uri, publishing.MANIFEST_NAME)
    manifest = storage.read_bytes(manifest_uri)
    sizes = {entry["path"]: entry["bytes"] for entry in json.loads(manifest)["files"]}
    sizes[publishing.MANIFEST_NAME] = len(manifest)
    lines = [f"Run `{run_uri}`: `{publishing.MANIFEST_NAME}` lists every file with its sha256; "
             f"`make verify RUN={run_uri}` checks them.", "", "| file | size | link |", "|---|---|---|"]
    for label, path in files.items():
        url = storage.browsable_url(storage.join(run_uri, path))
        link = f"[{path}]({url})" if url.startswith(("http://", "https://")) else f"`{url.removeprefix('file://')}`"
        lines.append(f"| {label} | {sizes[path] / 1024:,.1f} KiB | {link} |")
    return "\n".join(lines) + "\n"


def run_name() -> str:
    """Flow run names that say what ran: date, source and variants."""
    config = flow_run.parameters.get("config") or {}
    if hasattr(config, "model_dump"):
        config = config.model_dump()
    source = str((config.get("data") or {}).get("source", "auto")).rsplit("/", 1)[-1]
    variants = "+".join((config.get("model") or {}).get("variants", ("onehot", "embedding")))
    return f"{datetime.now(UTC):%Y-%m-%d}-{source}-{variants}"


def run_tags(source: str, variants: tuple[str, ...]) -> list[str]:
    return [f"source:{source.rsplit('/', 1)[-1]}", *(f"variant:{name}" for name in variants)]


def emit_failure_event(flow, flow_run_info, state) -> None:
    """Flow on_failure hook: an event a Prefect automation can turn into a notification."""
    emit_event(
        event=FAILED_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run_info.id}",
                  "prefect.resource.name": flow_run_info.name},
        payload={"message": state.message or "", "flow": flow.name},
    )
