"""A run's results: each variant's (its published seed, every seed's outcome, the spread over seeds),
the guard's verdict as a label, the flat records of table artifacts and the run's metrics.json."""

from __future__ import annotations

import numpy as np

SEED_METRICS = ("accuracy", "loss", "roc_auc")
BASELINE_NAME = "baseline"  # its row in tables, and its key in metrics.json


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


def metrics_records(variants: dict[str, dict], baseline: dict | None = None) -> list[dict]:
    """One flat record per variant, then the baseline's when there is one: the rows of the summary
    table and of the metrics table artifact (for dashboards)."""
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
