"""The data watch as a Prefect flow: a look at a prefix of one's own reviews for snapshots that no
published run has trained on, announced as one `imdb-rnn-pipeline.data.arrived` event.

Local run: `python -m flows.data_watch --source PREFIX --storage ROOT` (or `make watch SOURCE=PREFIX`).
"""

from __future__ import annotations

import argparse
import sys

from prefect import flow, get_run_logger
from pydantic import ValidationError

from flows.cli import OneLineErrorParser, add_endpoint_option
from tasks.config import StorageConfig, WatchConfig
from tasks.data.stages import announce_new_data, find_new_snapshots
from tasks.data.watch import WatchResult, describe
from tasks.runtime.command_line import run_flow
from tasks.runtime.run_logging import configure_run_logging
from tasks.storage.layout import DEFAULT_ROOT


@flow(name="imdb-data-watch")
def imdb_data_watch(config: WatchConfig) -> WatchResult:
    """Looks at `config.source` once; emits the event when some snapshot is new."""
    configure_run_logging()

    # Look: the prefix's snapshots against every published run's manifest under the storage root.
    result = find_new_snapshots(config)
    get_run_logger().info(describe(result))
    # Announce: one event naming the new snapshots; the retraining deployment's trigger acts on it.
    if result.new:
        announce_new_data(result)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m flows.data_watch", description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=WatchConfig().source, help=WatchConfig.model_fields["source"].description)
    parser.add_argument(
        "--storage", default=DEFAULT_ROOT, help=f"storage root whose published runs count (default {DEFAULT_ROOT})"
    )
    add_endpoint_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the flow from the command line; prints what it found and `new: <names>` last."""
    args = build_parser().parse_args(argv)
    try:
        config = WatchConfig(source=args.source, storage=StorageConfig(root=args.storage))
    except ValidationError as error:
        first = error.errors()[0]
        print(f"error: --{first['loc'][0]}: {first['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    status, result = run_flow(lambda: imdb_data_watch(config), args.s3_endpoint_url)
    if result is None:
        return status
    print(describe(result))
    print(f"new: {' '.join(result.new)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
