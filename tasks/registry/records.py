"""The champion record: what champion.json holds, and what each change in the champion's history keeps
whole so that a rollback can restore it; and the one check that a record still names what was promoted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.registry import publishing
from tasks.training.evaluation import ClassificationMetrics


class ChampionRecord(BaseModel):
    """The model to use: its run and variant, where its model and vocabulary are (with the
    vocabulary's sha256), how it scored on its test set, on which data set, and the sha256 of the
    manifest it was promoted with."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_uri: str
    variant: str
    model_uri: str
    vocabulary_uri: str | None = None  # None: its data set has no word index (and records older than vocabularies)
    vocabulary_sha256: str | None = None
    metric: str  # the test metric it was judged by
    metrics: ClassificationMetrics
    dataset_key: str
    manifest_sha256: str
    promoted_at: str
    pinned: bool = False  # runs never replace a pinned champion

    @property
    def label(self) -> str:
        """`run_id/variant`, as logs, reasons and the champion's history name it."""
        return f"{self.run_id}/{self.variant}"

    def to_json(self) -> dict[str, Any]:
        """The record as champion.json holds it: the fields it was written with, no more (an older
        record's missing fields stay missing, and `pinned` appears once it was pinned or unpinned)."""
        return self.model_dump(mode="json", exclude_unset=True)


def verify_champion(record: ChampionRecord, whole_run: bool = True) -> list[str]:
    """Problems of the run a champion record names; empty when it is what was promoted.

    With `whole_run`, every file of the run against its manifest (the gate and a rollback ask this);
    always, the manifest against the sha256 the record was promoted with (scoring asks only this, then
    checks the two files it reads)."""
    problems = publishing.verify_run(record.run_uri) if whole_run else []
    if not problems and publishing.manifest_sha256(record.run_uri) != record.manifest_sha256:
        problems = ["its manifest is not the one it was promoted with"]
    return problems
