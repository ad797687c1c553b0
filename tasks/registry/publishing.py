"""Publishing a finished run under the immutable prefix `<storage>/runs/<run_id>/`: every file is
written once (create-only), read back and checked against its sha256, and `manifest.json` (each
file with its sha256 and size) is written last. A run without a manifest is incomplete, and a
reader trusts a run only when its manifest exists and every listed object matches it.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tasks.config import PipelineConfig
from tasks.data.sources import SourceInfo
from tasks.data.store import DatasetInfo
from tasks.errors import ObjectExists
from tasks.storage import cache_keys, fs
from tasks.storage.layout import MANIFEST_NAME, runs_uri

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
REPORTED_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "scikit-learn", "prefect", "pyarrow", "fsspec")


class RunContext(BaseModel):
    """One run as the stages that judge, document and publish it see it: its id, its local folder
    (what gets published), its config, the data it trained on, and where its trainings run."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: Path  # the run's files before they are published: scratch under the work folder
    config: PipelineConfig
    source: SourceInfo
    dataset: DatasetInfo
    dask_address: str | None = None  # the Dask scheduler the trainings run on; None: this machine


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that shape the results."""
    versions = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_details(run: RunContext) -> dict:
    """What a run's manifest records beside its files: the config, the data, the versions, and the
    fingerprints of its config and code that tell a later run it would only repeat this one."""
    return {
        "run_id": run.run_id,
        "config": run.config.model_dump(mode="json"),
        "config_fingerprint": cache_keys.config_key(run.config),
        "code_fingerprint": cache_keys.pipeline_code_hash(),
        "source": run.source.model_dump(exclude={"local_path"}),
        "dataset_key": run.dataset.key,
        "dataset_uri": run.dataset.uri,
        "versions": package_versions(),
    }


def publish_run(local_dir: Path, destination: str, details: dict) -> dict:
    """Uploads every file under `local_dir` to `destination`, then the manifest; returns the manifest.

    `details` (config, source, data set key...) is recorded in the manifest beside the file list.
    Refuses a destination that already has a manifest: published runs are immutable (unless an
    earlier attempt of this same run wrote it, for the same files). An object left by an
    interrupted attempt is kept when its sha256 matches (so a retry resumes), refused otherwise.
    """
    files = [_file_entry(path, local_dir) for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file())]
    earlier = _earlier_manifest(destination)
    if earlier is not None:
        if earlier.get("run_id") == details.get("run_id") and earlier.get("files") == files:
            log.info("%s was already published by an earlier attempt of this run", destination)
            return earlier
        raise ObjectExists(f"{destination} already exists; a run prefix is published once, never into")
    started, total, done = time.perf_counter(), sum(entry["bytes"] for entry in files), 0
    for entry in files:
        outcome = _publish_file(Path(local_dir) / entry["path"], fs.join(destination, entry["path"]), entry)
        done += entry["bytes"]
        log.info(
            "%s %s (%d bytes, sha256 verified): %.0f %% of %.1f MiB",
            outcome,
            entry["path"],
            entry["bytes"],
            100 * done / total if total else 100,
            total / 2**20,
        )
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **details,
        "files": files,
    }
    fs.write_json(fs.join(destination, MANIFEST_NAME), manifest, create_only=True)
    log.info(
        "published %d files and %s to %s in %.1f s",
        len(files),
        MANIFEST_NAME,
        destination,
        time.perf_counter() - started,
    )
    return manifest


def _file_entry(path: Path, local_dir: Path) -> dict:
    data = path.read_bytes()
    return {
        "path": path.relative_to(local_dir).as_posix(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def _earlier_manifest(destination: str) -> dict | None:
    uri = fs.join(destination, MANIFEST_NAME)
    if not fs.exists(uri):
        return None
    try:
        return fs.read_json(uri)
    except ValueError:
        return {}  # unreadable: not ours to resume, and never to overwrite


def _publish_file(path: Path, uri: str, entry: dict) -> str:
    """Writes one file create-only; an object already there with the same sha256 is ours (a retry,
    or a PUT whose response was lost) and is kept. Says which."""
    if fs.exists(uri) and fs.sha256_of(uri) == entry["sha256"]:
        return "kept from an earlier attempt"
    try:
        fs.write_verified(uri, path.read_bytes(), create_only=True)
    except ObjectExists:
        if fs.sha256_of(uri) != entry["sha256"]:
            raise
    return "published"


def list_runs(storage_root: str) -> list[dict]:
    """Every folder under `<storage_root>/runs/`, oldest first, each marked complete (has a
    manifest) or not; an incomplete folder is an interrupted publish, never a run to use."""
    runs_root = runs_uri(storage_root)
    return [
        {
            "run_id": name,
            "uri": fs.join(runs_root, name),
            "complete": fs.exists(fs.join(runs_root, name, MANIFEST_NAME)),
        }
        for name in fs.list_folders(runs_root)
    ]


def manifest_sha256(destination: str) -> str:
    return hashlib.sha256(fs.read_bytes(fs.join(destination, MANIFEST_NAME))).hexdigest()


def manifest_entry(destination: str, path: str) -> dict | None:
    """The manifest's entry (path, sha256, bytes) for one file of a published run; None when unlisted."""
    files = fs.read_json(fs.join(destination, MANIFEST_NAME))["files"]
    return next((entry for entry in files if entry["path"] == path), None)


def _inside(entry: dict) -> bool:
    """True for a manifest entry whose path stays inside the run: relative, without `..`, `.` or
    empty parts (a crafted manifest must not make a reader hash files elsewhere)."""
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or "://" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _shown(entry: object) -> str:
    return repr(entry.get("path") if isinstance(entry, dict) else entry)


def verify_run(destination: str) -> list[str]:
    """Problems of a published run (missing manifest, missing or changed files); empty when whole."""
    manifest_uri = fs.join(destination, MANIFEST_NAME)
    if not fs.exists(manifest_uri):
        return [f"{manifest_uri} is missing: the run is incomplete"]
    try:
        entries = fs.read_json(manifest_uri)["files"]
    except (ValueError, KeyError, TypeError) as error:
        return [f"{manifest_uri} is not a readable manifest ({error.__class__.__name__}: {error})"]
    problems = [f"{_shown(entry)}: not a path inside the run, refused" for entry in entries if not _inside(entry)]
    for entry in (entry for entry in entries if _inside(entry)):
        uri = fs.join(destination, entry["path"])
        if not fs.exists(uri):
            problems.append(f"{entry['path']}: missing")
        elif fs.sha256_of(uri) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the manifest")
    return problems
