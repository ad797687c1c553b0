"""The README stays in step with the code where that is mechanical: every command-line option and
its default, and every Make target."""

from __future__ import annotations

import re
from pathlib import Path

from flows.cli import OPTIONS, SECTIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()
# Options the flow's command line adds beside the config fields (not pipeline parameters).
EXTRA_OPTIONS = {"--s3-endpoint-url": "`AWS_ENDPOINT_URL`"}


def readme_options() -> dict[str, str]:
    """Option -> its default cell, from the README's Options table."""
    return dict(re.findall(r"^\| `(--[a-z0-9-]+)` \| ([^|]*?) \|", README, flags=re.MULTILINE))


def documented_default(value) -> str:
    if value is None or value == {}:
        return "none"
    if value is False:
        return "off"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{value:g}`"
    return f"`{value}`"


def test_every_option_is_in_the_readme_with_its_default():
    documented = readme_options()
    expected = {option: documented_default(SECTIONS[section].model_fields[field].default)
                for option, (section, field, _) in OPTIONS.items()} | EXTRA_OPTIONS
    assert documented == expected


def test_every_make_target_is_in_make_help_and_the_readme():
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.MULTILINE))
    described = set(re.findall(r"^## ([a-z][a-z0-9-]*):", makefile, flags=re.MULTILINE))
    assert targets == described, "a target without a `## target: description` line is missing from make help"
    assert not [target for target in described if f"make {target}" not in README]
