"""What the summaries say about the baseline and the guard, on hand-made results."""

from __future__ import annotations

from tasks.reporting import model_card, report, results, tables
from tasks.reporting.results import Spread, VariantResult
from tasks.training.baseline import BaselineResult
from tests.helpers import metrics_of, trained_variant, variant_result

BASELINE = BaselineResult(description="logistic regression on bag-of-words counts of the same ids", parameters=501,
                          fit_seconds=1.0, val=metrics_of(0.79, roc_auc=0.88), test=metrics_of(0.80, 0.45, 0.885))


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
    assert results.guard_label(trained_variant(attempts=6, under_trained=True)) == "UNDER-TRAINED (6 attempts)"
    assert results.guard_label(trained_variant(attempts=3, stalled=True, under_trained=True)) == "STALLED (3 attempts)"


def test_table_records_put_the_baseline_after_the_variants():
    result = variant_result(0.77, 0.5, roc_auc=0.85, parameters=8209, seed=42, epochs_run=30, best_epoch=27,
                            best_val_accuracy=0.78)
    records = results.metrics_records({"embedding": result}, BASELINE)
    assert [record["variant"] for record in records] == ["embedding", "baseline"]
    assert records[1] == {"variant": "baseline", "parameters": 501, "seed": None, "epochs": None, "best_epoch": None,
                          "guard": "bar", "val_accuracy": 0.79, "test_loss": 0.45, "test_accuracy": 0.80,
                          "test_roc_auc": 0.885}
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
