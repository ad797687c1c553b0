"""mkdocs hook: the references that are read from the code rather than written by hand.

A page asks for one by holding its placeholder on a line of its own:

- `<!-- options -->`: the pipeline's command-line options, from `flows.cli.OPTIONS` and the config
  models' fields (default, accepted values, description), so they cannot drift from `--help`;
- `<!-- make-targets -->`: every Make target, from the Makefile's `## target: description` lines.

`render_options` and `render_make_targets` are what tests/unit/test_readme.py checks.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import typing
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# mkdocs imports this file by path; flows/ and tasks/ are imported from the repo root, never installed.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from flows import cli  # noqa: E402  (after the path above; loads neither TensorFlow nor Prefect)
from tasks import config as pipeline_config  # noqa: E402

OPTIONS_PLACEHOLDER = "<!-- options -->"
TARGETS_PLACEHOLDER = "<!-- make-targets -->"
# An option named in a description (`--learning-rate`), shown as code like the option column.
OPTION_NAME = re.compile(r"(?<![\w`-])(--[a-z][a-z0-9-]*)")
TARGET_LINE = re.compile(r"^## ([a-z][a-z0-9-]*): (.+)$", re.MULTILINE)
# A field's bounds as pydantic keeps them (annotated_types' Gt, Ge, Lt, Le), lower ones first.
LOWER_BOUNDS = {"gt": ">", "ge": "≥"}
UPPER_BOUNDS = {"lt": "<", "le": "≤"}


def documented_default(value: object) -> str:
    """A default as the reference shows it: `none`, `off`, or the value as an option takes it."""
    if value is None or value == {}:
        return "none"
    if value is False:
        return "off"
    if isinstance(value, tuple):
        return f"`{','.join(map(str, value))}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{value:g}`"
    return f"`{value}`"


def _accepted(section: str, field: str) -> str:
    """The values a field accepts, as far as its type and bounds say (validators may refuse more)."""
    info = cli.SECTIONS[section].model_fields[field]
    if typing.get_origin(info.annotation) is typing.Literal:
        return " / ".join(f"`{choice}`" for choice in typing.get_args(info.annotation))
    if field == "variants":
        return "any of " + ", ".join(f"`{name}`" for name in pipeline_config.VARIANTS)
    bounds = [_bound(info.metadata, LOWER_BOUNDS, lower=True), _bound(info.metadata, UPPER_BOUNDS, lower=False)]
    return ", ".join(bound for bound in bounds if bound)


def _bound(metadata: list, signs: dict[str, str], *, lower: bool) -> str:
    """A field's tightest bound on one side as text (`> 0`, `≤ 1`); "" when it has none."""
    found = [
        (getattr(constraint, name), sign)
        for constraint in metadata
        for name, sign in signs.items()
        if getattr(constraint, name, None) is not None
    ]
    if not found:
        return ""
    # The largest lower or smallest upper bound; at a tie the strict one (`Share` is ≥ 0 and max_drift > 0).
    value, sign = max(found, key=lambda bound: (bound[0] if lower else -bound[0], bound[1] in ("<", ">")))
    return f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: no HTML, no column breaks."""
    return html.escape(text, quote=False).replace("|", "\\|")


def _described(text: str) -> str:
    """A description as a table cell, the options it names shown as code like the option column."""
    return OPTION_NAME.sub(r"`\1`", _cell(text))


def _extra_options() -> list[tuple[str, str, str]]:
    """Options the command line adds beside the config fields (not pipeline parameters): option,
    default, help."""
    parser = cli.build_parser()
    cli.add_endpoint_option(parser)
    # argparse has no public list of a parser's options; _actions is the one it keeps.
    return [
        (option, documented_default(action.default), action.help or "")
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in cli.OPTIONS and option != "--help"
    ]


def render_options() -> str:
    """The options table: one row per option of `python -m flows.imdb_pipeline`, in `--help`'s order."""
    rows = ["| option | default | accepted | config field | meaning |", "|---|---|---|---|---|"]
    for option, (section, field, _) in cli.OPTIONS.items():
        info = cli.SECTIONS[section].model_fields[field]
        description = info.description or field.replace("_", " ")
        if option == "--recipe":
            description = f"{description}: {cli.describe_recipes()}"
        path = f"{section}.{field}" if section else field
        rows.append(
            f"| `{option}` | {documented_default(info.default)} | {_accepted(section, field)} | `{path}` | "
            f"{_described(description)} |"
        )
    for option, default, help_text in _extra_options():
        rows.append(f"| `{option}` | {default} | | (not a parameter) | {_described(help_text)} |")
    return "\n".join(rows)


def make_targets(makefile: Path = REPO_ROOT / "Makefile") -> list[tuple[str, str]]:
    """Every `## target: description` line of the Makefile, in its order."""
    return TARGET_LINE.findall(makefile.read_text())


def render_make_targets(makefile: Path = REPO_ROOT / "Makefile") -> str:
    """The Make targets table, as `make help` lists them."""
    rows = ["| target | what it does |", "|---|---|"]
    rows += [f"| `make {target}` | {_cell(description)} |" for target, description in make_targets(makefile)]
    return "\n".join(rows)


RENDERERS = {OPTIONS_PLACEHOLDER: render_options, TARGETS_PLACEHOLDER: render_make_targets}


def on_page_markdown(markdown: str, **_: object) -> str:
    """mkdocs event: each placeholder line replaced by its generated table."""
    for placeholder, render in RENDERERS.items():
        if placeholder in markdown:
            markdown = markdown.replace(placeholder, render())
    return markdown


def main(argv: list[str] | None = None) -> int:
    """`python docs/hooks.py options|make-targets`: print a generated table (to look at it without mkdocs)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("table", choices=("options", "make-targets"))
    args = parser.parse_args(argv)
    print(render_options() if args.table == "options" else render_make_targets())
    return 0


if __name__ == "__main__":
    sys.exit(main())
