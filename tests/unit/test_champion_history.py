"""Champion history, rollback and pin on a local store of fake published runs."""

from __future__ import annotations

import json

import pytest

from tasks.config import ChampionConfig, TrainingConfig
from tasks.errors import PipelineError
from tasks.registry import admin, gate, history
from tasks.storage import fs, layout
from tests.unit.test_champion import publish_fake_run, result

AUTO, ALWAYS = ChampionConfig(), ChampionConfig(promote="always")
MARGIN = TrainingConfig().stall_margin


def promote_run(tmp_path, run_id: str, accuracy: float, config: ChampionConfig = AUTO) -> gate.Decision:
    store = str(tmp_path / "store")
    variants = {"embedding": result(accuracy)}
    uri = publish_fake_run(tmp_path, run_id)
    decision = gate.judge(variants, "k1", store, config, MARGIN)
    return gate.promote(decision, uri, run_id, "k1", variants, store, config, MARGIN)[0]


def current(tmp_path) -> str:
    return gate.read_champion(str(tmp_path / "store"))[0].run_id


def test_every_promotion_is_recorded_with_the_previous_champion_and_the_command(tmp_path):
    promote_run(tmp_path, "r1", 0.7)
    promote_run(tmp_path, "r2", 0.8)
    promote_run(tmp_path, "r3", 0.75)  # not better: no change, no entry
    changes = history.read_history(str(tmp_path / "store"))
    assert [(entry["action"], entry["run_id"]) for entry in changes] == [("promote", "r1"), ("promote", "r2")]
    assert changes[0]["previous"] is None and changes[1]["previous"]["run_id"] == "r1"
    assert "beats champion r1/embedding" in changes[1]["reason"] and changes[1]["command"]
    assert changes[1]["champion"] == json.loads((tmp_path / "store" / "champion.json").read_text())


def test_rollback_restores_the_previous_or_the_named_champion_and_is_recorded(tmp_path):
    store = str(tmp_path / "store")
    for run_id, accuracy in (("r1", 0.7), ("r2", 0.8), ("r3", 0.9)):
        promote_run(tmp_path, run_id, accuracy)
    assert admin.rollback(store).run_id == "r2" and current(tmp_path) == "r2"
    assert admin.rollback(store, "r1", command="make rollback RUN=r1").run_id == "r1"
    last = history.read_history(store)[-1]
    assert (last["action"], last["run_id"], last["previous"]["run_id"]) == ("rollback", "r1", "r2")
    assert (
        last["command"] == "make rollback RUN=r1" and last["reason"] == "rolled back from r2/embedding to r1/embedding"
    )
    assert gate.read_champion(store)[0].manifest_sha256 == history.read_history(store)[0]["champion"]["manifest_sha256"]


def test_rollback_refuses_a_run_that_no_longer_verifies_and_changes_nothing(tmp_path):
    store = str(tmp_path / "store")
    promote_run(tmp_path, "r1", 0.7)
    promote_run(tmp_path, "r2", 0.8)
    (tmp_path / "store" / "runs" / "r1" / "embedding" / "model.keras").write_bytes(b"tampered")
    before = (tmp_path / "store" / "champion.json").read_bytes()
    with pytest.raises(PipelineError, match="r1 does not verify, champion not changed"):
        admin.rollback(store)
    assert (tmp_path / "store" / "champion.json").read_bytes() == before
    assert len(history.read_history(store)) == 2


def test_rollback_needs_an_earlier_champion(tmp_path):
    store = str(tmp_path / "store")
    with pytest.raises(PipelineError, match="no earlier champion"):
        admin.rollback(store)
    promote_run(tmp_path, "r1", 0.7)
    with pytest.raises(PipelineError, match="no earlier champion"):
        admin.rollback(store)
    with pytest.raises(PipelineError, match="run r9 was never champion"):
        admin.rollback(store, "r9")


def test_a_pinned_champion_is_never_replaced_by_a_run_until_unpinned(tmp_path):
    store = str(tmp_path / "store")
    promote_run(tmp_path, "r1", 0.7)
    assert admin.set_pinned(store, True).pinned
    for run_id, config in (("r2", AUTO), ("r3", ALWAYS)):
        decision = promote_run(tmp_path, run_id, 0.9, config)
        assert not decision.promote and "is pinned: kept" in decision.reason
    assert current(tmp_path) == "r1"
    admin.set_pinned(store, False)
    assert promote_run(tmp_path, "r4", 0.9).promote and current(tmp_path) == "r4"
    actions = [entry["action"] for entry in history.read_history(store)]
    assert actions == ["promote", "pin", "unpin", "promote"]


def test_champion_json_keeps_the_fields_it_was_written_with(tmp_path):
    store = str(tmp_path / "store")
    promote_run(tmp_path, "r1", 0.7)
    written = json.loads((tmp_path / "store" / "champion.json").read_text())
    assert sorted(written) == [
        "dataset_key",
        "manifest_sha256",
        "metric",
        "metrics",
        "model_uri",
        "promoted_at",
        "run_id",
        "run_uri",
        "variant",
        "vocabulary_sha256",
        "vocabulary_uri",
    ]
    older = {key: value for key, value in written.items() if not key.startswith("vocabulary_")}
    fs.write_json(gate.champion_uri(store), older)  # a record from before vocabularies travelled with models
    admin.set_pinned(store, True)
    assert json.loads((tmp_path / "store" / "champion.json").read_text()) == {**older, "pinned": True}


def test_pinning_needs_a_champion(tmp_path):
    with pytest.raises(PipelineError, match="no champion under"):
        admin.set_pinned(str(tmp_path / "store"), True)


def test_a_manual_change_never_overwrites_a_concurrent_promotion(tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    promote_run(tmp_path, "r1", 0.7)
    promote_run(tmp_path, "r2", 0.8)
    read = gate.read_champion

    def stale_read(root):  # another run promotes between this command's read and its write
        record, version = read(root)
        fs.write_bytes(layout.champion_uri(root), fs.json_bytes({**record.to_json(), "run_id": "r9"}))
        return record, version

    monkeypatch.setattr(admin, "read_champion", stale_read)
    with pytest.raises(PipelineError, match="changed while this command ran"):
        admin.rollback(store)
    assert current(tmp_path) == "r9"


def test_the_command_line_shows_rolls_back_and_pins(tmp_path, capsys):
    from tools.champion import main

    store = str(tmp_path / "store")
    promote_run(tmp_path, "r1", 0.7)
    promote_run(tmp_path, "r2", 0.8)
    assert main(["--storage", store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("champion: r2/embedding, accuracy 0.8000, ") and out.count(" promote ") == 2
    assert main(["--storage", store, "--rollback"]) == 0
    assert capsys.readouterr().out.startswith("rolled back: champion is now r1/embedding\n")
    assert main(["--storage", store, "--pin"]) == 0
    assert "champion: r1/embedding (pinned)" in capsys.readouterr().out
    assert main(["--storage", store, "--rollback", "r7"]) == 1
    assert capsys.readouterr().err == "error: run r7 was never champion here: nothing to roll back to\n"
