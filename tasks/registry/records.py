"""The champion record: what champion.json holds, and what each change in the champion's history keeps
whole so that a rollback can restore it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

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
