"""Checks published runs against their manifests.

`python -m tools.verify RUN_URI` (or `make verify RUN=...`) checks one run; `--all STORAGE_ROOT`
(or `make runs STORAGE=...`) lists every run folder under the root and checks each. Exit status 0
when every run checked is whole; 1 when a run is incomplete (no manifest: an interrupted publish,
never used as a run) or an object differs from its manifest.
"""

from __future__ import annotations

import argparse
import sys

from flows.cli import add_endpoint_option
from tasks.errors import PipelineError
from tasks.publishing import MANIFEST_NAME, list_runs, verify_run
from tasks.storage import join, read_json, use_s3_endpoint


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
        print(f"no runs under {join(storage_root, 'runs')}")
    whole = [check_run(run["uri"]) if run["complete"] else _report_incomplete(run["uri"]) for run in runs]
    return all(whole)


def _report_incomplete(run: str) -> bool:
    print(f"incomplete: {run}: no {MANIFEST_NAME} (an interrupted publish; not a run, never used)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__.splitlines()[0])
    parser.add_argument(
        "target", help="a run's folder or URI (s3://bucket/prefix/runs/<run_id>), or with --all a storage root"
    )
    parser.add_argument("--all", action="store_true", help="check every run under the storage root TARGET")
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    use_s3_endpoint(args.s3_endpoint_url)
    try:
        whole = check_all_runs(args.target) if args.all else check_run(args.target)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if whole else 1


if __name__ == "__main__":
    sys.exit(main())
