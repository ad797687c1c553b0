"""Scores raw reviews with a published model and prints one JSON line per review.

`python -m tools.predict --text "A wonderful film"` (or `make predict TEXT="..."`) uses the champion
under the storage root; `--run <run uri> --variant <name>` picks another model, `--file` reads one
review per line. Exit status 0 on success; 1 with one `error:` line when the model, its vocabulary
or the input cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys

from flows.cli import add_endpoint_option
from tasks.errors import PipelineError
from tasks.scoring.scorer import label_of, load_scoring_model, score_texts
from tasks.storage import fs
from tasks.storage.layout import DEFAULT_ROOT


def read_reviews(texts: list[str], file: str | None) -> list[str]:
    """The reviews to score: the texts given, then the non-blank lines of `file` (a path or URI)."""
    reviews = [text for text in texts if text.strip()]
    if file is not None:
        try:
            content = fs.read_bytes(file).decode("utf-8")
        except UnicodeDecodeError as error:
            raise PipelineError(f"{file}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        reviews += [line for line in content.splitlines() if line.strip()]
    if not reviews:
        raise PipelineError("no review to score: give --text or --file with at least one non-blank line")
    return reviews


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--text", action="append", default=[], help="a review to score; may repeat")
    parser.add_argument("--file", default=None, help="a text file (path or URI) with one review per line")
    parser.add_argument(
        "--storage", default=DEFAULT_ROOT, help=f"storage root whose champion scores (default {DEFAULT_ROOT})"
    )
    parser.add_argument("--run", default=None, help="a published run's folder or URI instead of the champion's")
    parser.add_argument("--variant", default=None, help="the run's variant (default: the champion's, or the only one)")
    add_endpoint_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fs.use_s3_endpoint(args.s3_endpoint_url)
    try:
        reviews = read_reviews(args.text, args.file)
        scoring = load_scoring_model(args.storage, args.run, args.variant)
        probabilities = score_texts(scoring, reviews)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for probability in probabilities.tolist():
        line = {
            "label": label_of(probability),
            "probability": round(probability, 6),
            "run_id": scoring.run_id,
            "variant": scoring.variant,
            "model_uri": scoring.model_uri,
        }
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
