"""Publishing a finished run under the immutable prefix `<storage>/runs/<run_id>/`: every file is
written once (create-only), read back and checked against its sha256, and `manifest.json` (each
file with its sha256 and size) is written last. A run without a manifest is incomplete, and a
reader trusts a run only when its manifest exists and every listed object matches it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from tasks import storage
from tasks.errors import ObjectExists

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def run_uri(storage_root: str, run_id: str) -> str:
    return storage.join(storage_root, "runs", run_id)


def publish_run(local_dir: Path, destination: str, details: dict) -> dict:
    """Uploads every file under `local_dir` to `destination`, then the manifest; returns the manifest.

    `details` (config, source, data set key...) is recorded in the manifest beside the file list.
    Refuses a destination that already has a manifest: published runs are immutable. An object
    left by an interrupted attempt of this same run is kept when its sha256 matches (so a retry
    resumes), and refused when it differs.
    """
    if storage.exists(storage.join(destination, MANIFEST_NAME)):
        raise ObjectExists(f"{destination} already exists; a run prefix is published once, never into")
    started = time.perf_counter()
    files = []
    for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        relative, data = path.relative_to(local_dir).as_posix(), path.read_bytes()
        uri, digest = storage.join(destination, relative), hashlib.sha256(data).hexdigest()
        if storage.exists(uri) and storage.sha256_of(uri) == digest:
            log.info("kept %s from an earlier attempt (sha256 matches)", relative)
        else:
            storage.write_verified(uri, data, create_only=True)
            log.info("published %s (%d bytes, sha256 verified)", relative, len(data))
        files.append({"path": relative, "sha256": digest, "bytes": len(data)})
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **details,
        "files": files,
    }
    storage.write_json(storage.join(destination, MANIFEST_NAME), manifest, create_only=True)
    log.info("published %d files and %s to %s in %.1f s",
             len(files), MANIFEST_NAME, destination, time.perf_counter() - started)
    return manifest


def manifest_sha256(destination: str) -> str:
    return hashlib.sha256(storage.read_bytes(storage.join(destination, MANIFEST_NAME))).hexdigest()


def verify_run(destination: str) -> list[str]:
    """Problems of a published run (missing manifest, missing or changed files); empty when whole."""
    manifest_uri = storage.join(destination, MANIFEST_NAME)
    if not storage.exists(manifest_uri):
        return [f"{manifest_uri} is missing: the run is incomplete"]
    try:
        entries = storage.read_json(manifest_uri)["files"]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{manifest_uri} is not a readable manifest ({error.__class__.__name__}: {error})"]
    problems = []
    for entry in entries:
        uri = storage.join(destination, entry["path"])
        if not storage.exists(uri):
            problems.append(f"{entry['path']}: missing")
        elif storage.sha256_of(uri) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems
