"""Stages 2 and 10-11 as Prefect tasks: the unchanged check, the champion gate, the report, publishing and promotion."""

from __future__ import annotations

import shutil

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import PipelineConfig
from tasks.data import vocabulary
from tasks.data.sources import SourceInfo
from tasks.errors import ObjectExists, StorageError
from tasks.registry import cross_gate, gate, publishing, unchanged
from tasks.registry.publishing import RunContext
from tasks.registry.records import ChampionRecord
from tasks.reporting import model_card, report
from tasks.reporting.results import RunResults, VariantResult
from tasks.runtime import ui
from tasks.runtime.policies import retry_when
from tasks.storage import layout
from tasks.training.evaluation import ClassificationMetrics

PUBLISH_RETRY_DELAYS = [5.0, 30.0]  # seconds: a storage hiccup heals; a retry resumes the upload


@task(name="skip-unchanged", cache_policy=NO_CACHE)
def find_unchanged(config: PipelineConfig, source: SourceInfo) -> unchanged.UnchangedRun | None:
    """The latest published run when this run would only repeat it; never cached: runs get published."""
    return unchanged.find_unchanged(config, source.sha256)


@task(name="champion-gate", cache_policy=NO_CACHE)
def judge_champion(run: RunContext, variants: dict[str, VariantResult]) -> gate.Decision:
    """The gate; a champion of another data set is scored beside the candidate (still in the run's
    folder) on this run's raw test reviews when it can be."""
    config = run.config

    def score_across(
        held: ChampionRecord, candidate: str
    ) -> tuple[ClassificationMetrics, ClassificationMetrics] | None:
        if config.champion.promote == "never":
            return None
        return cross_gate.score_across(
            held, str(run.run_dir / layout.variant_file(candidate, layout.MODEL_NAME)), run.dataset
        )

    stall_margin = config.training.stall_margin
    return gate.judge(variants, run.dataset.key, config.storage.root, config.champion, stall_margin, score_across)


@task(name="report", cache_policy=NO_CACHE)
def write_report(run: RunContext, results: RunResults, decision: gate.Decision) -> None:
    facts = report.RunFacts(run=run, results=results, decision=decision)
    report.write_run_files(facts)
    model_card.write_model_card(facts)
    vocabulary.copy_into_run(run.dataset.uri, run.run_dir)  # a run folder scores raw text on its own


@task(
    name="publish",
    retries=len(PUBLISH_RETRY_DELAYS),
    retry_delay_seconds=PUBLISH_RETRY_DELAYS,
    retry_condition_fn=retry_when(lambda error: not isinstance(error, ObjectExists)),
    cache_policy=NO_CACHE,
)
def publish(run: RunContext) -> str:
    destination = layout.run_uri(run.config.storage.root, run.run_id)
    try:
        publishing.publish_run(run.run_dir, destination, publishing.run_details(run))
    except StorageError as error:
        raise type(error)(
            f"{error}; nothing was promoted and {destination} has no manifest (not a run); this "
            f"run's files stay in {run.run_dir}, and rerunning the same command reuses the cached "
            "training and publishes a complete run"
        ) from None
    shutil.rmtree(run.run_dir)  # published and verified by checksum: the local copy is no longer needed
    return destination


@task(name="promote", cache_policy=NO_CACHE)
def promote(
    run: RunContext, run_uri: str, variants: dict[str, VariantResult], decision: gate.Decision
) -> gate.Decision:
    """Replaces the champion if the gate said so (and no other run promoted meanwhile); returns the
    final decision, which is also kept under champion-decisions/."""
    config, margin = run.config, run.config.training.stall_margin
    decision, record = gate.promote(
        decision, run_uri, run.run_id, run.dataset.key, variants, config.storage.root, config.champion, margin
    )
    if record:
        ui.announce_promotion(record, layout.champion_uri(config.storage.root), config.champion.metric, decision.reason)
    return decision


@task(name="describe-run", cache_policy=NO_CACHE)
def describe_run(run_uri: str, results: RunResults, decision: gate.Decision, presign_minutes: int = 0) -> None:
    ui.show_run(run_uri, results, decision.reason, presign_minutes)
