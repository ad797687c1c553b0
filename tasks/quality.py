"""Model quality across seeds: `python -m tasks.quality` (or `make seeds`) writes MODEL_QUALITY.md.

Trains every variant with every recipe preset on K seeds (the same seeds `--seeds K` trains:
derived from `--seed`), each in its own process, stall restarts included, and scores each on the
test split. The table shows per preset and variant the median and worst test accuracy, epochs,
how many attempts stalled and how many published models stayed stalled; the worst first attempt
shows what the restarts hid.
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

from tasks.config import RECIPES, DataConfig, ModelConfig, TrainingConfig

log = logging.getLogger(__name__)

DEFAULT_SEEDS = 10  # the bar: 10 consecutive runs with different seeds
DEFAULT_JOBS = 2  # one training per core; each trains single-threaded best


def prepare_dataset(source: str, seed: int, store: Path):
    """The data set every job trains on: downloaded, split and stored once, as the pipeline does."""
    from tasks import data, features, sources

    config = DataConfig(source=source)
    resolved = sources.resolve_source(config)
    splits = data.split_source(resolved.kind, resolved.local_path, config.num_words, config.val_fraction, seed)
    metadata = features.dataset_metadata(config, seed, resolved.uri, resolved.sha256)
    return features.store_dataset(splits, config.maxlen, metadata, str(store)), resolved.description


def train_and_score(job: dict) -> dict:
    """One (preset, variant, seed): train with stall restarts, score the published and the first attempt."""
    from tasks.evaluation import evaluate_model
    from tasks.features import DatasetInfo
    from tasks.training import train_with_restarts

    dataset = DatasetInfo.model_validate(job["dataset"])
    out_dir = Path(job["out_dir"])
    training = TrainingConfig(recipe=job["preset"], max_epochs=job["max_epochs"])
    started = time.perf_counter()
    trained = train_with_restarts(job["variant"], dataset, ModelConfig(), training, job["seed"], out_dir)
    test_uri = dataset.split_uris["test"]
    published = evaluate_model(trained.model_path, test_uri)
    first = published if len(trained.attempts) == 1 else evaluate_model(
        str(out_dir / "attempt-0" / job["variant"] / "model.keras"), test_uri)
    return {"preset": job["preset"], "variant": job["variant"], "seed": job["seed"],
            "attempts": trained.attempts, "stalled": trained.stalled, "epochs_run": trained.epochs_run,
            "test_accuracy": published["accuracy"], "first_attempt_test_accuracy": first["accuracy"],
            "seconds": round(time.perf_counter() - started, 1)}


def summarise(results: list[dict]) -> list[dict]:
    """Per preset and variant: median/worst test accuracy, median epochs, stalled attempts and models."""
    rows = []
    for preset in dict.fromkeys(result["preset"] for result in results):
        for variant in dict.fromkeys(result["variant"] for result in results):
            group = [result for result in results if (result["preset"], result["variant"]) == (preset, variant)]
            if not group:
                continue
            accuracies = [result["test_accuracy"] for result in group]
            rows.append({
                "preset": preset, "variant": variant, "seeds": len(group),
                "median_test_accuracy": statistics.median(accuracies), "worst_test_accuracy": min(accuracies),
                "median_epochs": statistics.median(result["epochs_run"] for result in group),
                "stalled_attempts": sum(attempt["stalled"] for result in group for attempt in result["attempts"]),
                "restarts": sum(len(result["attempts"]) - 1 for result in group),
                "stalled_published": sum(result["stalled"] for result in group),
                "worst_first_attempt_accuracy": min(result["first_attempt_test_accuracy"] for result in group),
            })
    return rows


COLUMNS = (("preset", "{}"), ("variant", "{}"), ("seeds", "{}"), ("median_test_accuracy", "{:.4f}"),
           ("worst_test_accuracy", "{:.4f}"), ("median_epochs", "{:g}"), ("stalled_attempts", "{}"),
           ("restarts", "{}"), ("stalled_published", "{}"), ("worst_first_attempt_accuracy", "{:.4f}"))


def render(rows: list[dict], results: list[dict], description: str, command: str, seconds: float) -> str:
    header = "| " + " | ".join(name.replace("_", " ") for name, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(form.format(row[name]) for name, form in COLUMNS) + " |" for row in rows]
    per_seed = ["| preset | variant | seed | attempts (seed: best val acc) | epochs | test accuracy |", "|---|---|---|---|---|---|"]
    per_seed += [f"| {r['preset']} | {r['variant']} | {r['seed']} | "
                 + ", ".join(f"{a['seed']}: {a['best_val_accuracy']:.3f}{' STALLED' if a['stalled'] else ''}"
                             for a in r["attempts"]) + f" | {r['epochs_run']} | {r['test_accuracy']:.4f} |"
                 for r in results]
    presets = "\n".join(f"- `{name}`: {json.dumps(values)}" for name, values in RECIPES.items())
    return "\n\n".join([
        "# Model quality across seeds",
        f"Produced by `{command}` in {seconds / 60:.1f} min on this machine. Data: {description}.",
        f"Each row trains one variant on every seed, with up to {TrainingConfig().stall_restarts} stall restarts "
        f"(stalled: best val accuracy within {TrainingConfig().stall_margin} of the val majority-class rate), and scores the "
        "published model on the test split. *worst first attempt* is the worst test accuracy before any restart.",
        "\n".join(lines),
        "Presets (fields not listed keep the reference values):\n\n" + presets,
        "## Every seed",
        "\n".join(per_seed),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per preset and variant")
    parser.add_argument("--seed", type=int, default=42, help="the base seed the others derive from")
    parser.add_argument("--presets", default=",".join(RECIPES), help="recipe presets to compare")
    parser.add_argument("--variants", default="onehot,embedding")
    parser.add_argument("--source", default="offline", help="data source, as --source of the pipeline")
    parser.add_argument("--max-epochs", type=int, default=TrainingConfig().max_epochs)
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="trainings side by side")
    parser.add_argument("--work-dir", default=".work/quality", help="data set and models of the sweep")
    parser.add_argument("--out", default="MODEL_QUALITY.md")
    args = parser.parse_args(argv)
    presets, variants = args.presets.split(","), args.variants.split(",")
    if args.seeds < 1 or args.jobs < 1 or args.max_epochs < 1 or not set(presets) <= set(RECIPES):
        print(f"error: --seeds, --jobs and --max-epochs must be >= 1; presets: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tasks.training import derive_seed

    started = time.perf_counter()
    work = Path(args.work_dir)
    dataset, description = prepare_dataset(args.source, args.seed, work / "store")
    seeds = [derive_seed(args.seed, index) for index in range(args.seeds)]
    jobs = [{"preset": preset, "variant": variant, "seed": seed, "max_epochs": args.max_epochs,
             "dataset": dataset.model_dump(), "out_dir": str(work / "runs" / f"{preset}-{variant}-{seed}")}
            for seed in seeds for preset in presets for variant in variants]
    results = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in pool.map(train_and_score, jobs):
            results.append(result)
            print(f"[{len(results)}/{len(jobs)}] {result['preset']} {result['variant']} seed {result['seed']}: "
                  f"test accuracy {result['test_accuracy']:.4f} after {result['epochs_run']} epochs, "
                  f"{len(result['attempts'])} attempt(s){', STALLED' if result['stalled'] else ''}", flush=True)
    rows = summarise(results)
    command = "python -m tasks.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.out).write_text(render(rows, results, description, command.strip(), time.perf_counter() - started))
    (work / "quality.json").write_text(json.dumps({"rows": rows, "results": results}, indent=2) + "\n")
    print(render(rows, [], description, command.strip(), time.perf_counter() - started).split("## Every seed")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
