"""What a run shows in the Prefect UI beyond task states: artifacts, events, run names and tags."""

from __future__ import annotations

import base64
import json
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit
from uuid import UUID

from prefect import Flow, State, get_client
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run as current_flow_run

from tasks.config import ModelConfig
from tasks.data.checks import DataCheckResult
from tasks.registry.records import ChampionRecord
from tasks.reporting import plots, report, results, tables
from tasks.storage import fs
from tasks.storage.layout import CURVE_PLOTS, MANIFEST_NAME, REPORT_NAME

ARTIFACT_PREFIX = "imdb"  # artifact keys: lowercase letters, digits and dashes only
PROMOTED_EVENT = "imdb-rnn-pipeline.champion.promoted"
FAILED_EVENT = "imdb-rnn-pipeline.run.failed"
DRIFT_EVENT = "imdb-rnn-pipeline.data.drift"
DATA_ARRIVED_EVENT = "imdb-rnn-pipeline.data.arrived"
# The resource of a data-arrived event: the watched prefix, which the retraining deployment's
# trigger names in infra/prefect.yaml, so that only its own prefix's snapshots start it.
DATA_RESOURCE_PREFIX = "imdb-rnn-pipeline.data."
RECENT_EPOCHS = 5  # epochs in a progress artifact's table: enough for a trend, short enough to read at a glance
EPOCH_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
DRIFT_PAYLOAD = (
    "dataset_key",
    "reference_dataset_key",
    "distances",
    "max_drift",
    "drifted",
    "positive_share",
    "mean_length",
    "oov_rate",
)
PROMOTED_PAYLOAD = ("run_id", "run_uri", "variant", "model_uri", "metric", "dataset_key")


def artifact_key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join((ARTIFACT_PREFIX, *parts)).lower()).strip("-")


def epoch_table(records: list[dict]) -> str:
    rows = [(str(record["epoch"]), *(f"{record[name]:.4f}" for name in EPOCH_COLUMNS[1:])) for record in records]
    return tables.markdown_table(rows, EPOCH_COLUMNS)


def start_training_progress(
    key_parts: tuple[str, ...], label: str, max_epochs: int
) -> tuple[UUID, Callable[[dict], None]]:
    """A progress artifact for one training and the callback that moves it every epoch; its
    description shows the last epochs as a table (a restart starts the table again at epoch 1)."""
    # Called from a sync task, Prefect's sync/async helper returns the id itself, not a coroutine.
    artifact = cast(
        UUID, create_progress_artifact(0.0, key=artifact_key(*key_parts), description=f"{label}: training started")
    )
    epochs: list[dict] = []

    def update(record: dict) -> None:
        if record["epoch"] == 1:
            epochs.clear()
        epochs.append(record)
        update_progress_artifact(
            artifact,
            100.0 * record["epoch"] / max_epochs,
            description=f"{label} epoch {record['epoch']}/{max_epochs} ({record['seconds']:.1f} s)\n\n"
            + epoch_table(epochs[-RECENT_EPOCHS:]),
        )

    return artifact, update


def finish_training_progress(artifact: UUID, label: str, summary: str, history: dict) -> None:
    update_progress_artifact(
        artifact,
        100.0,
        description=f"{label}: {summary}\n\n"
        f"{epoch_table(history['epochs'][-RECENT_EPOCHS:])}\n\n{_curves_markdown(history)}",
    )


def _data_uri(png: bytes) -> str:
    """A PNG as an image a browser shows from any page: no file:// link, no URL that expires."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _curves_markdown(history: dict) -> str:
    """A variant's loss and accuracy curves, inline."""
    with tempfile.TemporaryDirectory() as folder:
        plots.plot_history(history, Path(folder))
        return " ".join(
            f"![{metric}]({_data_uri((Path(folder) / name).read_bytes())})" for metric, name in CURVE_PLOTS.items()
        )


def show_data_checks(result: DataCheckResult, dataset_key: str) -> None:
    """The data set's statistics and checks as an artifact; the drift event when it drifted."""
    create_markdown_artifact(
        report.render_data_section(result.model_dump(), with_plots=False),
        key=artifact_key("data-checks"),
        description=f"statistics and checks of data set {dataset_key}",
    )
    drift = result.drift
    if drift and drift["drifted"]:
        announce_drift(drift, f"imdb-rnn-pipeline.dataset.{dataset_key}", f"data set {dataset_key}")


def announce_drift(drift: dict, resource_id: str, resource_name: str) -> None:
    """The drift event (a data set against the champion's, or a scoring batch against the model's
    training data), with the numbers behind it, for an automation to act on."""
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": resource_id, "prefect.resource.name": resource_name},
        payload={key: drift[key] for key in DRIFT_PAYLOAD},
    )


def announce_promotion(record: ChampionRecord, champion_uri: str, metric: str, reason: str) -> None:
    """The event a Prefect automation can turn into a notification of a new champion."""
    emit_event(
        event=PROMOTED_EVENT,
        resource={
            "prefect.resource.id": f"imdb-rnn-pipeline.champion.{champion_uri}",
            "prefect.resource.name": "champion",
        },
        payload={key: getattr(record, key) for key in PROMOTED_PAYLOAD}
        | {"value": record.metrics.value(metric), "reason": reason},
    )


def data_resource_id(prefix: str) -> str:
    """The resource id of a watched prefix: the prefix itself, without credentials."""
    return f"{DATA_RESOURCE_PREFIX}{fs.without_credentials(prefix)}"


def announce_new_data(prefix: str, new: list[str], snapshots: list[str]) -> None:
    """The event that starts a retraining: snapshots of `prefix` that no published run trained on."""
    shown = fs.without_credentials(prefix)
    emit_event(
        event=DATA_ARRIVED_EVENT,
        resource={"prefect.resource.id": data_resource_id(prefix), "prefect.resource.name": shown},
        payload={"prefix": shown, "new_snapshots": new, "snapshots": len(snapshots)},
    )


def show_run(run_uri: str, run_results: results.RunResults, champion_reason: str, presign_minutes: int = 0) -> None:
    """The run in the Prefect UI: the report with its plots inline, the metrics table (with the
    baseline), and one artifact listing the run's files."""
    files = report.published_files(run_results.variants)
    markdown = fs.read_bytes(fs.join(run_uri, REPORT_NAME)).decode()
    for path in files.values():
        if path.endswith(".png"):
            markdown = markdown.replace(f"]({path})", f"]({_data_uri(fs.read_bytes(fs.join(run_uri, path)))})")
    create_markdown_artifact(markdown, key=artifact_key("run-report"), description=f"report of {run_uri}")
    create_table_artifact(
        tables.rounded(results.metrics_records(run_results.variants, run_results.baseline)),
        key=artifact_key("variant-metrics"),
        description=f"test metrics per variant; champion: {champion_reason}",
    )
    create_markdown_artifact(
        _files_markdown(run_uri, files, presign_minutes * 60),
        key=artifact_key("run-files"),
        description=f"files of {run_uri}",
    )


def _files_markdown(run_uri: str, files: dict[str, str], presign_seconds: int = 0) -> str:
    """The run's files with their sizes and where they are: a path or s3:// URI to copy (an
    artifact lives as long as the flow run, and anyone who reads the UI reads it: a link that opens
    an S3 object would hand them a credential). Signed links, valid for `presign_seconds`, only
    when asked for."""
    manifest = fs.read_bytes(fs.join(run_uri, MANIFEST_NAME))
    sizes = {entry["path"]: entry["bytes"] for entry in json.loads(manifest)["files"]}
    sizes[MANIFEST_NAME] = len(manifest)
    rows = []
    for label, path in files.items():
        location = fs.shown_location(fs.join(run_uri, path), presign_seconds)
        link = f"[{path}]({location})" if location.startswith(("http://", "https://")) else f"`{location}`"
        rows.append((label, f"{sizes[path] / 1024:,.1f} KiB", link))
    expiry = f" Links expire {presign_seconds // 60} minutes after the run." if presign_seconds else ""
    return (
        f"Run `{run_uri}`: `{MANIFEST_NAME}` lists every file with its sha256; "
        f"`make verify RUN={run_uri}` checks them.{expiry}\n\n"
        + tables.markdown_table(rows, ("file", "size", "location"))
        + "\n"
    )


def source_label(source: str) -> str:
    """A source as a run's name and tags show it: the file or folder it names, never its host,
    user or query (where credentials sit)."""
    path = urlsplit(source).path if "://" in source else source
    return path.rstrip("/").rsplit("/", 1)[-1] or fs.without_credentials(source)


def run_name() -> str:
    """Flow run names that say what ran: date, source and variants."""
    config = current_flow_run.parameters.get("config") or {}
    if hasattr(config, "model_dump"):
        config = config.model_dump()
    source = source_label(str((config.get("data") or {}).get("source", "auto")))
    variants = "+".join((config.get("model") or {}).get("variants", ModelConfig().variants))
    return f"{datetime.now(UTC):%Y-%m-%d}-{source}-{variants}"


def run_tags(source: str, variants: tuple[str, ...]) -> list[str]:
    return [f"source:{source_label(source)}", *(f"variant:{name}" for name in variants)]


def tag_flow_run(source: str, variants: tuple[str, ...]) -> None:
    """Gives the running flow run its `source:` and `variant:` tags (those of a deployment stay):
    the flow run only, not its task runs, which would each ask the server for concurrency slots."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    current = list(context.flow_run.tags)
    missing = [tag for tag in run_tags(source, variants) if tag not in current]
    if missing:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, tags=[*current, *missing])


def emit_failure_event(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """Flow on_failure hook: an event a Prefect automation can turn into a notification."""
    emit_event(
        event=FAILED_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.name": flow_run.name},
        payload={"message": state.message or "", "flow": flow.name},
    )
