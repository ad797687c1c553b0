"""The sweep's own stage: its plot in the run folder and its table in the UI."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks import plots, reporting
from tasks.orchestration.ui import artifact_key


@task(name="plot-sweep", cache_policy=NO_CACHE)
def show_sweep(variants: dict[str, dict], run_dir: Path) -> None:
    """sweep.png (val accuracy per point of every variant) into the run folder, and the sweep table
    as a table artifact."""
    swept = {name: result["sweep"] for name, result in variants.items() if result.get("sweep")}
    plots.plot_sweep(swept, run_dir / "sweep.png")
    create_table_artifact(
        [dict(zip(reporting.SWEEP_COLUMNS, row, strict=True)) for row in reporting.sweep_rows(variants)],
        key=artifact_key("sweep"),
        description="val accuracy per sweep point; per variant the lowest val_loss is published",
    )
