"""Publishing a finished run: every file of the local run folder goes to `<storage>/runs/<run_id>/`,
then `manifest.json` (each file with its sha256 and size) is written last. A run folder without a
manifest is incomplete by definition.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from tasks import storage
from tasks.errors import StorageError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def run_uri(storage_root: str, run_id: str) -> str:
    return storage.join(storage_root, "runs", run_id)


def publish_run(local_dir: Path, destination: str, details: dict) -> dict:
    """Uploads every file under `local_dir` to `destination`, then the manifest; returns the manifest.

    `details` (config, source, data set key...) is recorded in the manifest beside the file list.
    Refuses a destination that already holds a manifest: published runs are immutable.
    """
    manifest_uri = storage.join(destination, MANIFEST_NAME)
    if storage.exists(manifest_uri):
        raise StorageError(f"{destination} is already a published run; runs are never overwritten")
    files = []
    for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        relative = path.relative_to(local_dir).as_posix()
        data = path.read_bytes()
        storage.write_bytes(storage.join(destination, relative), data)
        files.append({"path": relative, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
        log.info("published %s (%d bytes)", relative, len(data))
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **details,
        "files": files,
    }
    storage.write_json(manifest_uri, manifest)
    log.info("published %d files and %s to %s", len(files), MANIFEST_NAME, destination)
    return manifest


def verify_run(destination: str) -> list[str]:
    """Problems of a published run (missing manifest, missing or changed files); empty when whole."""
    manifest_uri = storage.join(destination, MANIFEST_NAME)
    if not storage.exists(manifest_uri):
        return [f"{manifest_uri} is missing: the run is incomplete"]
    problems = []
    for entry in storage.read_json(manifest_uri)["files"]:
        uri = storage.join(destination, entry["path"])
        if not storage.exists(uri):
            problems.append(f"{entry['path']}: missing")
        elif storage.sha256_of(uri) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems
