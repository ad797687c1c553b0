"""Runs the pipeline again on exactly what a published run used: its config, and for one's own
reviews the very files it read, each checked against the sha256 its manifest recorded (a changed
or deleted file stops the run with one line naming it); an imdb.npz is pinned to its sha256. Every
stage computes again: nothing is taken from the first run's cached results.

`python -m tools.reproduce RUN_URI` (or `make reproduce RUN=...`). The new run is published beside
the old one (or under `--storage`) and, unless `--promote` says otherwise, never replaces the champion.
"""

from __future__ import annotations

import argparse
import sys

from flows.cli import add_endpoint_option
from tasks.config import PipelineConfig, ReviewFile
from tasks.errors import PipelineError
from tasks.registry.publishing import verify_run
from tasks.storage.fs import join, read_json, use_s3_endpoint
from tasks.storage.layout import MANIFEST_NAME


def reproduction_config(manifest: dict, storage_root: str | None, promote: str) -> PipelineConfig:
    """The run's config with its data pinned: own reviews to the files it read, an imdb.npz to its
    sha256, the offline corpus to itself."""
    config = PipelineConfig.model_validate(manifest["config"])
    source = manifest["source"]
    data = config.data
    if source["kind"] == "reviews":
        data = data.model_copy(update={"files": tuple(ReviewFile.model_validate(file) for file in source["files"])})
    elif source["kind"] == "npz":
        data = data.model_copy(update={"source": source["uri"], "source_sha256": source["sha256"]})
    else:  # the offline corpus, also when `auto` fell back to it: not the canonical file a network now offers
        data = data.model_copy(update={"source": "offline"})
    # refresh: every stage computes again rather than reusing the first run's cached results
    update: dict = {
        "data": data,
        "champion": config.champion.model_copy(update={"promote": promote}),
        "refresh": True,
        "skip_unchanged": False,
    }
    if storage_root is not None:
        update["storage"] = config.storage.model_copy(update={"root": storage_root})
    return PipelineConfig.model_validate(config.model_copy(update=update).model_dump())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="the published run to reproduce: its folder or URI (…/runs/<run_id>)")
    parser.add_argument("--storage", help="publish the new run under this root (default: the run's own)")
    parser.add_argument("--promote", choices=("never", "auto", "always"), default="never")
    add_endpoint_option(parser)
    args = parser.parse_args(argv)
    use_s3_endpoint(args.s3_endpoint_url)
    try:
        problems = verify_run(args.run)
        if problems:
            raise PipelineError(f"{args.run} does not verify against its manifest: {problems[0]}")
        manifest = read_json(join(args.run, MANIFEST_NAME))
        config = reproduction_config(manifest, args.storage, args.promote)
    except (PipelineError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"reproducing run {manifest['run_id']} (data set {manifest['dataset_key']})", flush=True)
    from flows.imdb_pipeline import run_and_print  # TensorFlow and Prefect: only once the manifest is read

    return run_and_print(config, args.s3_endpoint_url)


if __name__ == "__main__":
    sys.exit(main())
