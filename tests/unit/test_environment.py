"""Prefect's settings for a local run are defined in tasks/runtime/environment.py; the Makefile
exports the same values for Prefect's own commands (`make server`, `make worker`, `make deploy`)."""

from __future__ import annotations

import re

from tasks.runtime import environment, heartbeats
from tests.helpers import REPO_ROOT

MAKEFILE = REPO_ROOT / "Makefile"


def makefile_prefect_exports(text: str) -> dict[str, str]:
    """The Makefile's `export PREFECT_... ?= value` lines, $(CURDIR) read as the project's folder."""
    exports = re.findall(r"^export (PREFECT_\w+) \?= (.*)$", text, flags=re.MULTILINE)
    return {name: value.strip().replace("$(CURDIR)", str(REPO_ROOT)) for name, value in exports}


def test_the_makefile_exports_exactly_the_settings_the_code_applies():
    expected = {"PREFECT_HOME": str(environment.PREFECT_HOME), **environment.DEFAULTS}
    assert makefile_prefect_exports(MAKEFILE.read_text()) == expected


def test_the_crash_automation_waits_for_the_heartbeats_runs_are_told_to_send():
    window = heartbeats.zombie_automation().trigger.within.total_seconds()
    assert window == environment.HEARTBEAT_SECONDS * heartbeats.MISSED_HEARTBEATS
