"""Whether a run would only repeat the latest published run under its storage root: the same data
(by content), the same code and the same config, the options that do not shape what a run trains
aside (`cache_keys.NOT_SHAPING_A_RUN`). Scheduled retraining then trains and publishes nothing.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.config import PipelineConfig
from tasks.errors import StorageError
from tasks.registry.publishing import list_runs
from tasks.storage import cache_keys, fs
from tasks.storage.layout import MANIFEST_NAME

log = logging.getLogger(__name__)


class UnchangedRun(BaseModel):
    """The published run that a run would only repeat: what the run names instead of training."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_uri: str
    dataset_key: str

    @property
    def message(self) -> str:
        return f"unchanged: same data set {self.dataset_key} as run {self.run_id}"


class _RecordedSource(BaseModel):
    sha256: str


class _RecordedRun(BaseModel):
    """The parts of a manifest the comparison reads; manifests written before the fingerprints
    were recorded lack them, and never match."""

    source: _RecordedSource
    dataset_key: str
    config_fingerprint: str | None = None
    code_fingerprint: str | None = None


def latest_published_run(storage_root: str) -> dict | None:
    """The newest complete run under the root (run ids sort by time), as `list_runs` gives it;
    None when there is none. An interrupted publish (no manifest) is never a run."""
    complete = [run for run in list_runs(storage_root) if run["complete"]]
    return complete[-1] if complete else None


def find_unchanged(config: PipelineConfig, source_sha256: str) -> UnchangedRun | None:
    """The latest published run when it used the data whose content hash is `source_sha256`, this
    code and this config; None when anything differs, when no run was published, or when its
    manifest cannot be read (each logged with its reason)."""
    latest = latest_published_run(config.storage.root)
    if latest is None:
        log.info("no published run under %s to compare with", config.storage.root)
        return None
    recorded = _read_recorded_run(latest["uri"])
    if recorded is None:
        return None
    compared = {
        "data": (recorded.source.sha256, source_sha256),
        "code": (recorded.code_fingerprint, cache_keys.pipeline_code_hash()),
        "config": (recorded.config_fingerprint, cache_keys.config_key(config)),
    }
    changed = [name if then else f"{name} (not recorded)" for name, (then, now) in compared.items() if then != now]
    if changed:
        log.info("changed since run %s: %s", latest["run_id"], ", ".join(changed))
        return None
    return UnchangedRun(run_id=latest["run_id"], run_uri=latest["uri"], dataset_key=recorded.dataset_key)


def _read_recorded_run(run_uri: str) -> _RecordedRun | None:
    """What the run's manifest recorded; None, logged, when it cannot be read or lacks what is compared."""
    uri = fs.join(run_uri, MANIFEST_NAME)
    try:
        return _RecordedRun.model_validate(fs.read_json(uri))
    except (StorageError, ValueError) as error:  # ValidationError and unreadable JSON are ValueErrors
        reason = f"{error.error_count()} field(s) missing or malformed" if isinstance(error, ValidationError) else error
        log.warning("cannot compare with %s: %s is not a readable manifest (%s)", run_uri, uri, reason)
        return None
