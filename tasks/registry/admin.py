"""Changing the champion by hand: rollback to an earlier champion, pin and unpin.

Each change verifies what it installs, replaces champion.json only by a conditional write over the
version it read (a promotion in between is never overwritten), and is recorded in the history.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.errors import PipelineError, WriteConflict
from tasks.registry import history
from tasks.registry.gate import read_champion
from tasks.registry.records import ChampionRecord, verify_champion
from tasks.storage import fs
from tasks.storage.layout import CHAMPION_NAME, champion_uri


def _earlier_champion(changes: list[dict], current: ChampionRecord | None, run_id: str | None) -> ChampionRecord:
    """The record to restore: the latest one of `run_id`, or the latest that is not the current champion."""
    records = [entry["champion"] for entry in reversed(changes)]
    if run_id is not None:
        found = next((record for record in records if record["run_id"] == run_id), None)
        if found is None:
            raise PipelineError(f"run {run_id} was never champion here: nothing to roll back to")
        return ChampionRecord.model_validate(found)
    now = None if current is None else (current.run_id, current.variant)
    found = next((record for record in records if (record["run_id"], record["variant"]) != now), None)
    if found is None:
        raise PipelineError("the history holds no earlier champion: nothing to roll back to")
    return ChampionRecord.model_validate(found)


def _replace(storage_root: str, record: ChampionRecord, version: str | None) -> None:
    try:
        fs.write_if_unchanged(champion_uri(storage_root), fs.json_bytes(record.to_json()), version)
    except WriteConflict:
        raise PipelineError(
            f"{CHAMPION_NAME} changed while this command ran (a run promoted): nothing changed; run it again"
        ) from None


def rollback(storage_root: str, run_id: str | None = None, command: str | None = None) -> ChampionRecord:
    """Restores the previous champion (or the latest record of `run_id`) after its run verifies
    against the manifest it was promoted with; keeps the pin; returns the new record."""
    current, version = read_champion(storage_root)
    target = _earlier_champion(history.read_history(storage_root), current, run_id)
    problems = verify_champion(target)
    if problems:
        raise PipelineError(f"{target.run_uri} does not verify, champion not changed: {problems[0]}")
    pinned = bool(current and current.pinned)
    record = target.model_copy(
        update={"promoted_at": datetime.now(UTC).isoformat(timespec="seconds"), "pinned": pinned}
    )
    _replace(storage_root, record, version)
    reason = f"rolled back from {current.label if current else 'no champion'} to {target.label}"
    history.record_change(storage_root, "rollback", record, current, reason, command)
    return record


def set_pinned(storage_root: str, pinned: bool, command: str | None = None) -> ChampionRecord:
    """Pins (runs never replace it) or unpins the current champion; returns its record."""
    current, version = read_champion(storage_root)
    if current is None:
        raise PipelineError(f"no champion under {storage_root} to {'pin' if pinned else 'unpin'}")
    if current.pinned == pinned:
        return current
    record = current.model_copy(update={"pinned": pinned})
    _replace(storage_root, record, version)
    action = "pin" if pinned else "unpin"
    reason = f"{current.label} {'pinned: runs keep it' if pinned else 'unpinned: runs may replace it'}"
    history.record_change(storage_root, action, record, current, reason, command)
    return record
