"""A run's results: each variant's (its published training, every seed's outcome, the spread over seeds,
its sweep), the guard's verdict as a label, the flat records of table artifacts and the run's metrics.json."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from tasks.data.checks import DataCheckResult
from tasks.training.baseline import BaselineResult
from tasks.training.evaluation import ClassificationMetrics
from tasks.training.guard import is_stalled
from tasks.training.jobs import TrainedVariant, TrainingJob, pick_published
from tasks.training.sweeps import SweepSummary, point_label, sweep_summary

SEED_METRICS = ("accuracy", "loss", "roc_auc")
BASELINE_NAME = "baseline"  # its row in tables, and its key in metrics.json


class Spread(BaseModel):
    """A test metric over a variant's seeds: mean, standard deviation (population) and count."""

    model_config = ConfigDict(frozen=True)

    mean: float
    std: float
    count: int


class SeedResult(BaseModel):
    """One training of a variant (one seed, at one sweep point) and its test metrics."""

    model_config = ConfigDict(frozen=True)

    trained: TrainedVariant
    test: ClassificationMetrics
    point: str = ""  # the sweep point's label; empty without a sweep

    @property
    def first_seed(self) -> int:
        """The seed this training started from, before any restart."""
        return self.trained.attempts[0].seed


class VariantResult(BaseModel):
    """A variant's outcome: the published training (the lowest val_loss over its seeds and sweep
    points, never a test metric) with its test metrics, every training's, the spread of test metrics
    over seeds, and the sweep table when the variant was swept."""

    model_config = ConfigDict(frozen=True)

    published: TrainedVariant
    test: ClassificationMetrics
    seeds: list[SeedResult]
    across_seeds: dict[str, Spread]  # by test metric; a metric some seed lacks is left out
    sweep: SweepSummary | None = None

    def is_unfit(self, stall_margin: float) -> bool:
        """Under-trained or stalled in every training attempt, or at chance on the test set: a
        variant the gate never promotes."""
        return not self.published.healthy or is_stalled(self.test.accuracy, self.test.majority_rate, stall_margin)


class RunResults(BaseModel):
    """What a run's stages found: every variant's result, the baseline's, and the data checks'."""

    model_config = ConfigDict(frozen=True)

    variants: dict[str, VariantResult]
    baseline: BaselineResult
    data_checks: DataCheckResult | None = None

    @property
    def data_checks_json(self) -> dict | None:
        """The data checks as the run's data_checks.json holds them (what the report renders)."""
        return None if self.data_checks is None else self.data_checks.model_dump()


def variant_result(
    jobs: list[TrainingJob], runs: list[TrainedVariant], metrics: list[ClassificationMetrics]
) -> VariantResult:
    """A variant's result from its trainings (`runs[i]` trained `jobs[i]`, `metrics[i]` are its test
    metrics): the published one picked by val_loss, each labelled with its sweep point (points train
    from the same seeds), and the sweep table when the variant was swept."""
    published = pick_published(runs)
    seeds = [
        SeedResult(trained=trained, test=test, point=point_label(job.point))
        for job, trained, test in zip(jobs, runs, metrics, strict=True)
    ]
    return VariantResult(
        published=published,
        test=metrics[runs.index(published)],
        seeds=seeds,
        across_seeds=across_seeds(seeds),
        sweep=sweep_summary(jobs, runs, published) if any(job.point for job in jobs) else None,
    )


def across_seeds(seeds: list[SeedResult]) -> dict[str, Spread]:
    """Mean, std (population) and count of each test metric over seeds (metrics some seed lacks: none)."""
    summary = {}
    for key in SEED_METRICS:
        values = [value for seed in seeds if (value := seed.test.value(key)) is not None]
        if len(values) == len(seeds):
            summary[key] = Spread(mean=float(np.mean(values)), std=float(np.std(values)), count=len(values))
    return summary


def guard_label(trained: TrainedVariant) -> str:
    """What the training guard concluded: ok, ok after restarts, or why no attempt was healthy (and
    whether the last one ran out of epochs rather than stopping early)."""
    attempts = len(trained.attempts) or 1
    budget = "" if trained.stopped_early else ": out of epochs"  # ran all of --max-epochs
    for flag, label in ((trained.stalled, "STALLED"), (trained.under_trained, "UNDER-TRAINED")):
        if flag:
            return f"{label}{budget} ({attempts} attempt{'s' if attempts > 1 else ''})"
    restarts = attempts - 1
    return f"ok ({restarts} restart{'s' if restarts > 1 else ''})" if restarts else "ok"


def metrics_records(variants: dict[str, VariantResult], baseline: BaselineResult | None = None) -> list[dict]:
    """One flat record per variant, then the baseline's when there is one: the rows of the summary
    table and of the metrics table artifact (for dashboards)."""
    records = [
        {
            "variant": name,
            "parameters": result.published.parameters,
            "seed": result.published.seed,
            "epochs": result.published.epochs_run,
            "best_epoch": result.published.best_epoch,
            "guard": guard_label(result.published),
            "val_accuracy": result.published.best_val_accuracy,
            "test_loss": result.test.loss,
            "test_accuracy": result.test.accuracy,
            "test_roc_auc": result.test.roc_auc,
        }
        for name, result in variants.items()
    ]
    if baseline is not None:
        records.append(
            {
                "variant": BASELINE_NAME,
                "parameters": baseline.parameters,
                "seed": None,
                "epochs": None,
                "best_epoch": None,
                "guard": "bar",
                "val_accuracy": baseline.val.accuracy,
                "test_loss": baseline.test.loss,
                "test_accuracy": baseline.test.accuracy,
                "test_roc_auc": baseline.test.roc_auc,
            }
        )
    return records


def run_metrics(variants: dict[str, VariantResult], baseline: BaselineResult) -> dict[str, dict]:
    """metrics.json: per variant and for the baseline, the test metrics and the val accuracy (a
    variant's best epoch; the baseline's fit), and for variants the guard's verdict."""
    metrics = {
        name: {
            **result.test.model_dump(),
            "val_accuracy": result.published.best_val_accuracy,
            "guard": guard_label(result.published),
            "under_trained": result.published.under_trained,
            "stalled": result.published.stalled,
        }
        for name, result in variants.items()
    }
    metrics[BASELINE_NAME] = {
        **baseline.test.model_dump(),
        "val_accuracy": baseline.val.accuracy,
        "val_roc_auc": baseline.val.roc_auc,
        "description": baseline.description,
    }
    return metrics
