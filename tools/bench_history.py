"""The benchmark's history: one JSON line per measured section, appended by every `make bench`, so
a regression shows up next to the numbers of earlier commits on the same kind of machine.

Only entries measured with the same options (data size, epochs, variants, run options) are shown
together: numbers of a run on 4,000 reviews say nothing about one on 16,000.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from tasks.reporting.tables import markdown_table

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HISTORY = REPO_ROOT / "benchmarks" / "history.jsonl"
SHOWN_ENTRIES = 8


def git_revision() -> str:
    """The checked-out commit, `+changes` when the tree differs from it; `unknown` outside git."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changed = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def machine() -> dict:
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {"cpus": os.cpu_count(), "memory_gib": round(pages * page_size / 2**30)}


def append(path: Path, section: str, options: dict, numbers: dict[str, float]) -> dict:
    """Appends one entry (when, which code, which machine, the section, its options and numbers)."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": git_revision(),
        "machine": machine(),
        "section": section,
        "options": options,
        "numbers": numbers,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with path.open("a") as handle:
        handle.write(("\n" if torn else "") + json.dumps(entry, sort_keys=True) + "\n")  # never glued to a torn line
    return entry


def read(path: Path) -> list[dict]:
    """Every entry, oldest first; a line that is not a JSON object (a torn write) is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and {"section", "options", "numbers"} <= entry.keys():
            entries.append(entry)
    return entries


def table(path: Path, section: str, options: dict) -> str:
    """The last entries of `section` measured with `options` on a machine like this one, as markdown."""
    here = machine()
    entries = [
        entry
        for entry in read(path)
        if entry["section"] == section and entry["options"] == options and entry.get("machine") == here
    ][-SHOWN_ENTRIES:]
    if not entries:
        return f"(no {section} history yet)"
    names = list(dict.fromkeys(name for entry in entries for name in entry["numbers"]))
    rows = [(entry["at"], entry["code"], *(_cell(entry["numbers"].get(name)) for name in names)) for entry in entries]
    return f"history of `{section}` ({path.name}, same options and machine):\n" + markdown_table(
        rows, ("at", "code", *names)
    )


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
