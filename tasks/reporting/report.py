"""report.md: what one run did, for a person reading it after the run (and the UI's copy of it)."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.config import TrainingConfig
from tasks.data.sources import SourceInfo
from tasks.registry.gate import Decision
from tasks.registry.publishing import RunContext, package_versions
from tasks.reporting.results import BASELINE_NAME, RunResults, VariantResult, run_metrics
from tasks.reporting.tables import (
    DATA_COLUMNS,
    SEED_COLUMNS,
    SWEEP_COLUMNS,
    data_rows,
    markdown_table,
    seed_rows,
    summary_rows,
    sweep_rows,
)
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
    variant_file,
)
from tasks.training.baseline import BaselineResult


def baseline_verdict(variants: dict[str, VariantResult], baseline: BaselineResult) -> str:
    """One plain sentence: does the bag-of-words baseline beat the RNN variants on test accuracy?"""
    bar, description = baseline.test.accuracy, baseline.description
    beaten = [name for name, result in variants.items() if result.test.accuracy < bar]
    scores = ", ".join(f"{name} {result.test.accuracy:.4f}" for name, result in variants.items())
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


def published_files(variants: dict[str, VariantResult]) -> dict[str, str]:
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
    if any(result.sweep for result in variants.values()):
        files["sweep plot"] = SWEEP_PLOT
    for name in variants:
        files |= {
            f"{name} model": variant_file(name, MODEL_NAME),
            **{f"{name} {metric} plot": variant_file(name, plot) for metric, plot in CURVE_PLOTS.items()},
        }
    return files


@dataclass(frozen=True)
class RunFacts:
    """What a run's documents (report.md, model_card.md, metrics.json) describe: the run, what its
    stages found, and the champion gate's decision."""

    run: RunContext
    results: RunResults
    decision: Decision


def source_files_table(source: SourceInfo) -> str:
    """Every file of one's own reviews the run read, with its snapshot and sha256: what reproduces
    the run, and what tells a changed or deleted file apart."""
    rows = "\n".join(f"| `{file.snapshot}` | `{file.uri}` | `{file.sha256}` |" for file in source.files)
    return f"\n| snapshot | file | sha256 |\n|---|---|---|\n{rows}\n"


def render_report(facts: RunFacts) -> str:
    """report.md: data set, parameters, versions, metrics table beside the baseline, the guard's
    verdicts, champion decision and plots of one run."""
    config, source, dataset, decision = facts.run.config, facts.run.source, facts.run.dataset, facts.decision
    variants, baseline, data_checks = facts.results.variants, facts.results.baseline, facts.results.data_checks_json
    data_lines = [
        f"- source: {source.description}",
        f"- source URI: `{source.uri}` (sha256 `{source.sha256}`)",
        f"- data set key: `{dataset.key}` at `{dataset.uri}`",
        "- reviews: " + ", ".join(f"{name} {count:,}" for name, count in dataset.rows.items()),
    ]
    if source.fallback_reason:
        data_lines.insert(1, f"- fell back to the offline corpus because: {source.fallback_reason}")
    if source.files:
        data_lines.append(
            f"- window `{config.data.window}`: snapshots " + ", ".join(f"`{s}`" for s in source.snapshots)
        )
        data_lines.append(source_files_table(source))
    blocks = [
        f"# IMDB SimpleRNN run {facts.run.run_id}",
        "## Data set",
        "\n".join(data_lines),
        *([render_data_section(data_checks)] if data_checks else []),
        "## Test metrics",
        baseline_verdict(variants, baseline),
        markdown_table(summary_rows(variants, baseline)),
        "Confusion matrices (rows: true negative/positive, columns: predicted negative/positive):",
        "\n".join(
            f"- {name}: `{test.confusion_matrix}`"
            for name, test in {
                **{name: result.test for name, result in variants.items()},
                BASELINE_NAME: baseline.test,
            }.items()
        ),
        "## Seeds and restarts",
        guard_rule(config.training, baseline),
        "\n".join(spread_lines(variants)),
        markdown_table(seed_rows(variants), SEED_COLUMNS),
        *sweep_blocks(variants),
        "## Champion",
        f"Gate decision: {'promote this run' if decision.promote else 'keep the current champion'} "
        f"({decision.reason}). {CHAMPION_NAME} is replaced only after this run's manifest verifies.",
        "## Learning curves",
        "![comparison](comparison.png)",
        *(
            f"### {name}\n\n"
            + " ".join(f"![{metric}]({variant_file(name, plot)})" for metric, plot in CURVE_PLOTS.items())
            for name in variants
        ),
        "## Parameters",
        "```json\n" + fs.json_bytes(config.model_dump(mode="json")).decode() + "```",
        "## Versions",
        "\n".join(f"- {name} {version}" for name, version in package_versions().items()),
    ]
    return "\n\n".join(blocks) + "\n"


def sweep_blocks(variants: dict[str, VariantResult]) -> list[str]:
    """The report's sweep section (none without a sweep): which point each variant publishes and
    why, the table, and the plot of val accuracy per point."""
    swept = {name: result.sweep for name, result in variants.items() if result.sweep}
    if not swept:
        return []
    chosen = "\n".join(f"- {name}: {sweep.published_point}" for name, sweep in swept.items())
    return [
        "## Sweep",
        "Every point trained from the same seeds. Per variant, the training with the lowest val_loss over "
        "all points and seeds is published (never a test metric); the champion gate then judges it as usual. "
        "Published points:",
        chosen,
        markdown_table(sweep_rows(variants), SWEEP_COLUMNS),
        f"![sweep]({SWEEP_PLOT})",
    ]


def spread_lines(variants: dict[str, VariantResult]) -> list[str]:
    """One line per variant: mean ± std of each test metric over its seeds, for report and model card."""
    lines = []
    for name, result in variants.items():
        parts = [f"{key} {spread.mean:.4f} ± {spread.std:.4f}" for key, spread in result.across_seeds.items()]
        count = len(result.seeds)
        lines.append(f"- {name} over {count} seed{'s' if count != 1 else ''}: " + (", ".join(parts) or "n/a"))
    return lines


def guard_rule(training: TrainingConfig, baseline: BaselineResult) -> str:
    """The guard's rule with this run's numbers, for report and model card."""
    floor = baseline.val.accuracy - training.baseline_margin
    return (
        f"An attempt is *under-trained* when its best val accuracy is more than {training.baseline_margin:g} "
        f"below the baseline's {baseline.val.accuracy:.4f} (below {floor:.4f}), and *stalled* when it is "
        f"within {training.stall_margin:g} of always guessing the majority class. Either one is retrained "
        f"with a derived seed, up to {training.restarts} time(s); a variant with no healthy attempt is "
        "published marked as such and never promoted."
    )


def write_run_files(facts: RunFacts) -> None:
    """The run-level `metrics.json` (every variant's and the baseline's metrics) and `report.md`, in
    the run's folder."""
    fs.write_json(str(facts.run.run_dir / METRICS_NAME), run_metrics(facts.results.variants, facts.results.baseline))
    (facts.run.run_dir / REPORT_NAME).write_text(render_report(facts))


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
