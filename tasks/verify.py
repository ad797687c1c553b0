"""Checks a published run against its manifest: `python -m tasks.verify RUN_URI` (or `make verify RUN=...`).

Exit status 0 when manifest.json exists and every object it lists matches its sha256; 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

from tasks.errors import PipelineError
from tasks.publishing import MANIFEST_NAME, verify_run
from tasks.storage import join, read_json


def add_endpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint-url", default=None,
                        help="custom S3 endpoint (MinIO, SeaweedFS, Ceph...); default: AWS_ENDPOINT_URL or AWS")


def apply_endpoint_option(endpoint_url: str | None) -> None:
    """Routes s3:// through a custom endpoint, the way the AWS SDK's own setting does."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.verify", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run's folder or URI, e.g. s3://bucket/prefix/runs/<run_id>")
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    apply_endpoint_option(args.s3_endpoint_url)
    try:
        problems = verify_run(args.run)
        if problems:
            for problem in problems:
                print(f"mismatch: {problem}", file=sys.stderr)
            print(f"error: {args.run} does not verify ({len(problems)} problem(s))", file=sys.stderr)
            return 1
        count = len(read_json(join(args.run, MANIFEST_NAME))["files"])
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"ok: {args.run}: {count} files match {MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
