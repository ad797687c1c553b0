"""Sweeps: every combination of the values given for model and training fields, each trained once
per seed as its own job, and the table that compares the points of a variant.

A variant's published training is the lowest best val_loss over all its points and seeds
(`training.pick_published`); test metrics never choose a point.
"""

from __future__ import annotations

import itertools
import statistics

from pydantic import BaseModel, ConfigDict

from tasks.config import PipelineConfig, sweep_section
from tasks.data.store import DatasetInfo
from tasks.training.jobs import TrainedVariant, TrainingJob
from tasks.training.variants import get as get_variant

Point = dict[str, int | float]


class SweepPoint(BaseModel):
    """One point of a variant's sweep over its seeds: the row of the sweep table."""

    model_config = ConfigDict(frozen=True)

    point: str  # its label, `rnn_units=16 learning_rate=0.001`
    values: Point
    seeds: int
    best_val_loss: float  # the lowest over its seeds
    val_accuracy: float  # the best val accuracy of that same training
    mean_val_accuracy: float
    val_accuracies: list[float]  # each seed's best val accuracy
    published: bool  # it holds the variant's published training


class SweepSummary(BaseModel):
    """A variant's sweep table: the swept fields, every point, and the one published."""

    model_config = ConfigDict(frozen=True)

    fields: list[str]
    points: list[SweepPoint]
    published_point: str


def sweep_points(sweep: dict[str, tuple[int | float, ...]]) -> list[Point]:
    """Every combination of the swept values, the first field varying slowest; [{}] without a sweep."""
    fields = list(sweep)
    return [dict(zip(fields, values, strict=True)) for values in itertools.product(*sweep.values())]


def variant_points(variant: str, sweep: dict[str, tuple[int | float, ...]]) -> list[Point]:
    """The points that differ for `variant`: a layer size it does not read is left out (one-hot has
    no embedding), so the same training never runs twice under two names."""
    options = get_variant(variant).options
    kept = {field: values for field, values in sweep.items() if sweep_section(field) == "training" or field in options}
    return sweep_points(kept)


def training_jobs(
    variant: str, dataset: DatasetInfo, config: PipelineConfig, seeds: list[int], baseline_val_accuracy: float | None
) -> list[TrainingJob]:
    """One job per point of the sweep and seed (every point trains from the same seeds), in order."""
    jobs = []
    for point in variant_points(variant, config.sweep):
        model = config.model.model_copy(update={f: v for f, v in point.items() if sweep_section(f) == "model"})
        training = config.training.model_copy(update={f: v for f, v in point.items() if sweep_section(f) == "training"})
        jobs += [
            TrainingJob(
                variant=variant,
                dataset=dataset,
                model=model,
                training=training,
                seed=seed,
                baseline_val_accuracy=baseline_val_accuracy,
                point=point,
            )
            for seed in seeds
        ]
    return jobs


def training_count(config: PipelineConfig) -> int:
    """How many trainings `training_jobs` makes over every variant of `config`: known before the data."""
    return config.training.seeds * sum(len(variant_points(variant, config.sweep)) for variant in config.model.variants)


def point_label(point: Point) -> str:
    """`rnn_units=16 learning_rate=0.001`; empty without a sweep."""
    return " ".join(
        f"{field}={value if isinstance(value, int) else format(value, 'g')}" for field, value in point.items()
    )


def sweep_summary(jobs: list[TrainingJob], runs: list[TrainedVariant], published: TrainedVariant) -> SweepSummary:
    """A variant's sweep table: per point its values, its best val_loss over seeds with that
    training's val accuracy, every seed's val accuracy, and whether it holds the published training.

    `runs[i]` is the outcome of `jobs[i]`; `published` is one of `runs`.
    """
    rows: dict[str, dict] = {}
    for job, run in zip(jobs, runs, strict=True):
        row = rows.setdefault(point_label(job.point), {"point": job.point, "runs": [], "published": False})
        row["runs"].append(run)
        row["published"] = row["published"] or run is published
    table = []
    for label, row in rows.items():
        best = min(row["runs"], key=lambda run: run.best_val_loss)
        accuracies = [run.best_val_accuracy for run in row["runs"]]
        table.append(
            SweepPoint(
                point=label,
                values=row["point"],
                seeds=len(row["runs"]),
                best_val_loss=best.best_val_loss,
                val_accuracy=best.best_val_accuracy,
                mean_val_accuracy=statistics.fmean(accuracies),
                val_accuracies=accuracies,
                published=row["published"],
            )
        )
    published_label = next(row.point for row in table if row.published)
    return SweepSummary(fields=list(jobs[0].point), points=table, published_point=published_label)
