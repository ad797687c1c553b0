"""The champion gate: which published model is the one to use.

`champion.json` at the storage root names the champion's run, variant, model URI, vocabulary URI and
sha256, metrics, data set key and manifest sha256. A run's best variant replaces it only when
strictly better on the same data set (or when there is none yet); a champion from another data set
is not comparable and is replaced only with `--promote always`. A pinned champion is never replaced
by a run. A variant that is under-trained against the baseline or stalled at chance is never
promoted, not even with `--promote always`. Every change is kept in `champion-history/`.

Runs may overlap (a manual run during the scheduled one): champion.json is replaced only by a
conditional write against the version the gate judged, so a concurrent promotion is never
silently overwritten; the loser judges again against the new champion. Every run's final verdict
is kept in `champion-decisions/<run_id>.json`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.config import ChampionConfig
from tasks.errors import StorageError, WriteConflict
from tasks.registry import history, publishing
from tasks.registry.records import ChampionRecord, verify_champion
from tasks.reporting.results import VariantResult
from tasks.storage import fs
from tasks.storage.layout import MODEL_NAME, VOCABULARY_NAME, champion_uri, decision_uri, variant_file
from tasks.training.evaluation import ClassificationMetrics

log = logging.getLogger(__name__)

# Each lost race means another run promoted in between; a few rounds settle any realistic overlap.
PROMOTE_ATTEMPTS = 5
LOWER_IS_BETTER = frozenset({"loss"})


class Decision(BaseModel):
    """The gate's verdict for one run, with the reason shown in logs and report.md."""

    model_config = ConfigDict(frozen=True)

    promote: bool
    reason: str
    candidate: str | None = None
    comparable: bool | None = None
    champion: ChampionRecord | None = None  # the champion it was judged against
    champion_version: str | None = None  # the champion.json version judged; promotion is conditional on it


def _better(metric: str, value: float, other: float) -> bool:
    return value < other if metric in LOWER_IS_BETTER else value > other


def pick_candidate(variants: dict[str, VariantResult], metric: str, stall_margin: float) -> str | None:
    """The run's best variant by `metric` among the fit ones, or None."""
    values = {
        name: value
        for name, result in variants.items()
        if not result.is_unfit(stall_margin) and (value := result.test.value(metric)) is not None
    }
    best = None
    for name, value in values.items():
        if best is None or _better(metric, value, values[best]):
            best = name
    return best


def read_champion(storage_root: str) -> tuple[ChampionRecord | None, str | None]:
    """The current champion record (None when there is none) and its version token.

    Raises StorageError when champion.json is not a champion record."""
    uri = champion_uri(storage_root)
    data, version = fs.read_versioned(uri)
    try:
        return (None if data is None else ChampionRecord.model_validate_json(data)), version
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(map(str, problem["loc"]))
        raise StorageError(f"{uri} is not a champion record: {where}: {problem['msg']}") from None


def decide(
    variants: dict[str, VariantResult],
    dataset_key: str,
    champion: ChampionRecord | None,
    champion_problems: list[str],
    config: ChampionConfig,
    stall_margin: float,
    across: tuple[ClassificationMetrics, ClassificationMetrics] | None = None,
) -> Decision:
    """Whether this run's best variant should replace `champion`, and why (`stall_margin`: the
    run's training config's, which decides whether a variant is at chance). `across`: the champion's
    and the candidate's metrics on this run's raw test reviews, when the champion was trained on
    another data set and both could score them."""
    metric = config.metric
    candidate = pick_candidate(variants, metric, stall_margin)
    if candidate is None:
        return Decision(
            promote=False,
            champion=champion,
            reason=f"every variant is under-trained, stalled at chance or lacks {metric}: nothing to promote",
        )
    value = variants[candidate].test.value(metric)
    assert value is not None, "a candidate has a value of the metric"
    mine = f"{candidate} {metric} {value:.4f}"
    always = config.promote == "always"
    if config.promote == "never":
        return Decision(
            promote=False,
            candidate=candidate,
            champion=champion,
            reason=f"{mine}; promotion disabled (--promote never)",
        )
    if champion is None:
        return Decision(promote=True, candidate=candidate, reason=f"{mine}; no champion yet")
    held = f"champion {champion.label}"
    verdict = functools.partial(Decision, candidate=candidate, champion=champion)
    if champion.pinned:
        return verdict(
            promote=False,
            reason=f"{mine}; {held} is pinned: kept (make champion ARGS=--unpin releases it)",
        )
    if champion_problems:
        return verdict(
            promote=always,
            comparable=False,
            reason=f"{mine}; {held} fails verification ({champion_problems[0]}): refusing to compare"
            + ("; replaced (--promote always)" if always else "; --promote always replaces it"),
        )
    if champion.dataset_key != dataset_key and across is not None:
        return _decide_across(candidate, champion, across, metric, always)
    if champion.dataset_key != dataset_key:
        return verdict(
            promote=always,
            comparable=False,
            reason=f"{mine}; {held} was trained on data set {champion.dataset_key}, this run on "
            f"{dataset_key}: not comparable" + ("; replaced (--promote always)" if always else "; kept"),
        )
    theirs = champion.metrics.value(metric)
    assert theirs is not None, "a champion was promoted by this metric's value"
    if _better(metric, value, theirs):
        return verdict(
            promote=True,
            comparable=True,
            reason=f"{mine} beats {held} ({theirs:.4f})",
        )
    return verdict(
        promote=always,
        comparable=True,
        reason=f"{mine} does not beat {held} ({theirs:.4f})"
        + ("; replaced anyway (--promote always)" if always else "; kept"),
    )


def _decide_across(
    candidate: str,
    champion: ChampionRecord,
    across: tuple[ClassificationMetrics, ClassificationMetrics],
    metric: str,
    always: bool,
) -> Decision:
    """The verdict when both models scored this run's raw test reviews, each through its own vocabulary."""
    theirs, mine = across[0].value(metric), across[1].value(metric)
    assert theirs is not None and mine is not None, "both scored reviews of both classes"
    held = f"champion {champion.label} (data set {champion.dataset_key})"
    where = "on this run's raw test reviews, each through its own vocabulary"
    better = _better(metric, mine, theirs)
    return Decision(
        promote=better or always,
        candidate=candidate,
        champion=champion,
        comparable=True,
        reason=f"{candidate} {metric} {mine:.4f} {'beats' if better else 'does not beat'} {held} "
        f"({theirs:.4f}) {where}"
        + ("" if better else ("; replaced anyway (--promote always)" if always else "; kept")),
    )


AcrossScorer = Callable[[ChampionRecord, str], "tuple[ClassificationMetrics, ClassificationMetrics] | None"]


def judge(
    variants: dict[str, VariantResult],
    dataset_key: str,
    storage_root: str,
    config: ChampionConfig,
    stall_margin: float,
    score_across: AcrossScorer | None = None,
) -> Decision:
    """Reads the current champion, checks that its run still verifies, and decides.

    `score_across(champion, candidate)` scores both on this run's raw test reviews when the champion
    was trained on another data set (see tasks/registry/cross_gate.py); without it, such a champion is not comparable.
    """
    champion, version = read_champion(storage_root)
    problems = [] if champion is None else verify_champion(champion)
    if champion is not None and problems:
        log.warning("champion %s fails verification: %s", champion.run_uri, "; ".join(problems))
    across = None
    candidate = pick_candidate(variants, config.metric, stall_margin)
    if score_across and candidate and champion and not problems and champion.dataset_key != dataset_key:
        across = None if champion.pinned else score_across(champion, candidate)
    decision = decide(variants, dataset_key, champion, problems, config, stall_margin, across).model_copy(
        update={"champion_version": version}
    )
    log.info("champion gate: %s", decision.reason)
    return decision


def promote(
    decision: Decision,
    run_uri: str,
    run_id: str,
    dataset_key: str,
    variants: dict[str, VariantResult],
    storage_root: str,
    config: ChampionConfig,
    stall_margin: float,
) -> tuple[Decision, ChampionRecord | None]:
    """Writes champion.json for a promoted run, only once its published manifest verifies and only
    over the champion the gate judged; returns the final decision and the new record (or None).

    When another run promoted in between, judges again against that champion. The final decision
    is recorded in `champion-decisions/<run_id>.json` either way.
    """
    record = None
    if decision.promote:
        problems = publishing.verify_run(run_uri)
        if problems:
            raise StorageError(f"{run_uri} does not verify, champion not replaced: {problems[0]}")
        decision, record = _promote_conditionally(
            decision,
            storage_root,
            run_id,
            record_for=lambda candidate: _champion_record(
                candidate, run_uri, run_id, dataset_key, variants, config.metric
            ),
            judge_again=lambda: judge(variants, dataset_key, storage_root, config, stall_margin),
        )
    record_decision(storage_root, run_id, run_uri, decision, promoted=record is not None)
    return decision, record


def _promote_conditionally(
    decision: Decision,
    storage_root: str,
    run_id: str,
    record_for: Callable[[str], ChampionRecord],
    judge_again: Callable[[], Decision],
) -> tuple[Decision, ChampionRecord | None]:
    """champion.json replaced by `record_for(candidate)` only over the version the gate judged; on a
    conflict (another run promoted), `judge_again` decides whether this run still promotes."""
    for _ in range(PROMOTE_ATTEMPTS):
        assert decision.candidate is not None, "the gate promotes only a candidate"
        record = record_for(decision.candidate)
        try:
            fs.write_if_unchanged(
                champion_uri(storage_root), fs.json_bytes(record.to_json()), decision.champion_version
            )
        except WriteConflict:
            log.warning("champion.json changed since the gate read it (another run promoted); judging again")
            decision = judge_again()
            decision = decision.model_copy(
                update={"reason": f"{decision.reason} (judged again: another run promoted while this one published)"}
            )
            if not decision.promote:
                return decision, None
            continue
        log.info("promoted %s/%s to champion at %s", run_id, decision.candidate, champion_uri(storage_root))
        history.record_change(storage_root, "promote", record, decision.champion, decision.reason)
        return decision, record
    return decision.model_copy(
        update={
            "promote": False,
            "reason": f"{decision.reason}; not promoted: "
            f"champion.json changed {PROMOTE_ATTEMPTS} times while promoting",
        }
    ), None


def _champion_record(
    variant: str, run_uri: str, run_id: str, dataset_key: str, variants: dict[str, VariantResult], metric: str
) -> ChampionRecord:
    vocabulary = publishing.manifest_entry(run_uri, VOCABULARY_NAME)
    return ChampionRecord(
        run_id=run_id,
        run_uri=run_uri,
        variant=variant,
        model_uri=fs.join(run_uri, variant_file(variant, MODEL_NAME)),
        vocabulary_uri=None if vocabulary is None else fs.join(run_uri, VOCABULARY_NAME),
        vocabulary_sha256=None if vocabulary is None else vocabulary["sha256"],
        metric=metric,
        metrics=variants[variant].test,
        dataset_key=dataset_key,
        manifest_sha256=publishing.manifest_sha256(run_uri),
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def record_decision(storage_root: str, run_id: str, run_uri: str, decision: Decision, promoted: bool) -> str:
    """Keeps a run's final verdict (also a lost race) beside the champion: written once per run."""
    uri = decision_uri(storage_root, run_id)
    previous = decision.champion
    fs.write_json(
        uri,
        {
            "run_id": run_id,
            "run_uri": run_uri,
            "promoted": promoted,
            "candidate": decision.candidate,
            "reason": decision.reason,
            "previous_champion": None if previous is None else {"run_id": previous.run_id, "variant": previous.variant},
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        create_only=True,
    )
    return uri
