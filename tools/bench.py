"""`make bench`: the seed's formulation against the pipeline's own training, side by side.

Same data, machine and hyperparameters, a fixed number of epochs (no early stopping): one
warm-up epoch, then timed ones. The baseline is what a user of the seed would write: numpy
arrays into `model.fit`, the one-hot input built with `keras.utils.to_categorical` over whole
splits, default `compile()`. Each measurement runs in its own process, so its peak resident
memory is its own. Writes `results.json`, `results.md` and `results.png`, and prints the table.

Then batch scoring's throughput (`--section scoring` alone): the offline corpus's raw IMDB reviews
as a CSV, read, checked, encoded, scored and published as `make score` does (Prefect's own start-up
aside), per variant, in reviews per second. Written to `scoring.json`.

Then the whole `make run`, first and fully cached, against an earlier commit (`--section run`,
`tools/bench_run.py`). Written to `run.json`.

Then the data stages and one epoch on growing numbers of realistic reviews (`--section scale` alone,
never part of `all`: it takes an hour and several GB of disk at its default sizes;
`tools/bench_scale.py`). Written to `scale.json`.

And the tokenize-and-encode pass alone (`--section tokenize`, never part of `all`): the batch
tokenizer on the offline corpus in reviews per CPU second against the per-review regex, and the
reviews the two encode differently (`tools/bench_tokenizer.py`). Written to `tokenize.json`.

Every section measured appends its numbers to the history (`benchmarks/history.jsonl`,
`tools/bench_history.py`) and prints them under the earlier ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tasks.config import DataCheckConfig, DataConfig, ModelConfig, PipelineConfig, TrainingConfig
from tasks.reporting.tables import markdown_table
from tasks.storage import fs
from tools import bench_history, bench_run, bench_scale, bench_tokenizer, datasets

BASELINE, OURS = "baseline", "ours"
RESULT_PREFIX = "BENCH-RESULT "  # marks the worker's one line of JSON on stdout
DEFAULT_OUT = "bench"


def prepare_data(out_dir: Path, rows: int | None, config: DataConfig, seed: int) -> Path:
    """The offline corpus's padded splits, as the pipeline's data stages store them, in one .npz
    the workers share; `rows` keeps the first training reviews (and a quarter as many for val/test)."""
    from tasks.data.store import SPLITS, read_split

    dataset, _ = datasets.prepare_dataset(config, seed, str(out_dir / "store"))
    arrays = {}
    for name in SPLITS:
        tokens, labels, _ = read_split(dataset.split_uris[name], expected_maxlen=config.maxlen)
        keep = len(labels) if rows is None else min(len(labels), rows if name == "train" else max(rows // 4, 2))
        arrays[f"x_{name}"], arrays[f"y_{name}"] = tokens[:keep], labels[:keep].astype("float32")
    path = out_dir / "data.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its allow_pickle
    shutil.rmtree(out_dir / "store")
    return path


def _seed_onehot(keras, arrays: dict, num_words: int, maxlen: int, sizes: ModelConfig) -> tuple[dict, list]:
    """The seed's one-hot model: whole splits through `to_categorical`, a SimpleRNN on top."""
    inputs = {name: keras.utils.to_categorical(arrays[f"x_{name}"], num_words) for name in ("train", "val", "test")}
    return inputs, [keras.Input((maxlen, num_words)), keras.layers.SimpleRNN(sizes.rnn_units)]


def _seed_embedding(keras, arrays: dict, num_words: int, maxlen: int, sizes: ModelConfig) -> tuple[dict, list]:
    """The seed's embedding model: padded ids into Embedding and SimpleRNN."""
    inputs = {name: arrays[f"x_{name}"] for name in ("train", "val", "test")}
    return inputs, [
        keras.Input((maxlen,)),
        keras.layers.Embedding(num_words, sizes.embedding_dim),
        keras.layers.SimpleRNN(sizes.rnn_units),
    ]


# The seed's own formulation of each variant it defines: what the pipeline's training is measured against.
SEED_FORMULATIONS = {"onehot": _seed_onehot, "embedding": _seed_embedding}


def _baseline_fit(variant: str, arrays: dict, epochs: int, config) -> tuple[Any, list[float], np.ndarray]:
    import keras

    from tasks.training.fit import EpochProgress

    num_words, maxlen = config["num_words"], arrays["x_train"].shape[1]
    inputs, layers = SEED_FORMULATIONS[variant](keras, arrays, num_words, maxlen, ModelConfig())
    model = keras.Sequential([*layers, keras.layers.Dense(1, activation="sigmoid")])
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=config["learning_rate"]),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    timer = EpochProgress(variant, epochs)
    model.fit(
        inputs["train"],
        arrays["y_train"],
        batch_size=config["batch_size"],
        epochs=epochs,
        validation_data=(inputs["val"], arrays["y_val"]),
        callbacks=[timer],
        verbose=0,
    )
    return model, [epoch["seconds"] for epoch in timer.epochs], model.predict(inputs["test"], verbose=0).reshape(-1)


def _ours_fit(variant: str, arrays: dict, epochs: int, config) -> tuple[Any, list[float], np.ndarray]:
    import tempfile

    from tasks.training.build import build_training_model
    from tasks.training.evaluation import score
    from tasks.training.fit import EpochProgress, compile_model, fit_model
    from tasks.training.splits import LocalSplit

    training = TrainingConfig(
        batch_size=config["batch_size"], learning_rate=config["learning_rate"], max_epochs=epochs, xla="on"
    )
    model = compile_model(
        build_training_model(variant, config["num_words"], arrays["x_train"].shape[1], ModelConfig()),
        training,
        arrays["x_train"].size,
    )
    timer = EpochProgress(variant, epochs)
    with tempfile.TemporaryDirectory() as folder:  # the training's local copies of the ids, as it reads them
        splits = {}
        for name in ("train", "val"):
            np.save(Path(folder) / f"{name}.npy", arrays[f"x_{name}"])
            splits[name] = LocalSplit(ids_path=Path(folder) / f"{name}.npy", labels=arrays[f"y_{name}"])
        fit_model(model, splits["train"], splits["val"], training, config["seed"], callbacks=[timer])
    return model, [epoch["seconds"] for epoch in timer.epochs], score(model, arrays["x_test"])


def run_worker(spec: dict) -> dict:
    """One measurement, in this process: train, time the epochs, score the test split."""
    import keras

    keras.utils.set_random_seed(spec["seed"])
    arrays = dict(np.load(spec["data"]))
    fit = _baseline_fit if spec["implementation"] == BASELINE else _ours_fit
    model, seconds, probabilities = fit(spec["variant"], arrays, spec["warmup"] + spec["epochs"], spec)
    timed = seconds[spec["warmup"] :]
    return {
        "variant": spec["variant"],
        "implementation": spec["implementation"],
        "parameters": model.count_params(),
        "epoch_seconds": [round(value, 3) for value in timed],
        "median_epoch_seconds": round(statistics.median(timed), 3),
        "test_accuracy": float(np.mean((probabilities > 0.5) == (arrays["y_test"] > 0.5))),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _measure(spec: dict) -> dict:
    """Runs `run_worker(spec)` in a fresh Python process and returns its result."""
    completed = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['implementation']} {spec['variant']} failed:\n{completed.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def compare(results: list[dict]) -> list[dict]:
    """Per variant: ours / baseline for epoch time and peak memory, and the accuracy difference."""
    rows = []
    for variant in dict.fromkeys(result["variant"] for result in results):
        base = next(r for r in results if r["variant"] == variant and r["implementation"] == BASELINE)
        ours = next(r for r in results if r["variant"] == variant and r["implementation"] == OURS)
        rows.append(
            {
                "variant": variant,
                "parameters": [base["parameters"], ours["parameters"]],
                "epoch_seconds": [base["median_epoch_seconds"], ours["median_epoch_seconds"]],
                "time_ratio": round(ours["median_epoch_seconds"] / base["median_epoch_seconds"], 3),
                "peak_rss_mib": [base["peak_rss_mib"], ours["peak_rss_mib"]],
                "memory_ratio": round(ours["peak_rss_mib"] / base["peak_rss_mib"], 3),
                "test_accuracy": [round(base["test_accuracy"], 4), round(ours["test_accuracy"], 4)],
                "accuracy_delta": round(ours["test_accuracy"] - base["test_accuracy"], 4),
            }
        )
    return rows


COMPARISON_COLUMNS = (
    "variant",
    "parameters (base / ours)",
    "median epoch s (base / ours)",
    "time ratio",
    "peak RSS MiB (base / ours)",
    "memory ratio",
    "test accuracy (base / ours)",
)


def comparison_table(rows: list[dict]) -> str:
    return markdown_table(
        [
            (
                row["variant"],
                f"{row['parameters'][0]:,} / {row['parameters'][1]:,}",
                f"{row['epoch_seconds'][0]:.2f} / {row['epoch_seconds'][1]:.2f}",
                f"{row['time_ratio']:.3f}",
                f"{row['peak_rss_mib'][0]:,.0f} / {row['peak_rss_mib'][1]:,.0f}",
                f"{row['memory_ratio']:.3f}",
                f"{row['test_accuracy'][0]:.4f} / {row['test_accuracy'][1]:.4f}",
            )
            for row in rows
        ],
        COMPARISON_COLUMNS,
    )


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    time_axes, memory_axes = figure.subplots(1, 2)
    positions = np.arange(len(rows))
    for offset, index, label in ((-0.2, 0, BASELINE), (0.2, 1, OURS)):
        time_axes.bar(positions + offset, [row["epoch_seconds"][index] for row in rows], 0.4, label=label)
        memory_axes.bar(positions + offset, [row["peak_rss_mib"][index] for row in rows], 0.4, label=label)
    for axes, title in ((time_axes, "median epoch seconds"), (memory_axes, "peak resident memory (MiB)")):
        axes.set_xticks(positions, [row["variant"] for row in rows])
        axes.set_title(title)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _scoring_input(out_dir: Path, rows: int | None) -> tuple[Path, list[str]]:
    """The offline corpus's raw IMDB reviews (all 25,000, or the first `rows`) as a CSV to score."""
    import pandas as pd

    from tasks.data.corpus import read_offline_corpus
    from tasks.data.sources import offline_source

    texts, labels = read_offline_corpus(offline_source().local_path)
    keep = len(texts) if rows is None else min(rows, len(texts))
    path = out_dir / "reviews.csv"
    frame = pd.DataFrame({"id": range(keep), "review": texts[:keep], "label": labels[:keep]})
    frame.to_csv(path, index=False)
    return path, texts[:keep]


def bench_scoring_variant(variant: str, input_path: Path, texts: list[str], vocabulary, out_dir: Path) -> dict:
    """One variant's batch scoring, end to end (read, check, encode, score, write and publish the
    predictions), then encoding and scoring alone on the same reviews. Weights are untrained: they
    do not change the time."""
    import time

    from tasks.data import checks
    from tasks.data.vocabulary import TextEncoder
    from tasks.scoring import batch
    from tasks.scoring.scorer import SCORING_BATCH, ScoringModel
    from tasks.training import build

    spec = vocabulary.spec
    model = build.build_training_model(variant, spec.num_words, spec.maxlen, ModelConfig())
    scoring = ScoringModel("bench", variant, "untrained", "-", "-", model, TextEncoder.of(vocabulary))
    # Drift is measured against statistics of the same reviews: its cost counts, whatever it finds.
    sample = [scoring.encoder.all_ids(text) for text in texts[: batch.DRIFT_SAMPLE_ROWS]]
    statistics = checks.describe_scoring_batch(sample, np.zeros(len(sample)), spec.maxlen, spec.num_words, "bench")
    reference = batch.DriftReference(statistics, "the benchmark's own reviews", DataCheckConfig().max_drift)
    started = time.perf_counter()
    table, summary = batch.run_batch(scoring, str(input_path), None, "id", reference)
    batch.write_predictions(out_dir / f"work-{variant}", table, summary)
    batch.publish_batch(out_dir / f"work-{variant}", str(out_dir / "store"), variant, {})
    end_to_end = time.perf_counter() - started
    started = time.perf_counter()
    ids = scoring.encoder.encode(texts)
    encoding = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(ids, batch_size=SCORING_BATCH, verbose=0)
    predicting = time.perf_counter() - started
    shutil.rmtree(out_dir / "store")
    shutil.rmtree(out_dir / f"work-{variant}")
    return {
        "variant": variant,
        "reviews": len(texts),
        "end_to_end_seconds": round(end_to_end, 3),
        "reviews_per_second": round(len(texts) / end_to_end),
        "encode_per_second": round(len(texts) / encoding),
        "score_per_second": round(len(texts) / predicting),
    }


def bench_scoring(out: Path, rows: int | None, variants: list[str]) -> tuple[list[dict], str]:
    """Batch scoring's throughput per variant; writes scoring.json, returns the results and their table."""
    from tasks.data.vocabulary import parse_vocabulary

    dataset, _ = datasets.prepare_dataset(DataConfig(source="offline"), 42, str(out / "store"))
    vocabulary_uri = dataset.vocabulary_uri or ""
    vocabulary = parse_vocabulary(fs.read_bytes(vocabulary_uri), vocabulary_uri)
    input_path, texts = _scoring_input(out, rows)
    results = [bench_scoring_variant(variant, input_path, texts, vocabulary, out) for variant in variants]
    input_path.unlink()
    fs.write_json(str(out / "scoring.json"), {"results": results})
    columns = ("variant", "reviews", "end_to_end_s", "reviews/s", "encode/s", "score/s")
    rows_out = [
        (
            r["variant"],
            f"{r['reviews']:,}",
            f"{r['end_to_end_seconds']:.2f}",
            f"{r['reviews_per_second']:,}",
            f"{r['encode_per_second']:,}",
            f"{r['score_per_second']:,}",
        )
        for r in results
    ]
    return results, "batch scoring (read, check, encode, score, write; raw IMDB reviews):\n" + markdown_table(
        rows_out, columns
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="training reviews to use (default: all 16,000)")
    parser.add_argument("--variants", default=",".join(SEED_FORMULATIONS), help="comma-separated variants")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first (graph tracing, caches)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for results.json, results.md, results.png")
    parser.add_argument(
        "--section",
        choices=("all", *SECTIONS),
        default="all",
        help=f"what to measure; all is {', '.join(ALL_SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--baseline-commit",
        default=bench_run.BASELINE_COMMIT,
        help="run section: the earlier code to compare `make run` with (default: %(default)s)",
    )
    parser.add_argument(
        "--run-args",
        default="",
        help='run and scale sections: pipeline options (run: for both codes), e.g. "--max-epochs 5"',
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=bench_scale.DEFAULT_SIZES,
        help="scale section: comma-separated numbers of reviews (default: 100000,1000000,3000000)",
    )
    parser.add_argument(
        "--history",
        default=str(bench_history.DEFAULT_HISTORY),
        help="where results are appended (default: %(default)s)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0
    if args.epochs < 1 or args.warmup < 0 or (args.rows is not None and args.rows < 8):
        print("error: --epochs must be >= 1, --warmup >= 0 and --rows >= 8", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in SEED_FORMULATIONS]
    if unknown:
        print(
            f"error: --variants: the seed defines no {unknown[0]!r}; known: {', '.join(SEED_FORMULATIONS)}",
            file=sys.stderr,
        )
        return 2
    history = Path(args.history)
    for section in ALL_SECTIONS if args.section == "all" else (args.section,):
        options, numbers, text = MEASURE[section](args, out, variants)
        print(text)
        bench_history.append(history, section, options, numbers)
        print(bench_history.table(history, section, options), flush=True)
    return 0


def measure_training(args: argparse.Namespace, out: Path, variants: list[str]) -> tuple[dict, dict, str]:
    rows = bench_training(args, out, variants)
    options = {"rows": args.rows, "epochs": args.epochs, "warmup": args.warmup, "variants": variants}
    numbers = {f"{row['variant']} {name}": row[name] for row in rows for name in ("time_ratio", "memory_ratio")}
    return options, numbers, comparison_table(rows)


def measure_scoring(args: argparse.Namespace, out: Path, variants: list[str]) -> tuple[dict, dict, str]:
    results, text = bench_scoring(out, args.rows, variants)
    numbers = {f"{result['variant']} reviews/s": result["reviews_per_second"] for result in results}
    return {"rows": args.rows, "variants": variants}, numbers, text


def measure_run(args: argparse.Namespace, out: Path, variants: list[str]) -> tuple[dict, dict, str]:
    summary = bench_run.bench_run(out, args.baseline_commit, args.run_args.split())
    base, ours = summary["results"][args.baseline_commit], summary["results"]["ours"]
    numbers = {
        "earlier first s": base["first"]["wall_seconds"],
        "our first s": ours["first"]["wall_seconds"],
        "our cached s": ours["cached"]["wall_seconds"],
        **{goal["goal"]: goal["measured"] for goal in summary["goals"]},
    }
    options = {"baseline_commit": args.baseline_commit, "run_args": args.run_args}
    return (
        options,
        numbers,
        f"make run, side by side with commit {args.baseline_commit}:\n" + bench_run.run_table(summary),
    )


def measure_scale(args: argparse.Namespace, out: Path, variants: list[str]) -> tuple[dict, dict, str]:
    seed = PipelineConfig().seed
    summary = bench_scale.bench_scale(out, list(args.sizes), seed, args.run_args.split())
    numbers: dict[str, float] = {}
    for result in summary["results"]:
        if "data_seconds" in result:
            numbers[f"{result['rows']:,} data s"] = result["data_seconds"]
            numbers[f"{result['rows']:,} peak GB"] = round(result["peak_rss_bytes"] / bench_scale.GB, 3)
    for name, value in (("data exponent", summary["exponent"]), ("peak growth", summary["peak_growth"])):
        if value is not None:
            numbers[name] = value
    options = {"sizes": list(args.sizes), "seed": seed, "run_args": args.run_args}
    text = "scale: the data stages and one epoch on generated IMDB-like reviews:\n" + bench_scale.scale_table(summary)
    return options, numbers, text


def measure_tokenize(args: argparse.Namespace, out: Path, variants: list[str]) -> tuple[dict, dict, str]:
    result = bench_tokenizer.bench_tokenizer()
    fs.write_json(str(out / "tokenize.json"), result)
    numbers = {name: value for name, value in result.items() if name != "reviews"}
    text = (
        f"tokenize and encode, {result['reviews']:,} offline reviews, per CPU second (one core): "
        f"batch tokenizer {result['batch_reviews_per_cpu_second']:,}/s, per-review regex "
        f"{result['regex_reviews_per_cpu_second']:,}/s ({result['speedup']}x), "
        f"{result['mismatched_reviews']} reviews encoded differently"
    )
    return {"reviews": result["reviews"]}, numbers, text


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers of reviews: {text!r}") from None
    if not sizes or min(sizes) < bench_scale.SMALLEST_SIZE:
        raise argparse.ArgumentTypeError(f"every size must be at least {bench_scale.SMALLEST_SIZE} reviews")
    return tuple(sorted(set(sizes)))


SECTIONS = ("training", "scoring", "run", "scale", "tokenize")
ALL_SECTIONS = ("training", "scoring", "run")  # scale takes an hour and GBs of disk: asked for by name only
MEASURE = {
    "training": measure_training,
    "scoring": measure_scoring,
    "run": measure_run,
    "scale": measure_scale,
    "tokenize": measure_tokenize,
}


def bench_training(args: argparse.Namespace, out: Path, variants: list[str]) -> list[dict]:
    """The seed's training against ours; writes results.json/.md/.png, returns the comparison rows."""
    data_config, training = DataConfig(source="offline"), TrainingConfig()
    recipe: dict[str, Any] = {
        "num_words": data_config.num_words,
        "maxlen": data_config.maxlen,
        "batch_size": training.batch_size,
        "learning_rate": training.learning_rate,
        "seed": PipelineConfig().seed,
    }
    data_path = prepare_data(out, args.rows, data_config, recipe["seed"])
    results = []
    for variant in variants:
        for implementation in (BASELINE, OURS):
            spec = {
                **recipe,
                "variant": variant,
                "implementation": implementation,
                "data": str(data_path),
                "epochs": args.epochs,
                "warmup": args.warmup,
            }
            print(f"measuring {implementation} {variant} ...", file=sys.stderr, flush=True)
            results.append(_measure(spec))
    rows = compare(results)
    fs.write_json(
        str(out / "results.json"),
        {
            "recipe": recipe,
            "rows": args.rows,
            "epochs": args.epochs,
            "warmup": args.warmup,
            "results": results,
            "comparison": rows,
        },
    )
    table = comparison_table(rows)
    (out / "results.md").write_text(table + "\n")
    plot(rows, out / "results.png")
    data_path.unlink()
    return rows


if __name__ == "__main__":
    sys.exit(main())
