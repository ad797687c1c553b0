"""What the summaries say about the baseline and the guard, on hand-made results."""

from __future__ import annotations

import json

from tasks.config import PipelineConfig
from tasks.data.sources import ReviewFile, SourceInfo
from tasks.registry import publishing
from tasks.registry.gate import Decision
from tasks.reporting import model_card, report, results, tables
from tasks.reporting.results import RunResults, Spread, VariantResult
from tasks.training.baseline import BaselineResult
from tests.helpers import metrics_of, trained_variant, variant_result

BASELINE = BaselineResult(
    description="logistic regression on bag-of-words counts of the same ids",
    parameters=501,
    fit_seconds=1.0,
    val=metrics_of(0.79, roc_auc=0.88),
    test=metrics_of(0.80, 0.45, 0.885),
)


def variant(accuracy: float, **flags) -> VariantResult:
    return variant_result(accuracy, **flags)


def test_the_report_says_plainly_when_the_baseline_beats_the_rnns():
    verdict = report.baseline_verdict({"onehot": variant(0.78), "embedding": variant(0.77)}, BASELINE)
    assert verdict.startswith("**The baseline beats every RNN variant**")
    assert "0.8000 against onehot 0.7800, embedding 0.7700" in verdict
    verdict = report.baseline_verdict({"onehot": variant(0.81), "embedding": variant(0.77)}, BASELINE)
    assert verdict.startswith("**The baseline beats embedding**")
    verdict = report.baseline_verdict({"onehot": variant(0.81), "embedding": variant(0.8001)}, BASELINE)
    assert verdict.startswith("Every RNN variant beats the baseline")


def test_the_guard_column_names_the_verdict_and_the_attempts():
    assert results.guard_label(trained_variant(attempts=1)) == "ok"
    assert results.guard_label(trained_variant(attempts=2)) == "ok (1 restart)"
    assert results.guard_label(trained_variant(attempts=3)) == "ok (2 restarts)"
    early = {"stopped_early": True}
    assert results.guard_label(trained_variant(attempts=6, under_trained=True, **early)) == "UNDER-TRAINED (6 attempts)"
    assert results.guard_label(trained_variant(attempts=3, stalled=True, under_trained=True, **early)) == (
        "STALLED (3 attempts)"
    )
    # the last attempt ran every epoch: its budget, not a bad start, cut it
    assert results.guard_label(trained_variant(under_trained=True)) == "UNDER-TRAINED: out of epochs (1 attempt)"
    assert results.guard_label(trained_variant(attempts=2, stalled=True)) == "STALLED: out of epochs (2 attempts)"


def test_table_records_put_the_baseline_after_the_variants():
    result = variant_result(
        0.77, 0.5, roc_auc=0.85, parameters=8209, seed=42, epochs_run=30, best_epoch=27, best_val_accuracy=0.78
    )
    records = results.metrics_records({"embedding": result}, BASELINE)
    assert [record["variant"] for record in records] == ["embedding", "baseline"]
    assert records[1] == {
        "variant": "baseline",
        "parameters": 501,
        "seed": None,
        "epochs": None,
        "best_epoch": None,
        "guard": "bar",
        "val_accuracy": 0.79,
        "test_loss": 0.45,
        "test_accuracy": 0.80,
        "test_roc_auc": 0.885,
    }
    assert records[0]["guard"] == "ok" and records[0]["val_accuracy"] == 0.78


def test_the_summary_table_prints_those_records_with_the_spread_over_seeds():
    result = variant_result(0.77, 0.5, parameters=8209, seed=42, epochs_run=30, best_epoch=27, best_val_accuracy=0.78)
    result = result.model_copy(update={"across_seeds": {"accuracy": Spread(mean=0.765, std=0.005, count=2)}})
    assert tables.summary_rows({"embedding": result}, BASELINE) == [
        ("embedding", "8,209", "42", "30", "27", "ok", "0.7800", "0.5000", "0.7700", "n/a", "0.7650 ± 0.0050 (2)"),
        ("baseline", "501", "-", "-", "-", "bar", "0.7900", "0.4500", "0.8000", "0.8850", "n/a"),
    ]
    assert tables.summary_rows({"embedding": result})[-1][0] == "embedding"


def test_the_model_card_carries_data_warnings_and_drift_but_not_passed_checks():
    checks = {
        "checks": [
            {"check": "label balance", "level": "ok", "message": "fine"},
            {"check": "oov rate", "level": "warning", "message": "0.61 of ids are out of vocabulary"},
        ],
        "drift": {"drifted": ["length"], "max_drift": 0.1},
        "drift_reference": "the champion's data set k0",
    }
    assert model_card.data_caveats(checks) == [
        "- data check warning, oov rate: 0.61 of ids are out of vocabulary",
        "- drift against the champion's data set k0: length above 0.1 (see report.md)",
    ]
    assert model_card.data_caveats({**checks, "checks": checks["checks"][:1], "drift": None}) == []
    assert model_card.data_caveats(None) == []


def test_the_run_facts_make_metrics_json_the_report_the_model_card_and_the_manifest_details(tiny_dataset, tmp_path):
    source = SourceInfo(
        kind="offline",
        uri="offline://corpus",
        local_path=str(tmp_path / "corpus"),
        sha256="ab",
        description="offline corpus",
        fallback_reason="no network",
    )
    run = publishing.RunContext(
        run_id="r1", run_dir=tmp_path, config=PipelineConfig(seed=7), source=source, dataset=tiny_dataset
    )
    decision = Decision(promote=True, reason="embedding accuracy 0.7700; no champion yet", candidate="embedding")
    facts = report.RunFacts(
        run=run, results=RunResults(variants={"embedding": variant(0.77)}, baseline=BASELINE), decision=decision
    )
    report.write_run_files(facts)
    model_card.write_model_card(facts)
    assert sorted(json.loads((tmp_path / "metrics.json").read_text())) == ["baseline", "embedding"]
    text = (tmp_path / "report.md").read_text()
    assert (
        text.startswith("# IMDB SimpleRNN run r1\n") and "- fell back to the offline corpus because: no network" in text
    )
    assert f"- data set key: `{tiny_dataset.key}` at `{tiny_dataset.uri}`" in text and '"seed": 7' in text
    assert "Gate decision: promote this run (embedding accuracy 0.7700; no champion yet)." in text
    assert "- baseline: `[[40, 10], [12, 38]]`" in text and "below the baseline's 0.7900 (below 0.7600)" in text
    card = (tmp_path / "model_card.md").read_text()
    assert "Promoted: embedding accuracy 0.7700; no champion yet." in card and "the last 100 tokens" in card
    assert "**Metrics are not comparable with runs on the canonical data.**" in card
    details = publishing.run_details(run)
    assert details["config"]["seed"] == 7 and "local_path" not in details["source"]
    assert (details["dataset_key"], details["dataset_uri"]) == (tiny_dataset.key, tiny_dataset.uri)


def test_a_run_on_own_reviews_lists_its_window_snapshots_and_every_file_with_its_sha256(tiny_dataset, tmp_path):
    files = [
        ReviewFile(
            uri=f"s3://bucket/reviews/date=2026-12-0{day}/part-0.csv",
            sha256=f"{day}" * 64,
            snapshot=f"date=2026-12-0{day}",
        )
        for day in (1, 2)
    ]
    source = SourceInfo(
        kind="reviews",
        uri="s3://bucket/reviews/",
        local_path="s3://bucket/reviews/",
        sha256="cd" * 32,
        description="own reviews",
        files=files,
        snapshots=[file.snapshot for file in files],
    )
    config = PipelineConfig(data={"source": "s3://bucket/reviews/", "window": "last:2"})
    run = publishing.RunContext(run_id="r2", run_dir=tmp_path, config=config, source=source, dataset=tiny_dataset)
    decision = Decision(promote=False, reason="kept", candidate=None)
    facts = report.RunFacts(
        run=run, results=RunResults(variants={"embedding": variant(0.77)}, baseline=BASELINE), decision=decision
    )
    report.write_run_files(facts)
    text = (tmp_path / "report.md").read_text()
    assert "- window `last:2`: snapshots `date=2026-12-01`, `date=2026-12-02`" in text
    for file in files:
        assert f"| `{file.snapshot}` | `{file.uri}` | `{file.sha256}` |" in text
    assert publishing.run_details(run)["source"]["files"] == [file.model_dump() for file in files]
