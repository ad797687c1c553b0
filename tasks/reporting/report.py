"""The human-readable side of a run: report.md and the summary table printed at the end."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from tasks.storage import fs
from tasks.storage.layout import (
    CHAMPION_NAME,
    CHECKS_NAME,
    COMPARISON_PLOT,
    CURVE_PLOTS,
    LABELS_PLOT,
    LENGTHS_PLOT,
    MANIFEST_NAME,
    METRICS_NAME,
    MODEL_CARD_NAME,
    MODEL_NAME,
    REPORT_NAME,
    SWEEP_PLOT,
    VOCABULARY_NAME,
    variant_file,
)
from tasks.training.variants import VARIANTS

REPORTED_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "scikit-learn", "prefect", "pyarrow", "fsspec")
SUMMARY_COLUMNS = (
    "variant",
    "params",
    "seed",
    "epochs",
    "best",
    "guard",
    "val_acc",
    "test_loss",
    "test_acc",
    "roc_auc",
    "acc_over_seeds",
)
SEED_METRICS = ("accuracy", "loss", "roc_auc")
BASELINE_NAME = "baseline"  # its row in tables, and its key in metrics.json


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that shape the results."""
    versions = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def variant_result(published, seed_runs: list, seed_metrics: list[dict]) -> dict:
    """A variant's summary: the published seed's training record and test metrics, every seed's
    outcome, and mean ± std of test metrics over seeds."""
    seeds = [
        {
            "seed": trained.attempts[0]["seed"],  # the seed this one started from, before any restart
            "published_seed": trained.seed,
            "attempts": trained.attempts,
            "stalled": trained.stalled,
            "under_trained": trained.under_trained,
            "epochs_run": trained.epochs_run,
            "best_val_loss": trained.best_val_loss,
            "test": {key: metrics[key] for key in SEED_METRICS},
        }
        for trained, metrics in zip(seed_runs, seed_metrics, strict=True)
    ]
    return {
        **published.model_dump(exclude={"model_path", "history_path"}),
        "test": seed_metrics[seed_runs.index(published)],
        "seeds": seeds,
        "across_seeds": across_seeds(seeds),
    }


def across_seeds(seeds: list[dict]) -> dict[str, dict]:
    """Mean, std (population) and count of each test metric over seeds (metrics some seed lacks: none)."""
    summary = {}
    for key in SEED_METRICS:
        values = [seed["test"][key] for seed in seeds if seed["test"][key] is not None]
        if len(values) == len(seeds):
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "count": len(values)}
    return summary


def guard_label(result: dict) -> str:
    """What the training guard concluded: ok, ok after restarts, or why no attempt was healthy."""
    attempts = len(result.get("attempts") or [{}])
    for flag, label in (("stalled", "STALLED"), ("under_trained", "UNDER-TRAINED")):
        if result.get(flag):
            return f"{label} ({attempts} attempt{'s' if attempts > 1 else ''})"
    restarts = attempts - 1
    return f"ok ({restarts} restart{'s' if restarts > 1 else ''})" if restarts else "ok"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def summary_rows(variants: dict[str, dict], baseline: dict | None = None) -> list[tuple[str, ...]]:
    """One row per variant (parameters, published seed, epochs, guard verdict, best val accuracy,
    test metrics, spread over seeds), then the baseline's row when there is one."""
    rows: list[tuple[str, ...]] = []
    for name, result in variants.items():
        test = result["test"]
        spread = result.get("across_seeds", {}).get("accuracy")
        over_seeds = f"{spread['mean']:.4f} ± {spread['std']:.4f} ({spread['count']})" if spread else "n/a"
        rows.append(
            (
                name,
                f"{result['parameters']:,}",
                str(result.get("seed", "")),
                str(result["epochs_run"]),
                str(result["best_epoch"]),
                guard_label(result),
                _number(result.get("best_val_accuracy")),
                _number(test["loss"]),
                _number(test["accuracy"]),
                _number(test["roc_auc"]),
                over_seeds,
            )
        )
    if baseline is not None:
        test = baseline["test"]
        rows.append(
            (
                BASELINE_NAME,
                f"{baseline['parameters']:,}",
                "-",
                "-",
                "-",
                "bar",
                _number(baseline["val"]["accuracy"]),
                _number(test["loss"]),
                _number(test["accuracy"]),
                _number(test["roc_auc"]),
                "n/a",
            )
        )
    return rows


def metrics_records(variants: dict[str, dict], baseline: dict | None = None) -> list[dict]:
    """One flat record per variant, and the baseline's (for table artifacts and dashboards)."""
    records = [
        {
            "variant": name,
            "parameters": result["parameters"],
            "seed": result.get("seed"),
            "epochs": result["epochs_run"],
            "best_epoch": result["best_epoch"],
            "guard": guard_label(result),
            "val_accuracy": result.get("best_val_accuracy"),
            **{f"test_{key}": result["test"][key] for key in ("loss", "accuracy", "roc_auc")},
        }
        for name, result in variants.items()
    ]
    if baseline is not None:
        records.append(
            {
                "variant": BASELINE_NAME,
                "parameters": baseline["parameters"],
                "seed": None,
                "epochs": None,
                "best_epoch": None,
                "guard": "bar",
                "val_accuracy": baseline["val"]["accuracy"],
                **{f"test_{key}": baseline["test"][key] for key in ("loss", "accuracy", "roc_auc")},
            }
        )
    return records


def baseline_verdict(variants: dict[str, dict], baseline: dict) -> str:
    """One plain sentence: does the bag-of-words baseline beat the RNN variants on test accuracy?"""
    bar, description = baseline["test"]["accuracy"], baseline["description"]
    beaten = [name for name, result in variants.items() if result["test"]["accuracy"] < bar]
    scores = ", ".join(f"{name} {result['test']['accuracy']:.4f}" for name, result in variants.items())
    if len(beaten) == len(variants):
        return (
            f"**The baseline beats every RNN variant**: {description} reaches test accuracy {bar:.4f} "
            f"against {scores}. On this data the recurrent networks add nothing over counting words."
        )
    if beaten:
        return (
            f"**The baseline beats {', '.join(beaten)}**: {description} reaches test accuracy {bar:.4f} "
            f"against {scores}."
        )
    return f"Every RNN variant beats the baseline ({description}, test accuracy {bar:.4f}): {scores}."


def published_files(variants: dict[str, dict]) -> dict[str, str]:
    """What a person wants to open in a run, by label: relative paths inside the run folder."""
    files = {
        "manifest": MANIFEST_NAME,
        "report": REPORT_NAME,
        "model card": MODEL_CARD_NAME,
        "comparison plot": COMPARISON_PLOT,
        "data checks": CHECKS_NAME,
        "review length plot": LENGTHS_PLOT,
        "label balance plot": LABELS_PLOT,
    }
    if any(result.get("sweep") for result in variants.values()):
        files["sweep plot"] = SWEEP_PLOT
    for name in variants:
        files |= {
            f"{name} model": variant_file(name, MODEL_NAME),
            **{f"{name} {metric} plot": variant_file(name, plot) for metric, plot in CURVE_PLOTS.items()},
        }
    return files


def rounded(records: list[dict], decimals: int = 4) -> list[dict]:
    """`records` with every float rounded to the decimals the summary table prints; other values as they are."""
    return [
        {key: round(value, decimals) if isinstance(value, float) else value for key, value in record.items()}
        for record in records
    ]


def format_time_split(process_started: float, ended: float, timing: dict) -> str:
    """A run's wall time split: start-up (imports, Prefect's server, creating the flow run), each
    stage, and the rest (finishing the flow run, printing): `time: W s wall = start-up a + ... (s)`."""
    parts = {
        "start-up": timing["flow_started"] - process_started,
        **timing["stage_seconds"],
        "finish": ended - timing["flow_ended"],
    }
    return (
        f"time: {ended - process_started:.1f} s wall = "
        + " + ".join(f"{name} {seconds:.1f}" for name, seconds in parts.items())
        + " (s)"
    )


def parse_time_split(line: str) -> dict[str, float]:
    """The parts of a `format_time_split` line, with `wall` for the total."""
    wall, _, parts = line.removeprefix("time: ").removesuffix(" (s)").partition(" s wall = ")
    split = {name: float(seconds) for name, _, seconds in (part.rpartition(" ") for part in parts.split(" + "))}
    return {"wall": float(wall), **split}


def format_table(rows: Sequence[Sequence[str]], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    """A fixed-width text table for terminals and logs."""
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in [columns, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    """A markdown table of already formatted cells: every table the pipeline and its tools write."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunFacts:
    """What a run's documents (report.md, model_card.md, metrics.json) describe, as JSON-able dicts."""

    run_id: str
    config: dict
    source: dict
    dataset: dict
    variants: dict[str, dict]
    baseline: dict
    decision: dict
    data_checks: dict | None = None


def render_report(facts: RunFacts) -> str:
    """report.md: data set, parameters, versions, metrics table beside the baseline, the guard's
    verdicts, champion decision and plots of one run."""
    run_id, config, source, dataset = facts.run_id, facts.config, facts.source, facts.dataset
    variants, baseline, decision, data_checks = facts.variants, facts.baseline, facts.decision, facts.data_checks
    data_lines = [
        f"- source: {source['description']}",
        f"- source URI: `{source['uri']}` (sha256 `{source['sha256']}`)",
        f"- data set key: `{dataset['key']}` at `{dataset['uri']}`",
        "- reviews: " + ", ".join(f"{name} {count:,}" for name, count in dataset["rows"].items()),
    ]
    if source.get("fallback_reason"):
        data_lines.insert(1, f"- fell back to the offline corpus because: {source['fallback_reason']}")
    blocks = [
        f"# IMDB SimpleRNN run {run_id}",
        "## Data set",
        "\n".join(data_lines),
        *([render_data_section(data_checks)] if data_checks else []),
        "## Test metrics",
        baseline_verdict(variants, baseline),
        markdown_table(summary_rows(variants, baseline)),
        "Confusion matrices (rows: true negative/positive, columns: predicted negative/positive):",
        "\n".join(
            f"- {name}: `{result['test']['confusion_matrix']}`"
            for name, result in {**variants, BASELINE_NAME: baseline}.items()
        ),
        "## Seeds and restarts",
        guard_rule(config["training"], baseline),
        "\n".join(_spread_lines(variants)),
        markdown_table(seed_rows(variants), SEED_COLUMNS),
        *sweep_blocks(variants),
        "## Champion",
        f"Gate decision: {'promote this run' if decision['promote'] else 'keep the current champion'} "
        f"({decision['reason']}). {CHAMPION_NAME} is replaced only after this run's manifest verifies.",
        "## Learning curves",
        f"![comparison]({COMPARISON_PLOT})",
        *(
            f"### {name}\n\n"
            + " ".join(f"![{metric}]({variant_file(name, plot)})" for metric, plot in CURVE_PLOTS.items())
            for name in variants
        ),
        "## Parameters",
        "```json\n" + fs.json_bytes(config).decode() + "```",
        "## Versions",
        "\n".join(f"- {name} {version}" for name, version in package_versions().items()),
    ]
    return "\n\n".join(blocks) + "\n"


SEED_COLUMNS = (
    "variant",
    "seed",
    "attempts (seed: best val acc)",
    "guard",
    "epochs",
    "best_val_loss",
    "test_acc",
    "published",
)


def seed_rows(variants: dict[str, dict]) -> list[tuple[str, ...]]:
    """Every seed of every variant with all its attempts: nothing a restart replaced is hidden."""
    rows: list[tuple[str, ...]] = []
    for name, result in variants.items():
        for seed in result.get("seeds", []):
            attempts = ", ".join(
                f"{attempt['seed']}: {attempt['best_val_accuracy']:.4f}{_attempt_flag(attempt)}"
                for attempt in seed["attempts"]
            )
            rows.append(
                (
                    name,
                    " ".join(filter(None, (str(seed["seed"]), seed.get("point")))),
                    attempts,
                    guard_label(seed),
                    str(seed["epochs_run"]),
                    f"{seed['best_val_loss']:.4f}",
                    f"{seed['test']['accuracy']:.4f}",
                    "yes" if _is_published(seed, result) else "",
                )
            )
    return rows


def _is_published(seed: dict, result: dict) -> bool:
    # Points of a sweep train from the same seeds: the val_loss tells their trainings apart.
    return seed["published_seed"] == result["seed"] and seed["best_val_loss"] == result["best_val_loss"]


SWEEP_COLUMNS = ("variant", "point", "seeds", "best_val_loss", "val_acc", "mean_val_acc", "published")


def sweep_rows(variants: dict[str, dict]) -> list[tuple[str, ...]]:
    """Every point of every swept variant: its best val_loss over seeds and that training's val
    accuracy, the mean val accuracy over seeds, and which point is published."""
    return [
        (
            name,
            row["point"],
            str(row["seeds"]),
            f"{row['best_val_loss']:.4f}",
            f"{row['val_accuracy']:.4f}",
            f"{row['mean_val_accuracy']:.4f}",
            "yes" if row["published"] else "",
        )
        for name, result in variants.items()
        for row in result.get("sweep", {}).get("points", [])
    ]


def sweep_blocks(variants: dict[str, dict]) -> list[str]:
    """The report's sweep section (none without a sweep): which point each variant publishes and
    why, the table, and the plot of val accuracy per point."""
    swept = {name: result["sweep"] for name, result in variants.items() if result.get("sweep")}
    if not swept:
        return []
    chosen = "\n".join(f"- {name}: {sweep['published_point']}" for name, sweep in swept.items())
    return [
        "## Sweep",
        "Every point trained from the same seeds. Per variant, the training with the lowest val_loss over "
        "all points and seeds is published (never a test metric); the champion gate then judges it as usual. "
        "Published points:",
        chosen,
        markdown_table(sweep_rows(variants), SWEEP_COLUMNS),
        f"![sweep]({SWEEP_PLOT})",
    ]


def _attempt_flag(attempt: dict) -> str:
    return " stalled" if attempt["stalled"] else " under-trained" if attempt.get("under_trained") else ""


def _spread_lines(variants: dict[str, dict]) -> list[str]:
    lines = []
    for name, result in variants.items():
        parts = [
            f"{key} {value['mean']:.4f} ± {value['std']:.4f}" for key, value in result.get("across_seeds", {}).items()
        ]
        count = len(result.get("seeds", []))
        lines.append(f"- {name} over {count} seed{'s' if count != 1 else ''}: " + (", ".join(parts) or "n/a"))
    return lines


def guard_rule(training: dict, baseline: dict) -> str:
    """The guard's rule with this run's numbers, for report and model card."""
    floor = baseline["val"]["accuracy"] - training["baseline_margin"]
    return (
        f"An attempt is *under-trained* when its best val accuracy is more than {training['baseline_margin']:g} "
        f"below the baseline's {baseline['val']['accuracy']:.4f} (below {floor:.4f}), and *stalled* when it is "
        f"within {training['stall_margin']:g} of always guessing the majority class. Either one is retrained "
        f"with a derived seed, up to {training['restarts']} time(s); a variant with no healthy attempt is "
        "published marked as such and never promoted."
    )


def model_list(variants: dict[str, dict], maxlen: int) -> str:
    """One line per published model: its file, its variant's description, size, input and output."""
    return "\n".join(
        f"- `{variant_file(name, MODEL_NAME)}`: {VARIANTS[name].description}, {result['parameters']:,} parameters; "
        f"input {maxlen} word ids (int), output the probability that the review is positive"
        for name, result in variants.items()
    )


def data_caveats(data_checks: dict | None) -> list[str]:
    """The data checks' warnings and the drift verdict, as model card lines (none when all is usual)."""
    if not data_checks:
        return []
    lines = [
        f"- data check warning, {finding['check']}: {finding['message']}"
        for finding in data_checks["checks"]
        if finding["level"] == "warning"
    ]
    drift = data_checks.get("drift")
    if drift and drift["drifted"]:
        lines.append(
            f"- drift against {data_checks['drift_reference']}: {', '.join(drift['drifted'])} above "
            f"{drift['max_drift']:g} (see {REPORT_NAME})"
        )
    return lines


def raw_text_note(dataset: dict, offline: bool) -> str:
    """How raw text becomes ids for this run's models, and how exact that is."""
    if not dataset.get("vocabulary_uri"):
        return (
            "This data set has no word index (a mirror without `imdb_word_index.json` beside it): raw text "
            "cannot be encoded."
        )
    exactness = (
        "exact: encoding the corpus's reviews reproduces the stored ids"
        if offline
        else "close but not exact: Keras' original tokenisation of the canonical reviews is unknown, so encoding "
        "raw text with its word index differs from the stored ids for some reviews"
    )
    return (
        f"Raw text is encoded with `{VOCABULARY_NAME}` in this run (the word -> rank map and the tokenizer spec: "
        "lowercasing, `<br />` removal, token pattern, pad/start/oov ids, index_from, num_words, maxlen, front "
        f'padding and truncation); {exactness}. `make predict TEXT="..."` and `make score INPUT=...` do it for you.'
    )


def render_model_card(facts: RunFacts) -> str:
    """model_card.md: what the published models are, what they were trained on, how well they do,
    where they fail, and how to score with them."""
    run_id, config, source, dataset = facts.run_id, facts.config, facts.source, facts.dataset
    variants, baseline, decision, data_checks = facts.variants, facts.baseline, facts.decision, facts.data_checks
    data, training = config["data"], config["training"]
    offline = source.get("kind") == "offline"
    blocks = [
        f"# Model card: IMDB review sentiment, SimpleRNN (run {run_id})",
        "## Models",
        model_list(variants, data["maxlen"]),
        f"Trained with the `{training['recipe']}` recipe: RMSprop (learning rate {training['learning_rate']}), binary "
        f"cross-entropy, batch {training['batch_size']}, up to {training['max_epochs']} epochs, early stopping on "
        f"val_loss (patience {training['patience']}, from epoch {training['start_from_epoch']}), best val_loss "
        f"weights kept; {training['seeds']} seed(s) per variant, the lowest val_loss published; up to "
        f"{training['restarts']} restart(s) with a derived seed when a variant is under-trained against the "
        "baseline or stalls at chance.",
        "## Data",
        "\n".join(
            [
                f"- {source['description']}"
                + (" **Metrics are not comparable with runs on the canonical data.**" if offline else ""),
                "- reviews: " + ", ".join(f"{name} {count:,}" for name, count in dataset["rows"].items()),
                f"- vocabulary: the {data['num_words'] - 3:,} most frequent words of the training reviews "
                f"({data['num_words']} ids with pad 0, start 1, out-of-vocabulary 2); every rarer word is the same "
                "out-of-vocabulary id",
                f"- length: the last {data['maxlen']} tokens of each review (longer reviews lose their beginning; "
                "shorter ones are zero-padded at the front)",
                *data_caveats(data_checks),
            ]
        ),
        "## Intended use",
        "A small, reproducible baseline for binary sentiment of English movie reviews: teaching, benchmarking "
        "pipeline changes and comparing recurrent formulations. Not for decisions about people, other domains or "
        "languages, or any use where a wrong label costs more than a wrong guess on a movie review: with a "
        "500-word vocabulary and 100 tokens, accuracy is about 0.78, and sarcasm, negation far from the end of a "
        "review and rare words are beyond it.",
        "## Test metrics",
        baseline_verdict(variants, baseline),
        markdown_table(summary_rows(variants, baseline)),
        "\n".join(_spread_lines(variants)),
        "## Under-trained, stalls and restarts",
        guard_rule(training, baseline),
        markdown_table(seed_rows(variants), SEED_COLUMNS),
        "## Champion",
        f"{'Promoted' if decision['promote'] else 'Not promoted'}: {decision['reason']}.",
        "## How to score",
        "```python\n"
        "import keras\n"
        f'model = keras.models.load_model("{variant_file("embedding", MODEL_NAME)}", safe_mode=True)'
        "  # or tasks.training.evaluation.load_model(uri)\n"
        "probabilities = model.predict(token_ids)  # token_ids: int array (n, "
        f"{data['maxlen']}) in this data set's id scheme\n"
        "```\n"
        f"Token ids must follow the data set's scheme: the Parquet splits at `{dataset['uri']}` hold ready-made ids. "
        + raw_text_note(dataset, offline),
    ]
    return "\n\n".join(blocks) + "\n"


def run_metrics(variants: dict[str, dict], baseline: dict) -> dict[str, dict]:
    """metrics.json: per variant and for the baseline, the test metrics and the val accuracy (a
    variant's best epoch; the baseline's fit), and for variants the guard's verdict."""
    metrics = {
        name: {
            **result["test"],
            "val_accuracy": result["best_val_accuracy"],
            "guard": guard_label(result),
            "under_trained": result.get("under_trained", False),
            "stalled": result.get("stalled", False),
        }
        for name, result in variants.items()
    }
    metrics[BASELINE_NAME] = {
        **baseline["test"],
        "val_accuracy": baseline["val"]["accuracy"],
        "val_roc_auc": baseline["val"]["roc_auc"],
        "description": baseline["description"],
    }
    return metrics


def write_run_files(run_dir: Path, facts: RunFacts) -> None:
    """The run-level `metrics.json` (every variant's and the baseline's metrics), `report.md` and
    `model_card.md`."""
    fs.write_json(str(run_dir / METRICS_NAME), run_metrics(facts.variants, facts.baseline))
    (run_dir / REPORT_NAME).write_text(render_report(facts))
    (run_dir / MODEL_CARD_NAME).write_text(render_model_card(facts))


DATA_COLUMNS = (
    "split",
    "rows",
    "positive",
    "length p05 / p50 / p95 / max",
    "truncated",
    "padded",
    "empty",
    "oov_rate",
    "duplicates",
)


def data_rows(statistics: dict) -> list[tuple[str, ...]]:
    """One row per split: rows, label balance, lengths before padding, truncation, OOV rate, duplicates."""
    rows: list[tuple[str, ...]] = []
    for name, split in statistics["splits"].items():
        length = split["length"]
        rows.append(
            (
                name,
                f"{split['rows']:,}",
                f"{split['positive_share']:.1%}",
                f"{length['p05']:.0f} / {length['p50']:.0f} / {length['p95']:.0f} / {length['max']:,}",
                f"{split['truncated_share']:.1%}",
                f"{split['padded_share']:.1%}",
                str(split["empty_reviews"]),
                f"{split['oov_rate']:.4f}",
                f"{statistics['duplicates']['within'][name]['rows']:,}",
            )
        )
    return rows


def render_data_section(data_checks: dict, with_plots: bool = True) -> str:
    """The report's "Data" section: statistics per split, overlap between splits, every check's
    finding, drift against the champion's data, and (`with_plots`) the length and label plots."""
    statistics, drift = data_checks["statistics"], data_checks.get("drift")
    overlap = statistics["duplicates"]
    lines = [
        "## Data",
        f"Lengths are in ids before padding (the start id included); reviews longer than maxlen "
        f"{statistics['maxlen']} lose their beginning, shorter ones are padded. OOV rate: the share of word ids "
        f"that are out of the {statistics['num_words']}-word vocabulary (id 2).",
        markdown_table(data_rows(statistics), DATA_COLUMNS),
        "Exact repeats across splits: "
        + ", ".join(
            f"{pair} {item['rows']:,} ({item['share']:.2%} of {pair.split('/')[1]})"
            for pair, item in overlap["across"].items()
        )
        + f"; test reviews found in train or val: {overlap['test_in_training']['rows']:,} "
        f"({overlap['test_in_training']['share']:.2%}).",
        "Checks:\n\n"
        + "\n".join(
            f"- {finding['level'].upper()} {finding['check']}: {finding['message']}"
            for finding in data_checks["checks"]
        ),
    ]
    if drift:
        distances = ", ".join(f"{name} {value:.4f}" for name, value in drift["distances"].items())
        verdict = (
            f"**drift above {drift['max_drift']:g}** in {', '.join(drift['drifted'])}"
            if drift["drifted"]
            else f"no distance above {drift['max_drift']:g}"
        )
        lines.append(
            f"Drift against {data_checks['drift_reference']} ({drift['distance']} distances): {distances}; "
            f"{verdict}. Positive share {drift['positive_share']['reference']:.3f} → "
            f"{drift['positive_share']['current']:.3f}, mean length {drift['mean_length']['reference']:.1f} → "
            f"{drift['mean_length']['current']:.1f}, OOV rate {drift['oov_rate']['reference']:.4f} → "
            f"{drift['oov_rate']['current']:.4f}."
        )
    else:
        lines.append(f"Drift against the champion's data: not measured ({data_checks['drift_reference']}).")
    if with_plots:
        lines.append(f"![review lengths]({LENGTHS_PLOT}) ![label balance]({LABELS_PLOT})")
    return "\n\n".join(lines)
