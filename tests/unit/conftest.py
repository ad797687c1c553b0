"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from tasks.data import parallel


def cut_in_small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of more than a few reviews cut into three parts, each run in a thread."""
    monkeypatch.setattr(parallel, "PARTS", 3)
    monkeypatch.setattr(parallel, "PART_BYTES", 8)


@pytest.fixture
def in_small_parts(monkeypatch):
    cut_in_small_parts(monkeypatch)


@pytest.fixture(params=["whole", "in parts"])
def parts(request, monkeypatch):
    """The compiled loops over each batch run once over it, then in small parts in threads."""
    if request.param == "in parts":
        cut_in_small_parts(monkeypatch)
