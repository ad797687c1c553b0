"""The tables a person reads: the summary (variants beside the baseline), every seed, every sweep
point and every split's statistics, as fixed-width text or markdown; and the run's time split."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from tasks.reporting.results import Spread, VariantResult, guard_label, metrics_records
from tasks.training.baseline import BaselineResult
from tasks.training.jobs import Attempt

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


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def summary_rows(variants: dict[str, VariantResult], baseline: BaselineResult | None = None) -> list[tuple[str, ...]]:
    """`metrics_records` as the summary table prints them: one row per variant (parameters, published
    seed, epochs, guard verdict, best val accuracy, test metrics, spread over seeds), then the
    baseline's row when there is one (no seeds: dashes, and no spread)."""
    spreads = [result.across_seeds.get("accuracy") for result in variants.values()]
    return [
        (*_record_cells(record), _spread_cell(spread))
        for record, spread in itertools.zip_longest(metrics_records(variants, baseline), spreads)
    ]


def _record_cells(record: dict) -> tuple[str, ...]:
    return (
        record["variant"],
        f"{record['parameters']:,}",
        *("-" if record[key] is None else str(record[key]) for key in ("seed", "epochs", "best_epoch")),
        record["guard"],
        *(_number(record[key]) for key in ("val_accuracy", "test_loss", "test_accuracy", "test_roc_auc")),
    )


def _spread_cell(spread: Spread | None) -> str:
    return f"{spread.mean:.4f} ± {spread.std:.4f} ({spread.count})" if spread else "n/a"


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


def seed_rows(variants: dict[str, VariantResult]) -> list[tuple[str, ...]]:
    """Every seed of every variant with all its attempts: nothing a restart replaced is hidden."""
    rows: list[tuple[str, ...]] = []
    for name, result in variants.items():
        for seed in result.seeds:
            attempts = ", ".join(
                f"{attempt.seed}: {attempt.best_val_accuracy:.4f}{_attempt_flag(attempt)}"
                for attempt in seed.trained.attempts
            )
            rows.append(
                (
                    name,
                    " ".join(filter(None, (str(seed.first_seed), seed.point))),
                    attempts,
                    guard_label(seed.trained),
                    str(seed.trained.epochs_run),
                    f"{seed.trained.best_val_loss:.4f}",
                    f"{seed.test.accuracy:.4f}",
                    "yes" if seed.trained == result.published else "",
                )
            )
    return rows


SWEEP_COLUMNS = ("variant", "point", "seeds", "best_val_loss", "val_acc", "mean_val_acc", "published")


def sweep_rows(variants: dict[str, VariantResult]) -> list[tuple[str, ...]]:
    """Every point of every swept variant: its best val_loss over seeds and that training's val
    accuracy, the mean val accuracy over seeds, and which point is published."""
    return [
        (
            name,
            row.point,
            str(row.seeds),
            f"{row.best_val_loss:.4f}",
            f"{row.val_accuracy:.4f}",
            f"{row.mean_val_accuracy:.4f}",
            "yes" if row.published else "",
        )
        for name, result in variants.items()
        for row in (result.sweep.points if result.sweep else [])
    ]


def _attempt_flag(attempt: Attempt) -> str:
    return " stalled" if attempt.stalled else " under-trained" if attempt.under_trained else ""


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
