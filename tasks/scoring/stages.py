"""The batch-scoring flow's stages as Prefect tasks: verify the model, score the input, publish."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from tasks.config import ScoringConfig
from tasks.data.drift import run_statistics
from tasks.errors import PipelineError
from tasks.runtime import ui
from tasks.runtime.ui import artifact_key
from tasks.scoring import batch, scorer


@task(name="verify-model", cache_policy=NO_CACHE)
def verify_model(config: ScoringConfig) -> dict[str, str]:
    """The champion's (or the named) run verified whole, and the provenance of the model to use."""
    model = scorer.load_scoring_model(config.storage.root, config.run, config.variant, verify_run=True)
    get_run_logger().info("scoring with %s (sha256 %s)", model.model_uri, model.model_sha256)
    return model.provenance()


@task(name="score-input", cache_policy=NO_CACHE)
def score_input(config: ScoringConfig, model: dict[str, str], local_dir: Path, batch_id: str) -> dict:
    """Reads, checks and scores the input in batches (progress in the log and the UI); writes the
    batch's files to `local_dir` and returns the summary."""
    run_uri = model["model_uri"].rsplit("/", 2)[0]
    loaded = scorer.load_scoring_model(config.storage.root, run_uri, model["variant"])
    if loaded.provenance() != model:
        raise PipelineError(f"{run_uri} changed between verification and scoring")
    logger = get_run_logger()
    artifact = cast(UUID, create_progress_artifact(0.0, key=artifact_key("batch-scoring"), description="started"))

    def progress(done: int, total: int) -> None:
        logger.info("scored %d of %d reviews (%.0f %%)", done, total, 100 * done / total)
        update_progress_artifact(artifact, 100.0 * done / total, description=f"{done:,} of {total:,} reviews")

    statistics, note = run_statistics(run_uri)
    reference = batch.DriftReference(statistics, note, config.max_drift, batch_key=f"scoring batch {batch_id}")
    table, summary = batch.run_batch(loaded, config.input, config.text_column, config.id_column, reference, progress)
    drift = summary["drift"]
    if drift and drift["drifted"]:
        logger.warning(
            "this batch drifted from %s: %s above %g",
            summary["drift_reference"],
            ", ".join(drift["drifted"]),
            drift["max_drift"],
        )
        ui.announce_drift(drift, f"imdb-rnn-pipeline.predictions.{batch_id}", f"scoring batch {batch_id}")
    batch.write_predictions(local_dir, table, summary)
    return summary


@task(name="publish-predictions", cache_policy=NO_CACHE)
def publish_predictions(local_dir: Path, config: ScoringConfig, batch_id: str, summary: dict) -> str:
    details = {"input": config.input, "summary": summary}
    uri = batch.publish_batch(local_dir, config.output_root, batch_id, details)
    shutil.rmtree(local_dir)  # published and verified by checksum
    return uri
