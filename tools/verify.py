"""Checks published runs against their manifests.

`python -m tools.verify RUN_URI` (or `make verify RUN=...`) checks one run; `--all STORAGE_ROOT`
(or `make runs STORAGE=...`) lists every run folder under the root and checks each. Exit status 0
when every run checked is whole; 1 when a run is incomplete (no manifest: an interrupted publish,
never used as a run) or an object differs from its manifest.

`--all STORAGE_ROOT --clean --older-than 2h` lists instead what interrupted runs left behind more
than that long ago (incomplete run prefixes, scratch under `--work-dir`) and what would be removed;
`--yes` removes it. A complete run is never touched.
"""

from __future__ import annotations

import argparse
import sys

from flows.cli import add_endpoint_option
from tasks.config import StorageConfig
from tasks.errors import PipelineError
from tasks.registry.leftovers import find_leftovers, parse_age, remove_leftover
from tasks.registry.publishing import list_runs, verify_run
from tasks.storage.fs import join, read_json, use_s3_endpoint
from tasks.storage.layout import MANIFEST_NAME, runs_uri


def check_run(run: str) -> bool:
    """Prints `ok:` or the run's problems; True when it is whole."""
    problems = verify_run(run)
    if problems:
        for problem in problems:
            print(f"mismatch: {problem}", file=sys.stderr)
        print(f"error: {run} does not verify ({len(problems)} problem(s))", file=sys.stderr)
        return False
    count = len(read_json(join(run, MANIFEST_NAME))["files"])
    print(f"ok: {run}: {count} files match {MANIFEST_NAME}")
    return True


def check_all_runs(storage_root: str) -> bool:
    runs = list_runs(storage_root)
    if not runs:
        print(f"no runs under {runs_uri(storage_root)}")
    whole = [check_run(run["uri"]) if run["complete"] else _report_incomplete(run["uri"]) for run in runs]
    return all(whole)


def _report_incomplete(run: str) -> bool:
    print(f"incomplete: {run}: no {MANIFEST_NAME} (an interrupted publish; not a run, never used)", file=sys.stderr)
    return False


def clean_leftovers(storage_root: str, work_dir: str, older_than: float, remove: bool) -> None:
    """Lists (or with `remove`, removes) the leftovers older than `older_than` seconds."""
    leftovers = find_leftovers(storage_root, work_dir, older_than)
    for leftover in leftovers:
        age = f"{leftover.age_seconds / 3600:.1f} h old"
        if not remove:
            print(f"would remove: {leftover.kind} {leftover.uri} ({age})")
        elif remove_leftover(leftover):
            print(f"removed: {leftover.kind} {leftover.uri} ({age})")
    if not leftovers:
        print(f"no leftovers older than {older_than / 3600:g} h under {storage_root} or {work_dir}")
    elif not remove:
        print("dry run: nothing was removed; add --yes to remove these")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__.splitlines()[0])
    parser.add_argument(
        "target", help="a run's folder or URI (s3://bucket/prefix/runs/<run_id>), or with --all a storage root"
    )
    parser.add_argument("--all", action="store_true", help="check every run under the storage root TARGET")
    parser.add_argument("--clean", action="store_true", help="with --all: list leftovers of interrupted runs")
    parser.add_argument("--older-than", type=parse_age, help="with --clean: only leftovers older than this (2h, 7d)")
    parser.add_argument("--work-dir", default=StorageConfig().work_dir, help="with --clean: the runs' scratch")
    parser.add_argument("--yes", action="store_true", help="with --clean: remove them (default: a dry run)")
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    if args.clean and not (args.all and args.older_than is not None):
        parser.error("--clean needs --all STORAGE_ROOT and --older-than AGE")
    if not args.clean and (args.yes or args.older_than is not None):
        parser.error("--yes and --older-than only go with --clean")
    use_s3_endpoint(args.s3_endpoint_url)
    try:
        if args.clean:
            clean_leftovers(args.target, args.work_dir, args.older_than, args.yes)
            return 0
        whole = check_all_runs(args.target) if args.all else check_run(args.target)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(main())
