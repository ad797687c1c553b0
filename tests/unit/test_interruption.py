"""What an interrupted run says it left behind: nothing before its manifest is written, the
published run after."""

from __future__ import annotations

import signal

from tasks.runtime import interruption


def test_an_interruption_before_publishing_says_nothing_was_published(monkeypatch):
    monkeypatch.setattr(interruption, "_published", [])
    assert interruption.describe_interruption(signal.SIGTERM) == (
        "interrupted by SIGTERM: the run stopped and nothing was published; "
        "a rerun reuses every stage that had finished"
    )


def test_an_interruption_after_the_manifest_names_the_published_run(monkeypatch):
    monkeypatch.setattr(interruption, "_published", [])
    interruption.note_published("s3://bucket/runs/20261207T000000Z-abcdef")
    message = interruption.describe_interruption(signal.SIGINT)
    assert message.startswith("interrupted by SIGINT after run s3://bucket/runs/20261207T000000Z-abcdef was published")
    assert "nothing was published" not in message
