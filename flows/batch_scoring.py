"""Batch scoring as a Prefect flow: raw reviews in, verified Parquet predictions out, with the champion
(or a named run) and the vocabulary that travels with it.

Local run: `python -m flows.batch_scoring --input reviews.csv` (or `make score INPUT=reviews.csv`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import flow
from pydantic import ValidationError

from flows.cli import OneLineErrorParser, add_endpoint_option, describe_validation_error
from tasks.config import ScoringConfig, StorageConfig
from tasks.runtime.command_line import run_flow
from tasks.runtime.run_logging import configure_run_logging
from tasks.scoring.stages import publish_predictions, score_input, verify_model
from tasks.storage.fs import new_run_id
from tasks.storage.layout import DEFAULT_ROOT


@flow(name="imdb-batch-scoring")
def imdb_batch_scoring(config: ScoringConfig) -> dict:
    """Scores every review of `config.input`; returns the summary and the predictions' URI."""
    configure_run_logging()
    batch_id = new_run_id()
    local_dir = Path(config.storage.work_dir) / f"predictions-{batch_id}"

    # Model: the champion (or the named run), its whole run verified before any input is read.
    model = verify_model(config)
    # Score: read and check the input, encode and score in batches.
    summary = score_input(config, model, local_dir, batch_id)
    # Publish: predictions and summary, create-only and verified, the manifest last.
    uri = publish_predictions(local_dir, config, batch_id, summary)
    return {"batch_id": batch_id, "predictions_uri": uri, "summary": summary}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m flows.batch_scoring", description=__doc__.splitlines()[0])
    fields = ScoringConfig.model_fields
    parser.add_argument("--input", required=True, help=fields["input"].description)
    parser.add_argument(
        "--storage", default=DEFAULT_ROOT, help=f"storage root whose champion scores (default {DEFAULT_ROOT})"
    )
    parser.add_argument("--work-dir", default=StorageConfig().work_dir, help="local scratch before publishing")
    for name in ("output", "text_column", "id_column", "run", "variant"):
        parser.add_argument(f"--{name.replace('_', '-')}", default=None, help=fields[name].description)
    parser.add_argument(
        "--max-drift",
        type=float,
        default=fields["max_drift"].default,
        help=f"{fields['max_drift'].description} (default: {fields['max_drift'].default})",
    )
    add_endpoint_option(parser)
    return parser


def print_summary(result: dict) -> None:
    summary = result["summary"]
    print(f"model: {summary['run_id']}/{summary['variant']} ({summary['model_uri']})")
    print(
        f"scored: {summary['rows']:,} reviews in {summary['seconds']:.1f} s "
        f"({summary['reviews_per_second']:,.0f} reviews/s), {summary['positive_share']:.1%} positive"
    )
    if "accuracy" in summary:
        roc_auc = "n/a" if summary["roc_auc"] is None else f"{summary['roc_auc']:.4f}"
        print(f"labels: accuracy {summary['accuracy']:.4f}, roc_auc {roc_auc}")
    drift = summary.get("drift")
    if drift is None:
        print(f"drift: {summary.get('drift_reference', 'not measured')}")
    else:
        distances = ", ".join(f"{name} {value:.3f}" for name, value in drift["distances"].items())
        verdict = f"DRIFTED in {', '.join(drift['drifted'])}" if drift["drifted"] else "no drift"
        print(
            f"drift against {summary['drift_reference']}: {verdict} (Jensen-Shannon {distances}; positive "
            f"{drift['positive_share']['reference']:.3f} -> {drift['positive_share']['current']:.3f} predicted, "
            f"OOV rate {drift['oov_rate']['reference']:.3f} -> {drift['oov_rate']['current']:.3f})"
        )
    print(f"predictions: {result['predictions_uri']}")


def main(argv: list[str] | None = None) -> int:
    """Runs the flow from the command line; prints a summary and `predictions: <uri>` last."""
    args = build_parser().parse_args(argv)
    try:
        config = ScoringConfig(
            input=args.input,
            storage=StorageConfig(root=args.storage, work_dir=args.work_dir),
            output=args.output,
            text_column=args.text_column,
            id_column=args.id_column,
            run=args.run,
            variant=args.variant,
            max_drift=args.max_drift,
        )
    except ValidationError as error:
        print(f"error: {describe_validation_error(error)}", file=sys.stderr)
        return 2
    status, result = run_flow(lambda: imdb_batch_scoring(config), args.s3_endpoint_url)
    if result is None:
        return status
    print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
