"""Model quality across seeds: `python -m tools.seeds` (or `make seeds`) writes MODEL_QUALITY.md.

Trains every variant with every recipe preset on K seeds (the same seeds `--seeds K` trains:
derived from `--seed`), each in its own process, with the pipeline's guard: an attempt more than
the baseline margin below the bag-of-words baseline's val accuracy (or at chance) is retrained with
a derived seed. Each published model and each first attempt is scored on the test split, so the
table shows what the guard bought (median and worst published accuracy) and what it cost (restarts
and training time), next to what a run without the guard would have published.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydantic import ValidationError

from tasks.config import RECIPES, DataConfig, ModelConfig, PipelineConfig, TrainingConfig
from tasks.reporting.tables import markdown_table
from tasks.storage import fs
from tasks.storage.layout import MODEL_NAME
from tasks.training.baseline import BaselineResult
from tools import datasets

log = logging.getLogger(__name__)

DEFAULT_SEEDS = 20  # enough for a median and a worst case that one unlucky seed does not decide
DEFAULT_JOBS = 2  # one training per core; each trains single-threaded best
EARLY_EPOCHS = 3  # val accuracy of each attempt's first epochs, kept to judge screening by them


def prepare_dataset(source: str, seed: int, store: Path):
    """The data set every job trains on (downloaded, split and stored once, as the pipeline does)
    and its baseline."""
    from tasks.training.baseline import fit_bag_of_words

    dataset, resolved = datasets.prepare_dataset(DataConfig(source=source), seed, str(store))
    return dataset, fit_bag_of_words(dataset), resolved.description


def train_and_score(job: dict) -> dict:
    """One (preset, variant, seed): train with the guard's restarts, score the published and the first attempt."""
    from tasks.data.store import DatasetInfo
    from tasks.training.evaluation import evaluate_model
    from tasks.training.fit import attempt_folder, train_with_restarts
    from tasks.training.jobs import TrainingJob

    dataset = DatasetInfo.model_validate(job["dataset"])
    out_dir = Path(job["out_dir"])
    training = TrainingConfig(
        recipe=job["preset"],
        max_epochs=job["max_epochs"],
        restarts=job["restarts"],
        baseline_margin=job["baseline_margin"],
        **job["stopping"],  # only the early-stopping settings given on the command line
    )
    trained = train_with_restarts(
        TrainingJob(
            variant=job["variant"],
            dataset=dataset,
            model=ModelConfig(),
            training=training,
            seed=job["seed"],
            baseline_val_accuracy=job["baseline_val_accuracy"],
        ),
        out_dir,
    )
    test_uri = dataset.split_uris["test"]
    published = evaluate_model(trained.model_path, test_uri)
    first = (
        published
        if len(trained.attempts) == 1
        else evaluate_model(str(attempt_folder(out_dir, 0) / job["variant"] / MODEL_NAME), test_uri)
    )
    history = json.loads(Path(trained.history_path).read_text())
    return {
        "preset": job["preset"],
        "variant": job["variant"],
        "seed": job["seed"],
        "attempts": [attempt.model_dump() for attempt in trained.attempts],
        "healthy": trained.healthy,
        "epochs_run": trained.epochs_run,
        "test_accuracy": published.accuracy,
        "first_attempt_test_accuracy": first.accuracy,
        "train_seconds": trained.train_seconds,
        "first_attempt_train_seconds": trained.attempts[0].train_seconds,
        "early_val_accuracy": [
            [epoch["val_accuracy"] for epoch in attempt["epochs"][:EARLY_EPOCHS]] for attempt in history["attempts"]
        ],
    }


def summarise(results: list[dict]) -> list[dict]:
    """Per preset and variant: published and first-attempt test accuracy (median, worst), restarts,
    models published without a healthy attempt, and training minutes with and without restarts."""
    rows = []
    for preset in dict.fromkeys(result["preset"] for result in results):
        for variant in dict.fromkeys(result["variant"] for result in results):
            group = [result for result in results if (result["preset"], result["variant"]) == (preset, variant)]
            if not group:
                continue
            published = [result["test_accuracy"] for result in group]
            first = [result["first_attempt_test_accuracy"] for result in group]
            minutes = sum(result["train_seconds"] for result in group) / 60
            first_minutes = sum(result["first_attempt_train_seconds"] for result in group) / 60
            rows.append(
                {
                    "preset": preset,
                    "variant": variant,
                    "seeds": len(group),
                    "median_test_accuracy": statistics.median(published),
                    "worst_test_accuracy": min(published),
                    "restarts": sum(len(result["attempts"]) - 1 for result in group),
                    "unhealthy_published": sum(not result["healthy"] for result in group),
                    "training_minutes": minutes,
                    "first_median_test_accuracy": statistics.median(first),
                    "first_worst_test_accuracy": min(first),
                    "first_training_minutes": first_minutes,
                    "extra_training": minutes / first_minutes - 1 if first_minutes else 0.0,
                }
            )
    return rows


COLUMNS = (
    ("preset", "{}"),
    ("variant", "{}"),
    ("seeds", "{}"),
    ("median_test_accuracy", "{:.4f}"),
    ("worst_test_accuracy", "{:.4f}"),
    ("restarts", "{}"),
    ("unhealthy_published", "{}"),
    ("training_minutes", "{:.1f}"),
    ("first_median_test_accuracy", "{:.4f}"),
    ("first_worst_test_accuracy", "{:.4f}"),
    ("first_training_minutes", "{:.1f}"),
    ("extra_training", "{:+.0%}"),
)
HEADINGS = {
    "median_test_accuracy": "median published test acc",
    "worst_test_accuracy": "worst published test acc",
    "unhealthy_published": "published without a healthy attempt",
    "training_minutes": "training min",
    "first_median_test_accuracy": "first attempt: median test acc",
    "first_worst_test_accuracy": "first attempt: worst test acc",
    "first_training_minutes": "first attempt: training min",
    "extra_training": "extra training time",
}


def screening_rows(results: list[dict]) -> list[dict]:
    """Per preset and variant and each of the first epochs: the val accuracy range of attempts that
    ended healthy and of those that did not. A screen of initialisations after that epoch could pick
    out the failures only if the two ranges do not overlap."""
    rows = []
    for preset in dict.fromkeys(result["preset"] for result in results):
        for variant in dict.fromkeys(result["variant"] for result in results):
            curves: dict[bool, list[list[float]]] = {True: [], False: []}
            for result in results:
                if (result["preset"], result["variant"]) == (preset, variant):
                    for attempt, curve in zip(result["attempts"], result["early_val_accuracy"], strict=True):
                        curves[not (attempt["stalled"] or attempt.get("under_trained"))].append(curve)
            if not curves[True] and not curves[False]:
                continue
            for epoch in range(1, EARLY_EPOCHS + 1):
                ranges = {
                    healthy: [curve[epoch - 1] for curve in group if len(curve) >= epoch]
                    for healthy, group in curves.items()
                }
                best_failure = max(ranges[False], default=None)
                rows.append(
                    {
                        "preset": preset,
                        "variant": variant,
                        "epoch": epoch,
                        "healthy": ranges[True],
                        "unhealthy": ranges[False],
                        "healthy_not_above_a_failure": None
                        if best_failure is None
                        else sum(value <= best_failure for value in ranges[True]),
                    }
                )
    return rows


def _range(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f} ({len(values)})" if values else "none"


SCREENING_COLUMNS = (
    "preset",
    "variant",
    "epoch",
    "val acc of attempts that ended healthy",
    "of those that did not",
    "healthy ones no better than the best failure",
)
SEED_COLUMNS = (
    "preset",
    "variant",
    "seed",
    "attempts (seed: best val acc)",
    "epochs",
    "test accuracy",
    "first attempt",
)


def _screening_cells(row: dict) -> tuple[str, ...]:
    fooled = row["healthy_not_above_a_failure"]
    healthy, unhealthy = _range(row["healthy"]), _range(row["unhealthy"])
    return (
        row["preset"],
        row["variant"],
        str(row["epoch"]),
        healthy,
        unhealthy,
        "n/a" if fooled is None else str(fooled),
    )


def render_screening(rows: list[dict]) -> str:
    return markdown_table([_screening_cells(row) for row in rows], SCREENING_COLUMNS)


def _attempts_cell(result: dict) -> str:
    return ", ".join(
        f"{attempt['seed']}: {attempt['best_val_accuracy']:.3f}"
        + (" STALLED" if attempt["stalled"] else " UNDER-TRAINED" if attempt.get("under_trained") else "")
        for attempt in result["attempts"]
    )


def render(
    rows: list[dict],
    results: list[dict],
    description: str,
    baseline: BaselineResult,
    training: TrainingConfig,
    command: str,
    seconds: float,
) -> str:
    summary = markdown_table(
        [tuple(form.format(row[name]) for name, form in COLUMNS) for row in rows],
        tuple(HEADINGS.get(name, name.replace("_", " ")) for name, _ in COLUMNS),
    )
    per_seed = markdown_table(
        [
            (
                r["preset"],
                r["variant"],
                str(r["seed"]),
                _attempts_cell(r),
                str(r["epochs_run"]),
                f"{r['test_accuracy']:.4f}",
                f"{r['first_attempt_test_accuracy']:.4f}",
            )
            for r in results
        ],
        SEED_COLUMNS,
    )
    presets = "\n".join(f"- `{name}`: {json.dumps(values)}" for name, values in RECIPES.items())
    floor = baseline.val.accuracy - training.baseline_margin
    return (
        "\n\n".join(
            [
                "# Model quality across seeds",
                f"Produced by `{command}` in {seconds / 60:.1f} min on this machine. Data: {description}.",
                f"Baseline ({baseline.description}): val accuracy {baseline.val.accuracy:.4f}, "
                f"test accuracy {baseline.test.accuracy:.4f}. Each row trains one variant on every seed with "
                f"the pipeline's guard: an attempt whose best val accuracy is more than {training.baseline_margin:g} "
                f"below the baseline's (below {floor:.4f}) is under-trained, one within {training.stall_margin:g} of "
                f"the majority-class rate is stalled, and either is retrained with a derived seed, up to "
                f"{training.restarts} times. *published* is what a run publishes with the guard; *first attempt* is "
                "what it would publish without it. Training minutes add up every attempt's fit time (two trainings "
                "ran side by side).",
                summary,
                "Presets (fields not listed keep the reference values):\n\n" + presets,
                "## Could the first epochs pick out the failures?",
                "A cheaper guard would train a few initialisations for an epoch or two and go on with the best. It can "
                "only work where the val accuracy of attempts that end healthy and of those that do not already differ "
                "after those epochs (count of attempts in brackets):",
                render_screening(screening_rows(results)),
                "## Every seed",
                per_seed,
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seeds", description=__doc__.splitlines()[0])
    defaults = TrainingConfig()
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per preset and variant")
    parser.add_argument("--seed", type=int, default=PipelineConfig().seed, help="the base seed the others derive from")
    parser.add_argument("--presets", default=",".join(RECIPES), help="recipe presets to compare")
    parser.add_argument("--variants", default=",".join(ModelConfig().variants))
    parser.add_argument("--source", default="offline", help="data source, as --source of the pipeline")
    parser.add_argument("--max-epochs", type=int, default=defaults.max_epochs)
    parser.add_argument("--restarts", type=int, default=defaults.restarts, help="as --restarts of the pipeline")
    parser.add_argument(
        "--baseline-margin", type=float, default=defaults.baseline_margin, help="as --baseline-margin of the pipeline"
    )
    for option, kind in (("--patience", int), ("--start-from-epoch", int), ("--min-delta", float)):
        parser.add_argument(option, type=kind, help=f"as {option} of the pipeline (default: each preset's own)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="trainings side by side")
    parser.add_argument("--work-dir", default=".work/quality", help="data set and models of the sweep")
    parser.add_argument("--out", default="MODEL_QUALITY.md")
    args = parser.parse_args(argv)
    presets, variants = args.presets.split(","), args.variants.split(",")
    if args.seeds < 1 or args.jobs < 1 or args.max_epochs < 1 or not set(presets) <= set(RECIPES):
        print(f"error: --seeds, --jobs and --max-epochs must be >= 1; presets: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    stopping = {
        name: value
        for name in ("patience", "start_from_epoch", "min_delta")
        if (value := getattr(args, name)) is not None
    }
    try:
        guard = TrainingConfig(restarts=args.restarts, baseline_margin=args.baseline_margin, **stopping)
    except ValidationError as error:
        problem = error.errors()[0]
        print(f"error: --{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tasks.training.jobs import derive_seed

    started = time.perf_counter()
    work = Path(args.work_dir)
    dataset, baseline, description = prepare_dataset(args.source, args.seed, work / "store")
    seeds = [derive_seed(args.seed, index) for index in range(args.seeds)]
    jobs = [
        {
            "preset": preset,
            "variant": variant,
            "seed": seed,
            "max_epochs": args.max_epochs,
            "stopping": stopping,
            "restarts": guard.restarts,
            "baseline_margin": guard.baseline_margin,
            "baseline_val_accuracy": baseline.val.accuracy,
            "dataset": dataset.model_dump(),
            "out_dir": str(work / "runs" / f"{preset}-{variant}-{seed}"),
        }
        for seed in seeds
        for preset in presets
        for variant in variants
    ]
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in pool.map(train_and_score, jobs):
            results.append(result)
            print(
                f"[{len(results)}/{len(jobs)}] {result['preset']} {result['variant']} seed {result['seed']}: "
                f"test accuracy {result['test_accuracy']:.4f} after {result['epochs_run']} epochs, "
                f"{len(result['attempts'])} attempt(s){'' if result['healthy'] else ', NONE HEALTHY'}",
                flush=True,
            )
    rows = summarise(results)
    command = ("python -m tools.seeds " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    elapsed = time.perf_counter() - started
    Path(args.out).write_text(render(rows, results, description, baseline, guard, command, elapsed))
    fs.write_json(str(work / "quality.json"), {"baseline": baseline.model_dump(), "rows": rows, "results": results})
    print(render(rows, [], description, baseline, guard, command, elapsed).split("## Every seed")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
