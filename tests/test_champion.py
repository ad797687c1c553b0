"""The champion gate's rules, and champion.json on local storage."""

from __future__ import annotations

import json

import pytest

from tasks import champion, publishing
from tasks.config import ChampionConfig
from tasks.errors import StorageError


def result(accuracy: float, loss: float = 0.5, majority: float = 0.5) -> dict:
    return {"test": {"accuracy": accuracy, "loss": loss, "roc_auc": accuracy, "majority_rate": majority}}


def holder(accuracy: float, key: str = "k1") -> dict:
    return {"run_id": "old", "variant": "embedding", "run_uri": "x", "dataset_key": key,
            "metrics": result(accuracy)["test"]}


AUTO = ChampionConfig()


def test_candidate_is_the_best_variant_that_did_not_stall():
    variants = {"onehot": result(0.80, loss=0.45), "embedding": result(0.78, loss=0.40), "stuck": result(0.515)}
    assert champion.pick_candidate(variants, "accuracy") == "onehot"
    assert champion.pick_candidate(variants, "loss") == "embedding"  # lower is better
    assert champion.pick_candidate({"stuck": result(0.515)}, "accuracy") is None
    assert champion.is_stalled(result(0.62, majority=0.61)["test"])
    assert not champion.is_stalled(result(0.53, majority=0.5)["test"])


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
        ({"a": result(0.51)}, None, "always", False, None, "every variant stalled"),
    ],
)
def test_gate_rules(variants, current, mode, promote, comparable, reason):
    decision = champion.decide(variants, "k1", current, [], ChampionConfig(promote=mode))
    assert (decision.promote, decision.comparable) == (promote, comparable)
    assert reason in decision.reason


def test_gate_refuses_to_compare_with_a_champion_that_fails_verification():
    decision = champion.decide({"a": result(0.9)}, "k1", holder(0.7), ["model.keras: missing"], AUTO)
    assert not decision.promote
    assert "fails verification (model.keras: missing): refusing to compare" in decision.reason


def publish_fake_run(root, run_id: str) -> str:
    local = root / "local" / run_id / "embedding"
    local.mkdir(parents=True)
    (local / "model.keras").write_bytes(run_id.encode())
    destination = publishing.run_uri(str(root / "store"), run_id)
    publishing.publish_run(local.parent, destination, {"run_id": run_id})
    return destination


def test_promotion_writes_champion_json_for_a_verified_run(tmp_path):
    store = str(tmp_path / "store")
    variants = {"embedding": result(0.8)}
    first = publish_fake_run(tmp_path, "r1")
    decision = champion.judge(variants, "k1", store, AUTO)
    record = champion.promote(decision, first, "r1", "k1", variants, store, "accuracy")
    assert json.loads((tmp_path / "store" / "champion.json").read_text()) == record
    assert record["model_uri"] == f"{first}/embedding/model.keras"
    assert record["manifest_sha256"] == publishing.manifest_sha256(first)

    second = publish_fake_run(tmp_path, "r2")
    worse = champion.judge({"embedding": result(0.7)}, "k1", store, AUTO)
    assert champion.promote(worse, second, "r2", "k1", variants, store, "accuracy") is None
    assert champion.read_champion(store)["run_id"] == "r1"

    (tmp_path / "store" / "runs" / "r1" / "embedding" / "model.keras").write_bytes(b"tampered")
    after_tamper = champion.judge({"embedding": result(0.95)}, "k1", store, AUTO)
    assert not after_tamper.promote and "fails verification" in after_tamper.reason


def test_a_run_that_does_not_verify_is_never_made_champion(tmp_path):
    store = str(tmp_path / "store")
    run = publish_fake_run(tmp_path, "r1")
    (tmp_path / "store" / "runs" / "r1" / "manifest.json").unlink()
    decision = champion.decide({"embedding": result(0.8)}, "k1", None, [], AUTO)
    with pytest.raises(StorageError, match="does not verify, champion not replaced"):
        champion.promote(decision, run, "r1", "k1", {"embedding": result(0.8)}, store, "accuracy")
    assert champion.read_champion(store) is None
