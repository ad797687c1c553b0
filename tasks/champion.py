"""The champion gate: which published model is the one to use.

`champion.json` at the storage root names the champion's run, variant, model URI, metrics, data set
key and manifest sha256. A run's best variant replaces it only when strictly better on the same
data set (or when there is none yet); a champion from another data set is not comparable and is
replaced only with `--promote always`. A stalled variant is never promoted.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import BaseModel

from tasks import publishing, storage
from tasks.config import ChampionConfig
from tasks.errors import StorageError

log = logging.getLogger(__name__)

CHAMPION_NAME = "champion.json"
# A variant whose test accuracy is within this of the majority-class rate learned nothing useful.
STALL_MARGIN = 0.02
LOWER_IS_BETTER = frozenset({"loss"})


class Decision(BaseModel):
    """The gate's verdict for one run, with the reason shown in logs and report.md."""

    promote: bool
    reason: str
    candidate: str | None = None
    comparable: bool | None = None
    champion: dict | None = None


def is_stalled(test_metrics: dict) -> bool:
    return test_metrics["accuracy"] <= test_metrics["majority_rate"] + STALL_MARGIN


def _better(metric: str, value: float, other: float) -> bool:
    return value < other if metric in LOWER_IS_BETTER else value > other


def pick_candidate(variants: dict[str, dict], metric: str) -> str | None:
    """The run's best variant by `metric` among those that did not stall, or None."""
    healthy = [name for name, result in variants.items()
               if not is_stalled(result["test"]) and result["test"].get(metric) is not None]
    best = None
    for name in healthy:
        if best is None or _better(metric, variants[name]["test"][metric], variants[best]["test"][metric]):
            best = name
    return best


def champion_uri(storage_root: str) -> str:
    return storage.join(storage_root, CHAMPION_NAME)


def read_champion(storage_root: str) -> dict | None:
    uri = champion_uri(storage_root)
    return storage.read_json(uri) if storage.exists(uri) else None


def decide(
    variants: dict[str, dict],
    dataset_key: str,
    champion: dict | None,
    champion_problems: list[str],
    config: ChampionConfig,
) -> Decision:
    """Whether this run's best variant should replace `champion`, and why."""
    metric = config.metric
    candidate = pick_candidate(variants, metric)
    if candidate is None:
        return Decision(promote=False, champion=champion,
                        reason=f"every variant stalled at chance or lacks {metric}: nothing to promote")
    value = variants[candidate]["test"][metric]
    mine = f"{candidate} {metric} {value:.4f}"
    always = config.promote == "always"
    if config.promote == "never":
        return Decision(promote=False, candidate=candidate, champion=champion, reason=f"{mine}; promotion disabled (--promote never)")
    if champion is None:
        return Decision(promote=True, candidate=candidate, reason=f"{mine}; no champion yet")
    held = f"champion {champion['run_id']}/{champion['variant']}"
    if champion_problems:
        return Decision(promote=always, candidate=candidate, champion=champion, comparable=False,
                        reason=f"{mine}; {held} fails verification ({champion_problems[0]}): refusing to compare"
                        + ("; replaced (--promote always)" if always else "; --promote always replaces it"))
    if champion["dataset_key"] != dataset_key:
        return Decision(promote=always, candidate=candidate, champion=champion, comparable=False,
                        reason=f"{mine}; {held} was trained on data set {champion['dataset_key']}, this run on "
                        f"{dataset_key}: not comparable" + ("; replaced (--promote always)" if always else "; kept"))
    theirs = champion["metrics"][metric]
    if _better(metric, value, theirs):
        return Decision(promote=True, candidate=candidate, champion=champion, comparable=True,
                        reason=f"{mine} beats {held} ({theirs:.4f})")
    return Decision(promote=always, candidate=candidate, champion=champion, comparable=True,
                    reason=f"{mine} does not beat {held} ({theirs:.4f})"
                    + ("; replaced anyway (--promote always)" if always else "; kept"))


def judge(variants: dict[str, dict], dataset_key: str, storage_root: str, config: ChampionConfig) -> Decision:
    """Reads the current champion, checks that its run still verifies, and decides."""
    champion = read_champion(storage_root)
    problems = publishing.verify_run(champion["run_uri"]) if champion else []
    if champion and not problems and publishing.manifest_sha256(champion["run_uri"]) != champion["manifest_sha256"]:
        problems = ["its manifest is not the one champion.json names"]
    decision = decide(variants, dataset_key, champion, problems, config)
    log.info("champion gate: %s", decision.reason)
    return decision


def promote(decision: Decision, run_uri: str, run_id: str, dataset_key: str, variants: dict[str, dict],
            storage_root: str, metric: str) -> dict | None:
    """Writes champion.json for a promoted run, only once its published manifest verifies."""
    if not decision.promote:
        return None
    problems = publishing.verify_run(run_uri)
    if problems:
        raise StorageError(f"{run_uri} does not verify, champion not replaced: {problems[0]}")
    record = {
        "run_id": run_id,
        "run_uri": run_uri,
        "variant": decision.candidate,
        "model_uri": storage.join(run_uri, decision.candidate, "model.keras"),
        "metric": metric,
        "metrics": variants[decision.candidate]["test"],
        "dataset_key": dataset_key,
        "manifest_sha256": publishing.manifest_sha256(run_uri),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    storage.write_json(champion_uri(storage_root), record)
    log.info("promoted %s/%s to champion at %s", run_id, decision.candidate, champion_uri(storage_root))
    return record
