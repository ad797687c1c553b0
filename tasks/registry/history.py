"""The champion's history: every change to champion.json (promotion, rollback, pin, unpin) as one
create-only JSON object under `<storage>/champion-history/`, named so that names sort by time.

Objects are never rewritten, so the history works the same on S3 (which has no append).
"""

from __future__ import annotations

import shlex
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from tasks.registry.records import ChampionRecord
from tasks.storage import fs
from tasks.storage.layout import history_uri

ACTIONS = ("promote", "rollback", "pin", "unpin")


def current_command(argv: list[str] | None = None) -> str:
    """The command line of this process (or `argv`), as a person would type it, with the
    credentials of any URI in it hidden (`--source https://user:token@host/...`)."""
    arguments = sys.argv if argv is None else argv
    return shlex.join([Path(arguments[0]).name, *map(_without_credentials, arguments[1:])])


def _without_credentials(argument: str) -> str:
    option, equals, value = argument.partition("=")
    if equals and option.startswith("-"):
        return f"{option}={fs.without_credentials(value)}"
    return fs.without_credentials(argument)


def _summary(record: ChampionRecord | None) -> dict | None:
    return (
        None if record is None else {"run_id": record.run_id, "variant": record.variant, "model_uri": record.model_uri}
    )


def record_change(
    storage_root: str,
    action: str,
    record: ChampionRecord,
    previous: ChampionRecord | None,
    reason: str,
    command: str | None = None,
) -> str:
    """Appends one change: when, the new champion record (whole, so a rollback can restore it), the
    previous champion, why, and by which command. Returns the entry's URI."""
    if action not in ACTIONS:
        raise ValueError(f"unknown champion change {action!r}")
    now = datetime.now(UTC)
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}.json"
    entry = {
        "at": now.isoformat(timespec="seconds"),
        "action": action,
        "run_id": record.run_id,
        "variant": record.variant,
        "champion": record.to_json(),
        "previous": _summary(previous),
        "reason": reason,
        "command": command or current_command(),
    }
    uri = fs.join(history_uri(storage_root), name)
    fs.write_json(uri, entry, create_only=True)
    return uri


def read_history(storage_root: str) -> list[dict]:
    """Every recorded change, oldest first; empty when there is none."""
    folder = history_uri(storage_root)
    if not fs.exists(folder):
        return []
    filesystem, path = fs.filesystem(folder)
    names = sorted(name.rsplit("/", 1)[-1] for name in filesystem.ls(path, detail=False) if name.endswith(".json"))
    return [fs.read_json(fs.join(folder, name)) for name in names]
