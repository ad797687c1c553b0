"""Shows the champion and its history, rolls it back, pins or unpins it.

`python -m tools.champion` (make champion) prints the current champion and every change to it;
`--rollback [RUN_ID]` (make rollback [RUN=...]) restores the previous or the named champion after
verifying its run; `--pin` / `--unpin` stop or allow runs replacing it. Exit status 0, or 1 with one
`error:` line.
"""

from __future__ import annotations

import argparse
import sys

from flows.cli import add_endpoint_option
from tasks.errors import PipelineError
from tasks.registry import admin, history
from tasks.registry.gate import read_champion
from tasks.reporting.tables import format_table
from tasks.storage.fs import use_s3_endpoint
from tasks.storage.layout import CHAMPION_NAME, DEFAULT_ROOT

HISTORY_COLUMNS = ("at", "action", "champion", "previous", "reason", "command")


def _label(record: dict | None) -> str:
    return "-" if record is None else f"{record['run_id']}/{record['variant']}"


def show(storage_root: str) -> None:
    record, _ = read_champion(storage_root)
    if record is None:
        print(f"champion: none under {storage_root}")
    else:
        pinned = " (pinned)" if record.pinned else ""
        value = record.metrics.value(record.metric)
        print(f"champion: {record.label}{pinned}, {record.metric} {value:.4f}, {record.model_uri}")
    changes = history.read_history(storage_root)
    rows = [
        (entry["at"], entry["action"], _label(entry), _label(entry["previous"]), entry["reason"], entry["command"])
        for entry in changes
    ]
    print(format_table(rows, HISTORY_COLUMNS) if rows else "history: no changes recorded")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.champion", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage", default=DEFAULT_ROOT, help=f"storage root of {CHAMPION_NAME} (default {DEFAULT_ROOT})"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--rollback", nargs="?", const="", metavar="RUN_ID", help="restore the previous (or RUN_ID's) champion"
    )
    action.add_argument("--pin", action="store_true", help="runs never replace the champion")
    action.add_argument("--unpin", action="store_true", help="runs may replace the champion again")
    add_endpoint_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_s3_endpoint(args.s3_endpoint_url)
    try:
        if args.rollback is not None:
            record = admin.rollback(args.storage, args.rollback or None)
            print(f"rolled back: champion is now {record.label}")
        elif args.pin or args.unpin:
            record = admin.set_pinned(args.storage, pinned=args.pin)
            print(f"champion {record.label} is {'pinned' if record.pinned else 'not pinned'}")
        show(args.storage)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
