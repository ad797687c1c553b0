"""Prefect's settings for a local run, defined once: the flows' command lines and the tests apply them
here. Prefect's own commands (`make server`, `make worker`, `make deploy`) never run this code, so the
Makefile exports the same values; tests/unit/test_environment.py fails when the two differ.
"""

from __future__ import annotations

import os
from pathlib import Path

# Prefect's state (the ephemeral server's database, profiles) stays inside the project's checkout.
PREFECT_HOME = Path(__file__).resolve().parents[2] / ".prefect"
# Prefect's default wait for a cold ephemeral server is 20 s, not enough on a small or busy machine.
EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 180
# Flow runs send a heartbeat this often (Prefect's shortest period): the server marks a run whose
# heartbeats stop Crashed (tasks/runtime/heartbeats.py).
HEARTBEAT_SECONDS = 30
DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(EPHEMERAL_STARTUP_TIMEOUT_SECONDS),
    # Batch machines are often offline; the server's telemetry would only log a failure there.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
}


def set_prefect_defaults(home: Path = PREFECT_HOME) -> None:
    """Keeps Prefect's state (ephemeral server database, profiles) in `home` and applies the
    defaults above; settings already in the environment win. Call before Prefect reads them."""
    os.environ.setdefault("PREFECT_HOME", str(home))
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def reload_prefect_settings() -> None:
    """Prefect read its settings when it was imported; make it read them again."""
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()
