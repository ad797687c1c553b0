"""Prefect's settings for a local run are defined in tasks/runtime/environment.py; the Makefile
exports the same values for Prefect's own commands (`make server`, `make worker`, `make deploy`)."""

from __future__ import annotations

import re

import pytest

from tasks.errors import PipelineError
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


def crash_window(automation) -> float:
    return automation.trigger.within.total_seconds()


def test_the_crash_automation_waits_for_the_heartbeats_runs_are_told_to_send(monkeypatch):
    monkeypatch.delenv(heartbeats.WINDOW_VARIABLE, raising=False)  # the tests' own shorter window
    automation = heartbeats.zombie_automation()
    assert crash_window(automation) == environment.HEARTBEAT_SECONDS * heartbeats.MISSED_HEARTBEATS == 90
    assert automation.actions[0].message == "no heartbeat for 90 s: its process died"


def test_the_crash_window_comes_from_its_variable_down_to_two_heartbeats(monkeypatch):
    monkeypatch.setenv(heartbeats.WINDOW_VARIABLE, " 600 ")
    assert crash_window(heartbeats.zombie_automation()) == 600
    monkeypatch.setenv(heartbeats.WINDOW_VARIABLE, str(2 * environment.HEARTBEAT_SECONDS))
    automation = heartbeats.zombie_automation()
    assert crash_window(automation) == 60 and automation.actions[0].message == "no heartbeat for 60 s: its process died"


@pytest.mark.parametrize(
    ("value", "words"),
    [("59", "shorter than 60 s"), ("0", "shorter than 60 s"), ("90s", "not a whole number"), ("1.5", "not a whole")],
)
def test_a_crash_window_too_short_or_not_a_number_is_refused(value, words, monkeypatch):
    monkeypatch.setenv(heartbeats.WINDOW_VARIABLE, value)
    with pytest.raises(PipelineError, match=words) as refused:
        heartbeats.zombie_automation()
    assert heartbeats.WINDOW_VARIABLE in str(refused.value)


def test_the_crash_automation_covers_exactly_this_projects_flows():
    from flows.batch_scoring import imdb_batch_scoring
    from flows.data_watch import imdb_data_watch
    from flows.imdb_pipeline import imdb_rnn_pipeline

    flows = {each.name for each in (imdb_rnn_pipeline, imdb_batch_scoring, imdb_data_watch)}
    assert set(heartbeats.PROJECT_FLOWS) == flows
    related = heartbeats.zombie_automation().trigger.match_related
    assert related.root == {"prefect.resource.role": "flow", "prefect.resource.name": list(heartbeats.PROJECT_FLOWS)}


def test_an_automation_of_another_scope_is_replaced_and_one_of_another_window_kept(monkeypatch):
    monkeypatch.setenv(heartbeats.WINDOW_VARIABLE, "600")
    other_window = heartbeats.zombie_automation()
    monkeypatch.delenv(heartbeats.WINDOW_VARIABLE)
    wanted = heartbeats.zombie_automation()
    every_flow = heartbeats.zombie_automation()
    every_flow.trigger.match_related = []
    assert heartbeats._watches_the_same(other_window, wanted)
    assert not heartbeats._watches_the_same(every_flow, wanted)
