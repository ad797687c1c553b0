"""The champion gate's rules, and champion.json on local storage."""

from __future__ import annotations

import json
import re

import pytest

from tasks.config import ChampionConfig, TrainingConfig
from tasks.errors import StorageError, WriteConflict
from tasks.registry import gate, publishing
from tasks.registry.records import ChampionRecord, verify_champion
from tasks.reporting.results import VariantResult
from tasks.storage import fs, layout
from tests.helpers import champion_record, variant_result


def result(accuracy: float, loss: float = 0.5, majority: float = 0.5, **flags) -> VariantResult:
    return variant_result(accuracy, loss, majority, roc_auc=accuracy, **flags)


def holder(accuracy: float, key: str = "k1") -> ChampionRecord:
    return ChampionRecord.model_validate(champion_record("runs/old", key, accuracy))


AUTO = ChampionConfig()
MARGIN = TrainingConfig().stall_margin


def test_candidate_is_the_best_variant_that_did_not_stall():
    variants = {"onehot": result(0.80, loss=0.45), "embedding": result(0.78, loss=0.40), "stuck": result(0.515)}
    assert gate.pick_candidate(variants, "accuracy", MARGIN) == "onehot"
    assert gate.pick_candidate(variants, "loss", MARGIN) == "embedding"  # lower is better
    assert gate.pick_candidate({"stuck": result(0.515)}, "accuracy", MARGIN) is None
    assert result(0.62, majority=0.61).is_unfit(MARGIN)
    assert not result(0.53, majority=0.5).is_unfit(MARGIN)


def test_the_gate_reads_the_stall_margin_it_is_given():
    variants = {"embedding": result(0.53)}
    assert gate.pick_candidate(variants, "accuracy", 0.02) == "embedding"
    assert gate.pick_candidate(variants, "accuracy", 0.05) is None
    assert not gate.decide(variants, "k1", None, [], AUTO, 0.05).promote


@pytest.mark.parametrize(
    "variants, current, mode, promote, comparable, reason",
    [
        ({"a": result(0.7)}, None, "auto", True, None, "no champion yet"),
        ({"a": result(0.8)}, holder(0.7), "auto", True, True, "beats champion old/embedding (0.7000)"),
        ({"a": result(0.7)}, holder(0.7), "auto", False, True, "does not beat"),
        ({"a": result(0.6)}, holder(0.7), "auto", False, True, "does not beat"),
        ({"a": result(0.6)}, holder(0.7), "always", True, True, "replaced anyway (--promote always)"),
        ({"a": result(0.9)}, holder(0.7, key="k2"), "auto", False, False, "not comparable; kept"),
        ({"a": result(0.6)}, holder(0.7, key="k2"), "always", True, False, "not comparable; replaced"),
        ({"a": result(0.9)}, None, "never", False, None, "promotion disabled (--promote never)"),
        ({"a": result(0.51)}, None, "always", False, None, "every variant is under-trained"),
        ({"a": result(0.8, under_trained=True)}, None, "always", False, None, "every variant is under-trained"),
        (
            {"a": result(0.9, under_trained=True), "b": result(0.7)},
            holder(0.6),
            "auto",
            True,
            True,
            "b accuracy 0.7000 beats",
        ),
    ],
)
def test_gate_rules(variants, current, mode, promote, comparable, reason):
    decision = gate.decide(variants, "k1", current, [], ChampionConfig(promote=mode), MARGIN)
    assert (decision.promote, decision.comparable) == (promote, comparable)
    assert reason in decision.reason


def test_gate_refuses_to_compare_with_a_champion_that_fails_verification():
    decision = gate.decide({"a": result(0.9)}, "k1", holder(0.7), ["model.keras: missing"], AUTO, MARGIN)
    assert not decision.promote
    assert "fails verification (model.keras: missing): refusing to compare" in decision.reason


def publish_fake_run(root, run_id: str) -> str:
    local = root / "local" / run_id / "embedding"
    local.mkdir(parents=True)
    (local / "model.keras").write_bytes(run_id.encode())
    destination = layout.run_uri(str(root / "store"), run_id)
    publishing.publish_run(local.parent, destination, {"run_id": run_id})
    return destination


def test_one_check_tells_whether_a_champion_is_still_what_was_promoted(tmp_path):
    run = publish_fake_run(tmp_path, "r1")
    record = ChampionRecord.model_validate(champion_record(run, manifest_sha256=publishing.manifest_sha256(run)))
    assert verify_champion(record) == [] == verify_champion(record, whole_run=False)
    (tmp_path / "store" / "runs" / "r1" / "embedding" / "model.keras").write_bytes(b"tampered")
    assert verify_champion(record) == ["embedding/model.keras: sha256 differs from the manifest"]
    assert verify_champion(record, whole_run=False) == []  # scoring checks the files it reads on its own
    republished = record.model_copy(update={"manifest_sha256": "0" * 64})
    assert verify_champion(republished, whole_run=False) == ["its manifest is not the one it was promoted with"]


def test_promotion_writes_champion_json_for_a_verified_run(tmp_path):
    store = str(tmp_path / "store")
    variants = {"embedding": result(0.8)}
    first = publish_fake_run(tmp_path, "r1")
    decision = gate.judge(variants, "k1", store, AUTO, MARGIN)
    final, record = gate.promote(decision, first, "r1", "k1", variants, store, AUTO, MARGIN)
    assert final.promote
    assert record is not None and json.loads((tmp_path / "store" / "champion.json").read_text()) == record.to_json()
    assert record.model_uri == f"{first}/embedding/model.keras"
    assert record.manifest_sha256 == publishing.manifest_sha256(first)

    second = publish_fake_run(tmp_path, "r2")
    worse = gate.judge({"embedding": result(0.7)}, "k1", store, AUTO, MARGIN)
    assert gate.promote(worse, second, "r2", "k1", variants, store, AUTO, MARGIN)[1] is None
    assert gate.read_champion(store)[0].run_id == "r1"
    assert [decision_of(store, run)["promoted"] for run in ("r1", "r2")] == [True, False]

    (tmp_path / "store" / "runs" / "r1" / "embedding" / "model.keras").write_bytes(b"tampered")
    after_tamper = gate.judge({"embedding": result(0.95)}, "k1", store, AUTO, MARGIN)
    assert not after_tamper.promote and "fails verification" in after_tamper.reason


def decision_of(store: str, run_id: str) -> dict:
    return fs.read_json(layout.decision_uri(store, run_id))


def test_a_run_that_does_not_verify_is_never_made_champion(tmp_path):
    store = str(tmp_path / "store")
    run = publish_fake_run(tmp_path, "r1")
    (tmp_path / "store" / "runs" / "r1" / "manifest.json").unlink()
    decision = gate.decide({"embedding": result(0.8)}, "k1", None, [], AUTO, MARGIN)
    with pytest.raises(StorageError, match="does not verify, champion not replaced"):
        gate.promote(decision, run, "r1", "k1", {"embedding": result(0.8)}, store, AUTO, MARGIN)
    assert gate.read_champion(store) == (None, None)


@pytest.mark.parametrize("second_accuracy, second_wins", [(0.9, True), (0.7, False)])
def test_a_promotion_racing_another_is_judged_again_never_lost(tmp_path, second_accuracy, second_wins):
    """Both runs pass the gate against the same (empty) champion before either promotes."""
    store = str(tmp_path / "store")
    first_run, second_run = publish_fake_run(tmp_path, "r1"), publish_fake_run(tmp_path, "r2")
    first_variants, second_variants = {"embedding": result(0.8)}, {"embedding": result(second_accuracy)}
    first = gate.judge(first_variants, "k1", store, AUTO, MARGIN)
    second = gate.judge(second_variants, "k1", store, AUTO, MARGIN)
    assert first.promote and second.promote and first.champion_version is None

    assert gate.promote(first, first_run, "r1", "k1", first_variants, store, AUTO, MARGIN)[1].run_id == "r1"
    final, record = gate.promote(second, second_run, "r2", "k1", second_variants, store, AUTO, MARGIN)

    assert "judged again" in final.reason
    assert final.champion.run_id == "r1"  # the loser compared itself with the winner, not with nothing
    assert gate.read_champion(store)[0].run_id == ("r2" if second_wins else "r1")
    assert (record is not None) == second_wins
    recorded = decision_of(store, "r2")
    assert recorded["promoted"] == second_wins and recorded["previous_champion"]["run_id"] == "r1"
    assert recorded["reason"] == final.reason


def test_a_champion_json_that_is_not_a_champion_record_is_refused(tmp_path):
    store = str(tmp_path / "store")
    fs.write_json(gate.champion_uri(store), {"run_id": "r1", "run_uri": "x"})
    with pytest.raises(
        StorageError, match=re.escape("champion.json is not a champion record: variant: Field required")
    ):
        gate.read_champion(store)


def test_a_conditional_write_refuses_a_stale_version(tmp_path):
    uri = str(tmp_path / "champion.json")
    assert fs.read_versioned(uri) == (None, None)
    fs.write_if_unchanged(uri, b"one", None)
    data, version = fs.read_versioned(uri)
    assert data == b"one"
    with pytest.raises(WriteConflict):
        fs.write_if_unchanged(uri, b"two", None)  # expected no object, found one
    fs.write_if_unchanged(uri, b"two", version)
    with pytest.raises(WriteConflict):
        fs.write_if_unchanged(uri, b"three", version)  # `version` is stale now
    assert fs.read_bytes(uri) == b"two"
