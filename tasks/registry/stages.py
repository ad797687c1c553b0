"""Stages 9-10 as Prefect tasks: the champion gate, the report, publishing and promotion."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import ChampionConfig, StorageConfig
from tasks.data import store, vocabulary
from tasks.data.sources import SourceInfo
from tasks.errors import ObjectExists, StorageError
from tasks.registry import cross_gate, gate, publishing
from tasks.registry.records import ChampionRecord
from tasks.reporting import model_card, report
from tasks.reporting.results import VariantResult
from tasks.runtime import ui
from tasks.runtime.policies import retry_when
from tasks.training.baseline import BaselineResult
from tasks.training.evaluation import ClassificationMetrics

PUBLISH_RETRY_DELAYS = [5.0, 30.0]  # seconds: a storage hiccup heals; a retry resumes the upload


@task(name="champion-gate", cache_policy=NO_CACHE)
def judge_champion(
    variants: dict[str, VariantResult],
    dataset: store.DatasetInfo,
    config: ChampionConfig,
    storage_config: StorageConfig,
    stall_margin: float,
    run_dir: Path | None = None,
) -> gate.Decision:
    """The gate; a champion of another data set is scored beside the candidate (still in `run_dir`)
    on this run's raw test reviews when it can be."""

    def score_across(
        held: ChampionRecord, candidate: str
    ) -> tuple[ClassificationMetrics, ClassificationMetrics] | None:
        if run_dir is None or config.promote == "never":
            return None
        return cross_gate.score_across(held, str(run_dir / candidate / "model.keras"), dataset)

    return gate.judge(variants, dataset.key, storage_config.root, config, stall_margin, score_across)


@task(name="report", cache_policy=NO_CACHE)
def write_report(
    run_dir: Path,
    run_id: str,
    config: dict,
    source: SourceInfo,
    dataset: store.DatasetInfo,
    variants: dict[str, VariantResult],
    baseline_result: BaselineResult,
    decision: gate.Decision,
    data_result: dict | None = None,
) -> None:
    facts = report.RunFacts(
        run_id=run_id,
        config=config,
        source=source.model_dump(),
        dataset=dataset.model_dump(),
        variants=variants,
        baseline=baseline_result,
        decision=decision.model_dump(),
        data_checks=data_result,
    )
    report.write_run_files(run_dir, facts)
    model_card.write_model_card(run_dir, facts)
    vocabulary.copy_into_run(dataset.uri, run_dir)  # a run folder scores raw text on its own


@task(
    name="publish",
    retries=len(PUBLISH_RETRY_DELAYS),
    retry_delay_seconds=PUBLISH_RETRY_DELAYS,
    retry_condition_fn=retry_when(lambda error: not isinstance(error, ObjectExists)),
    cache_policy=NO_CACHE,
)
def publish(run_dir: Path, storage_config: StorageConfig, run_id: str, details: dict) -> str:
    destination = publishing.run_uri(storage_config.root, run_id)
    try:
        publishing.publish_run(run_dir, destination, details)
    except StorageError as error:
        raise type(error)(
            f"{error}; nothing was promoted and {destination} has no manifest (not a run); this "
            f"run's files stay in {run_dir}, and rerunning the same command reuses the cached "
            "training and publishes a complete run"
        ) from None
    shutil.rmtree(run_dir)  # published and verified by checksum: the local copy is no longer needed
    return destination


@task(name="promote", cache_policy=NO_CACHE)
def promote(
    decision: gate.Decision,
    run_uri: str,
    run_id: str,
    dataset: store.DatasetInfo,
    variants: dict[str, VariantResult],
    storage_config: StorageConfig,
    config: ChampionConfig,
    stall_margin: float,
) -> gate.Decision:
    """Replaces the champion if the gate said so (and no other run promoted meanwhile); returns the
    final decision, which is also kept under champion-decisions/."""
    decision, record = gate.promote(
        decision, run_uri, run_id, dataset.key, variants, storage_config.root, config, stall_margin
    )
    if record:
        ui.announce_promotion(record, gate.champion_uri(storage_config.root), config.metric, decision.reason)
    return decision


@task(name="describe-run", cache_policy=NO_CACHE)
def describe_run(
    run_uri: str, variants: dict[str, VariantResult], baseline_result: BaselineResult, decision: gate.Decision
) -> None:
    ui.show_run(run_uri, variants, baseline_result, decision.reason)
