"""What interrupted runs leave behind, and its removal: run prefixes without a manifest (a publish
that never finished) under `<storage>/runs/`, local or S3, and scratch folders under the work dir.

Only leftovers older than a given age are candidates, so a run still publishing or training is
never touched; a complete run (one with a manifest) never is, whatever its age.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from tasks.registry.publishing import list_runs
from tasks.storage import fs
from tasks.storage.layout import MANIFEST_NAME, TRAINING_SCRATCH_FOLDER

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{6}$")  # storage.new_run_id: UTC start time + suffix
AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Leftover(BaseModel):
    kind: str  # "incomplete run" or "scratch"
    uri: str
    age_seconds: float


def parse_age(text: str) -> float:
    """Seconds from `90s`, `30m`, `2h`, `7d`; raises ValueError for anything else."""
    match = AGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an age such as 90s, 30m, 2h or 7d")
    return float(match.group(1)) * AGE_UNITS[match.group(2)]


def run_started(run_id: str) -> float | None:
    """The Unix time a run id says its run started, or None for a folder that is not a run id."""
    match = RUN_ID.match(run_id)
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp() if match else None


def find_leftovers(
    storage_root: str, work_dir: str | None, older_than: float, now: float | None = None
) -> list[Leftover]:
    """Incomplete run prefixes started more than `older_than` seconds ago, and scratch folders of
    `work_dir` last written that long ago; oldest run first."""
    now = time.time() if now is None else now
    found = []
    for run in list_runs(storage_root):
        started = run_started(run["run_id"])
        if not run["complete"] and started is not None and now - started > older_than:
            found.append(Leftover(kind="incomplete run", uri=run["uri"], age_seconds=now - started))
    for folder in _scratch_folders(Path(work_dir)) if work_dir else []:
        written = max((path.stat().st_mtime for path in folder.rglob("*")), default=folder.stat().st_mtime)
        if now - written > older_than:
            found.append(Leftover(kind="scratch", uri=str(folder), age_seconds=now - written))
    return found


def remove_leftover(leftover: Leftover) -> bool:
    """Removes one leftover; an incomplete run is checked again first and kept when its manifest
    has appeared since it was found. True when removed."""
    if leftover.kind == "incomplete run" and fs.exists(fs.join(leftover.uri, MANIFEST_NAME)):
        log.warning("%s has a manifest now; kept", leftover.uri)
        return False
    fs.remove_tree(leftover.uri)
    return True


def _scratch_folders(work_dir: Path) -> list[Path]:
    """A run's scratch (`<work_dir>/<run_id>`) and a training's (`<work_dir>/training/<key>`)."""
    if not work_dir.is_dir():
        return []
    runs = [path for path in work_dir.iterdir() if path.is_dir() and RUN_ID.match(path.name)]
    training = work_dir / TRAINING_SCRATCH_FOLDER
    return sorted(runs) + (sorted(path for path in training.iterdir() if path.is_dir()) if training.is_dir() else [])
