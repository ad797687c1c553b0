"""The human-readable side of a run: report.md and the summary table printed at the end."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

REPORTED_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "scikit-learn", "prefect", "pyarrow", "fsspec")
SUMMARY_COLUMNS = ("variant", "params", "epochs", "best", "test_loss", "test_acc", "roc_auc")


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that shape the results."""
    versions = {"python": platform.python_version()}
    for name in REPORTED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def summary_rows(variants: dict[str, dict]) -> list[tuple[str, ...]]:
    """One row per variant: parameters, epochs run, best epoch and test metrics."""
    rows = []
    for name, result in variants.items():
        test = result["test"]
        auc = "n/a" if test["roc_auc"] is None else f"{test['roc_auc']:.4f}"
        rows.append((name, f"{result['parameters']:,}", str(result["epochs_run"]), str(result["best_epoch"]),
                     f"{test['loss']:.4f}", f"{test['accuracy']:.4f}", auc))
    return rows


def metrics_records(variants: dict[str, dict]) -> list[dict]:
    """One flat record per variant (for table artifacts and dashboards)."""
    return [
        {"variant": name, "parameters": result["parameters"], "epochs": result["epochs_run"],
         "best_epoch": result["best_epoch"], **{f"test_{key}": result["test"][key] for key in ("loss", "accuracy", "roc_auc")}}
        for name, result in variants.items()
    ]


def published_files(variants: dict[str, dict]) -> dict[str, str]:
    """What a person wants to open in a run, by label: relative paths inside the run folder."""
    files = {"manifest": "manifest.json", "report": "report.md", "comparison plot": "comparison.png"}
    for name in variants:
        files |= {f"{name} model": f"{name}/model.keras", f"{name} loss plot": f"{name}/loss.png",
                  f"{name} accuracy plot": f"{name}/accuracy.png"}
    return files


def format_time_split(wall_seconds: float, variants: dict[str, dict], started_at: float) -> str:
    """Wall time split into training (variants trained in this process) and everything else."""
    training = sum(result["train_seconds"] for result in variants.values() if result["trained_at"] >= started_at)
    other = wall_seconds - training
    return (f"time: {wall_seconds:.1f} s wall = training {training:.1f} s ({100 * training / wall_seconds:.0f} %) "
            f"+ everything else {other:.1f} s ({100 * other / wall_seconds:.0f} %: imports, Prefect, data, publishing)")


def format_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    """A fixed-width text table for terminals and logs."""
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [columns, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = SUMMARY_COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(run_id: str, config: dict, source: dict, dataset: dict, variants: dict[str, dict],
                  decision: dict) -> str:
    """report.md: data set, parameters, versions, metrics table, champion decision and plots of one run."""
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
        "## Test metrics",
        _markdown_table(summary_rows(variants)),
        "Confusion matrices (rows: true negative/positive, columns: predicted negative/positive):",
        "\n".join(f"- {name}: `{result['test']['confusion_matrix']}`" for name, result in variants.items()),
        "## Champion",
        f"Gate decision: {'promote this run' if decision['promote'] else 'keep the current champion'} "
        f"({decision['reason']}). champion.json is replaced only after this run's manifest verifies.",
        "## Learning curves",
        "![comparison](comparison.png)",
        *(f"### {name}\n\n![loss]({name}/loss.png) ![accuracy]({name}/accuracy.png)" for name in variants),
        "## Parameters",
        "```json\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```",
        "## Versions",
        "\n".join(f"- {name} {version}" for name, version in package_versions().items()),
    ]
    return "\n\n".join(blocks) + "\n"


def write_run_files(run_dir: Path, run_id: str, config: dict, source: dict, dataset: dict,
                    variants: dict[str, dict], decision: dict) -> None:
    """The run-level `metrics.json` (every variant's test metrics) and `report.md`."""
    metrics = {name: result["test"] for name, result in variants.items()}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    (run_dir / "report.md").write_text(render_report(run_id, config, source, dataset, variants, decision))
