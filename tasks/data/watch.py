"""Watching a prefix of one's own reviews: which of its snapshots no published run has trained on.

A snapshot counts as trained on when some published run under the storage root read exactly its
files (the same URIs) with the same sha256; a snapshot whose files were added, removed or changed
since counts as new. Reading is cheap where it can be: a file is hashed only when some run read a
file of that URI, since a snapshot with a file no run has read is new whatever its content.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import BaseModel

from tasks.data import own_reviews
from tasks.errors import SourceError
from tasks.registry.publishing import list_runs
from tasks.storage import fs
from tasks.storage.layout import MANIFEST_NAME

log = logging.getLogger(__name__)

# The pipeline's named sources: IMDB in one form or another, never a folder of one's own reviews.
NAMED_SOURCES = ("auto", "keras", "offline")
FileSet = frozenset[tuple[str, str]]  # a snapshot's files as (uri, sha256)


class WatchResult(BaseModel):
    """What one look at a prefix found: its snapshots (oldest first) and those no run has trained on.

    `prefix` is shown without credentials; `reason` says why there was nothing to watch."""

    prefix: str
    watched: bool
    snapshots: list[str] = []
    new: list[str] = []
    reason: str | None = None


def trained_file_sets(storage_root: str) -> list[FileSet]:
    """Every snapshot's files, as (uri, sha256), that a published run under `storage_root` read.

    Incomplete runs (no manifest) are not published; an unreadable manifest is skipped with a warning."""
    found: list[FileSet] = []
    for run in list_runs(storage_root):
        if not run["complete"]:
            continue
        try:
            files = fs.read_json(fs.join(run["uri"], MANIFEST_NAME)).get("source", {}).get("files") or []
            by_snapshot: dict[str, set[tuple[str, str]]] = {}
            for file in files:
                by_snapshot.setdefault(file["snapshot"], set()).add((file["uri"], file["sha256"]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("%s: manifest unreadable (%s); its run is not counted", run["uri"], error)
            continue
        found.extend(frozenset(files) for files in by_snapshot.values())
    return found


def is_trained(files: list[str], trained: Iterable[FileSet]) -> bool:
    """True when some run read exactly these files with their current content."""
    uris = set(files)
    candidates = [file_set for file_set in trained if {uri for uri, _ in file_set} == uris]
    if not candidates:
        return False
    current = frozenset((uri, fs.sha256_of(uri)) for uri in files)
    return current in candidates


def find_new_snapshots(prefix: str, storage_root: str) -> WatchResult:
    """The snapshots of `prefix` and those no published run under `storage_root` trained on.

    A named source (auto, keras, offline), an imdb.npz, an http(s) URI or a prefix that does not
    exist or holds no data files is nothing to watch: `watched` is False and `reason` says why.
    A snapshot folder without data files is refused (ReviewFileError), as the pipeline refuses it."""
    shown = fs.without_credentials(prefix)
    if prefix in NAMED_SOURCES or not own_reviews.is_reviews_source(prefix):
        return WatchResult(prefix=shown, watched=False, reason=f"{shown} is not a folder of own reviews")
    try:
        snapshots = own_reviews.list_snapshots(prefix)
    except SourceError as error:
        return WatchResult(prefix=shown, watched=False, reason=str(error).replace(prefix, shown))
    trained = trained_file_sets(storage_root)
    new = [snapshot.name for snapshot in snapshots if not is_trained(snapshot.files, trained)]
    return WatchResult(prefix=shown, watched=True, snapshots=[snapshot.name for snapshot in snapshots], new=new)


def describe(result: WatchResult) -> str:
    """One line saying what a look found."""
    if not result.watched:
        return f"nothing to watch: {result.reason}"
    count = len(result.snapshots)
    if not result.new:
        return f"{result.prefix}: {count} snapshot(s), every one trained on by a published run"
    return f"{result.prefix}: {len(result.new)} of {count} snapshot(s) not trained on yet: {', '.join(result.new)}"
