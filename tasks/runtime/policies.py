"""Where cached stage results are kept, and when a failed task run is retried."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from tasks.runtime.cached_results import CheckedLocalFileSystem, CheckedRemoteFileSystem, ProjectJSONSerializer
from tasks.storage import fs, layout


def retry_when(should_retry: Callable[[Exception], bool]) -> Callable[..., bool]:
    """A Prefect retry condition: retry a failed task run only when its exception qualifies."""

    def condition(task, task_run, state) -> bool:
        try:
            state.result()
        except Exception as error:  # noqa: BLE001 - the task's own failure, handed to the predicate
            return should_retry(error)
        return False

    return condition


def cache_options(storage_root: str, refresh: bool) -> dict[str, Any]:
    """Task options that keep cached results (and their records) under `<storage_root>/cache/prefect`,
    as JSON read back only into this project's types (tasks/runtime/cached_results.py).

    The storage is a block saved on the Prefect server (Prefect takes no other block as a task's
    result storage), named after the location.
    """
    location = layout.prefect_cache_uri(storage_root)
    result_storage: CheckedLocalFileSystem | CheckedRemoteFileSystem
    if fs.is_local(location):
        result_storage = CheckedLocalFileSystem(basepath=fs.filesystem(location)[1])
    else:
        result_storage = CheckedRemoteFileSystem(basepath=location)
    result_storage.save(f"imdb-cache-{hashlib.sha256(location.encode()).hexdigest()[:12]}", overwrite=True)
    return {
        "result_storage": result_storage,
        "result_serializer": ProjectJSONSerializer(),
        "persist_result": True,
        "refresh_cache": refresh,
    }
