"""Sweeps: points from the config, one job per point and seed, the sweep table and which point is
published (by val_loss, never by a test metric), in the report and as a plot."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tasks.config import PipelineConfig
from tasks.reporting import plots, report, results, tables
from tasks.storage import cache_keys
from tasks.training import sweeps
from tasks.training.jobs import TrainedVariant, pick_published
from tests.helpers import metrics_of, trained_variant, variant_result


def trained(seed: int, val_loss: float, val_accuracy: float, **flags) -> TrainedVariant:
    return trained_variant(seed, best_val_loss=val_loss, best_val_accuracy=val_accuracy, **flags)


def test_points_are_every_combination_the_first_field_slowest():
    config = PipelineConfig(sweep=["rnn_units=8,16", "learning_rate=1e-4,1e-3"])
    assert sweeps.sweep_points(config.sweep) == [
        {"rnn_units": 8, "learning_rate": 1e-4},
        {"rnn_units": 8, "learning_rate": 1e-3},
        {"rnn_units": 16, "learning_rate": 1e-4},
        {"rnn_units": 16, "learning_rate": 1e-3},
    ]
    assert sweeps.sweep_points({}) == [{}]


def test_a_deployment_gives_the_sweep_as_json_and_gets_the_same_config():
    config = PipelineConfig.model_validate({"sweep": {"rnn_units": [8, 16], "learning_rate": [0.001]}})
    assert config.sweep == {"rnn_units": (8, 16), "learning_rate": (0.001,)}
    assert PipelineConfig.model_validate(config.model_dump(mode="json")) == config
    with pytest.raises(ValidationError, match="'variants' cannot be swept"):
        PipelineConfig.model_validate({"sweep": {"variants": ["onehot"]}})


def test_a_layer_size_a_variant_does_not_read_adds_no_point_to_it():
    sweep = PipelineConfig(sweep=["embedding_dim=8,32", "learning_rate=1e-4,1e-3"]).sweep
    assert sweeps.variant_points("onehot", sweep) == [{"learning_rate": 1e-4}, {"learning_rate": 1e-3}]
    assert len(sweeps.variant_points("embedding", sweep)) == 4


def test_each_point_and_seed_is_one_job_with_its_own_cache_key(tiny_dataset):
    config = PipelineConfig(sweep=["rnn_units=4,8", "learning_rate=1e-3,1e-2"])
    jobs = sweeps.training_jobs("embedding", tiny_dataset, config, [3, 5], 0.9)
    assert [(job.point["rnn_units"], job.point["learning_rate"], job.seed) for job in jobs] == [
        (4, 1e-3, 3),
        (4, 1e-3, 5),
        (4, 1e-2, 3),
        (4, 1e-2, 5),
        (8, 1e-3, 3),
        (8, 1e-3, 5),
        (8, 1e-2, 3),
        (8, 1e-2, 5),
    ]
    assert all(job.model.rnn_units == job.point["rnn_units"] for job in jobs)
    assert all(job.training.learning_rate == job.point["learning_rate"] for job in jobs)
    assert all(job.model.embedding_dim == config.model.embedding_dim for job in jobs)  # not swept: unchanged
    keys = {
        cache_keys.training_key(tiny_dataset.key, job.variant, job.model, job.training, job.seed, 0.9) for job in jobs
    }
    assert len(keys) == len(jobs)
    unswept = sweeps.training_jobs("embedding", tiny_dataset, PipelineConfig(), [3], 0.9)
    assert [(job.point, job.model, job.training) for job in unswept] == [({}, config.model, config.training)]


def test_the_published_point_has_the_lowest_val_loss_whatever_its_accuracy(tiny_dataset):
    config = PipelineConfig(sweep=["rnn_units=4,8"])
    jobs = sweeps.training_jobs("embedding", tiny_dataset, config, [3, 5], None)
    # rnn_units=4 has the best val accuracy (0.95) and mean, rnn_units=8 the lowest val_loss (0.30).
    runs = [trained(3, 0.40, 0.95), trained(5, 0.45, 0.94), trained(3, 0.30, 0.90), trained(5, 0.50, 0.80)]
    published = pick_published(runs)
    summary = sweeps.sweep_summary(jobs, runs, published)
    assert published is runs[2]
    assert summary.published_point == "rnn_units=8"
    assert [(row.point, row.best_val_loss, row.val_accuracy, row.published) for row in summary.points] == [
        ("rnn_units=4", 0.40, 0.95, False),
        ("rnn_units=8", 0.30, 0.90, True),
    ]
    assert summary.points[1].mean_val_accuracy == pytest.approx(0.85)
    assert summary.points[1].val_accuracies == [0.90, 0.80]


def test_an_unhealthy_point_is_not_published_over_a_healthy_one(tiny_dataset):
    jobs = sweeps.training_jobs("embedding", tiny_dataset, PipelineConfig(sweep=["rnn_units=4,8"]), [3], None)
    runs = [trained(3, 0.20, 0.55, stalled=True), trained(3, 0.35, 0.85)]
    summary = sweeps.sweep_summary(jobs, runs, pick_published(runs))
    assert summary.published_point == "rnn_units=8"


def test_the_report_names_the_published_point_and_shows_the_table(tiny_dataset, tmp_path):
    jobs = sweeps.training_jobs("embedding", tiny_dataset, PipelineConfig(sweep=["rnn_units=4,8"]), [3], None)
    runs = [trained(3, 0.40, 0.95), trained(3, 0.30, 0.90)]
    variants = {"embedding": results.variant_result(jobs, runs, [metrics_of(0.9)] * 2), "onehot": variant_result(0.8)}
    text = "\n\n".join(report.sweep_blocks(variants))
    assert "- embedding: rnn_units=8" in text
    assert "| embedding | rnn_units=8 | 1 | 0.3000 | 0.9000 | 0.9000 | yes |" in text
    assert "| embedding | rnn_units=4 | 1 | 0.4000 | 0.9500 | 0.9500 |  |" in text
    assert "![sweep](sweep.png)" in text and "sweep plot" in report.published_files(variants)
    assert report.sweep_blocks({"embedding": variant_result(0.8)}) == []
    assert "sweep plot" not in report.published_files({"embedding": variant_result(0.8)})
    png = plots.plot_sweep({"embedding": variants["embedding"].sweep}, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_seed_table_tells_the_points_of_one_seed_apart(tiny_dataset):
    jobs = sweeps.training_jobs("embedding", tiny_dataset, PipelineConfig(sweep=["rnn_units=4,8"]), [3], None)
    runs = [trained(3, 0.40, 0.95), trained(3, 0.30, 0.90)]
    metrics = [metrics_of(0.9, loss=0.3, roc_auc=0.95)] * 2
    result = results.variant_result(jobs, runs, metrics)
    rows = tables.seed_rows({"embedding": result})
    assert [(row[1], row[-1]) for row in rows] == [("3 rnn_units=4", ""), ("3 rnn_units=8", "yes")]
    assert result.sweep is not None and result.sweep.published_point == "rnn_units=8"
