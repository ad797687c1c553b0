"""Prefect's settings for a local run, defined once for the command line and the tests."""

from __future__ import annotations

import os
from pathlib import Path

# A cold ephemeral Prefect server needs 20-30 s on 2 cores; Prefect's default wait is 20 s.
EPHEMERAL_STARTUP_TIMEOUT_SECONDS = "180"
DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    # Batch machines are often offline; the server's telemetry would only log a failure there.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Heartbeats let the server find a run whose process was killed outright (tasks/runtime/heartbeats.py).
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
}


def set_prefect_defaults(home: Path) -> None:
    """Keeps Prefect's state (ephemeral server database, profiles) in `home` and applies the
    defaults above; settings already in the environment win. Call before Prefect reads them."""
    os.environ.setdefault("PREFECT_HOME", str(home))
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def reload_prefect_settings() -> None:
    """Prefect read its settings when it was imported; make it read them again."""
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
