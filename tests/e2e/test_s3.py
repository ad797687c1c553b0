"""Publishing to a real S3 server (SeaweedFS on 127.0.0.1, started by the session fixture).

Everything published is checked through boto3, independently of the publishing code.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from flows.imdb_pipeline import main
from tasks.config import ChampionConfig, TrainingConfig
from tasks.data import store
from tasks.errors import ObjectExists, StorageError, WriteConflict
from tasks.registry import gate, publishing
from tasks.storage import fs, layout
from tasks.training import evaluation
from tests.helpers import objects_under, run_error_line, sha256, small_run_options, split_uri, variant_result
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def run_pipeline(storage_root: str, source: str, tmp_path: Path, *extra: str) -> dict:
    """Runs the CLI to `storage_root`; returns the published manifest (read back through boto3 by callers)."""
    options = small_run_options(source, tmp_path, "--storage", storage_root, *extra)
    assert main(options) == 0
    return {"options": options}


def last_run_uri(capsys) -> str:
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("run: ")
    return lines[-1].removeprefix("run: ")


def test_run_to_s3_publishes_verified_objects_and_a_usable_champion(s3_server, s3_prefix, imdb_npz, tmp_path, capsys):
    client = s3_server.client()
    bucket, prefix = split_uri(s3_prefix)
    client.put_object(Bucket=bucket, Key=f"{prefix}/mirror/imdb.npz", Body=imdb_npz.read_bytes())
    source = f"{s3_prefix}/mirror/imdb.npz"
    run_pipeline(s3_prefix, source, tmp_path, "--source-sha256", sha256(imdb_npz), "--presign-minutes", "5")
    run_uri = last_run_uri(capsys)
    assert run_uri.startswith(f"{s3_prefix}/runs/")

    published = objects_under(client, run_uri)
    manifest = json.loads(published.pop("manifest.json"))
    assert sorted(published) == sorted(entry["path"] for entry in manifest["files"])
    for entry in manifest["files"]:
        assert hashlib.sha256(published[entry["path"]]).hexdigest() == entry["sha256"]
        assert len(published[entry["path"]]) == entry["bytes"]
    data = objects_under(client, f"{s3_prefix}/data/{manifest['dataset_key']}")
    assert sorted(data) == ["data_checks.json", "profile.json", "test.parquet", "train.parquet", "val.parquet"]

    champion = json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/champion.json")["Body"].read())
    assert champion["run_uri"] == run_uri and champion["dataset_key"] == manifest["dataset_key"]
    assert (
        champion["manifest_sha256"]
        == hashlib.sha256(
            client.get_object(Bucket=bucket, Key=f"{split_uri(run_uri)[1]}/manifest.json")["Body"].read()
        ).hexdigest()
    )
    model = evaluation.load_model(champion["model_uri"])  # straight from S3
    token_ids, labels, _ = store.read_split(f"{s3_prefix}/data/{manifest['dataset_key']}/test.parquet")
    accuracy = float(np.mean((evaluation.score(model, token_ids) > 0.5) == labels))
    assert accuracy == pytest.approx(champion["metrics"]["accuracy"])

    secret = s3_server.secret_key.encode()
    everything = objects_under(client, s3_prefix)
    assert not [key for key, body in everything.items() if secret in body]
    assert_plot_images_are_presigned_urls(s3_server.endpoint, secret.decode(), 5 * 60)


def assert_plot_images_are_presigned_urls(endpoint: str, secret: str, seconds: int) -> None:
    """The links of the latest run's files artifact (a run with --presign-minutes) are presigned for
    at most `seconds`: its plots open as PNGs from S3, and no artifact carries the secret."""
    import re
    import time
    from urllib.parse import parse_qsl, urlsplit

    import httpx
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        latest = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[latest.id]))
        )
    files = next(artifact.data for artifact in artifacts if artifact.key == "imdb-run-files")
    links = re.findall(r"\]\((http[^)]+)\)", files)
    plots = [url for url in links if ".png?" in url]
    assert len(links) >= 9 and len(plots) == 7  # comparison, loss and accuracy of each variant, two data plots
    for url in links:
        assert url.startswith(endpoint) and secret not in url
        query = dict(parse_qsl(urlsplit(url).query))  # SigV4 says for how long, SigV2 (s3fs's) until when
        lifetime = int(query["X-Amz-Expires"]) if "X-Amz-Expires" in query else int(query["Expires"]) - time.time()
        assert 0 < lifetime <= seconds
    for url in plots:
        assert httpx.get(url, timeout=10).content.startswith(b"\x89PNG")
    assert not [artifact.key for artifact in artifacts if secret in str(artifact.data)]


def test_champion_is_replaced_only_by_a_better_run(s3_server, s3_prefix, imdb_npz, tmp_path, capsys):
    client = s3_server.client()
    bucket, prefix = split_uri(s3_prefix)

    def current_champion() -> dict:
        return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/champion.json")["Body"].read())

    run_pipeline(
        s3_prefix, str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1", "--learning-rate", "0.003"
    )
    first = last_run_uri(capsys)
    assert current_champion()["run_uri"] == first

    run_pipeline(s3_prefix, str(imdb_npz), tmp_path, "--variants", "onehot", "--max-epochs", "1")
    worse = last_run_uri(capsys)
    assert current_champion()["run_uri"] == first
    worse_report = objects_under(client, worse)["report.md"].decode()
    assert "keep the current champion" in worse_report and "does not beat" in worse_report

    run_pipeline(s3_prefix, str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "3")
    better = last_run_uri(capsys)
    assert current_champion()["run_uri"] == better
    assert (
        current_champion()["metrics"]["accuracy"]
        > json.loads(objects_under(client, first)["metrics.json"])["embedding"]["accuracy"]
    )


def test_verify_catches_an_object_changed_after_publishing(s3_server, s3_prefix, tmp_path, capsys):
    local = tmp_path / "run" / "embedding"
    local.mkdir(parents=True)
    (local / "metrics.json").write_text('{"accuracy": 0.8}')
    (local / "model.keras").write_bytes(b"weights")
    run_uri = layout.run_uri(s3_prefix, "r1")
    publishing.publish_run(local.parent, run_uri, {"run_id": "r1"})
    assert verify_main([run_uri]) == 0
    assert "ok: " in capsys.readouterr().out
    bucket, key = split_uri(run_uri)
    s3_server.client().put_object(Bucket=bucket, Key=f"{key}/embedding/metrics.json", Body=b"{}")
    assert verify_main([run_uri]) == 1
    err = capsys.readouterr().err
    assert "mismatch: embedding/metrics.json: sha256 differs from the manifest" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_publishing_into_an_existing_prefix_is_refused(s3_server, s3_prefix, tmp_path):
    local = tmp_path / "run"
    local.mkdir()
    (local / "a.txt").write_text("first")
    destination = layout.run_uri(s3_prefix, "r1")
    manifest = publishing.publish_run(local, destination, {"run_id": "r1"})
    assert publishing.verify_run(destination) == []
    # A retry of the same run with the same files finds its own manifest: done, nothing rewritten.
    assert publishing.publish_run(local, destination, {"run_id": "r1"}) == manifest
    (local / "a.txt").write_text("changed")
    with pytest.raises(StorageError, match="already exists; a run prefix is published once"):
        publishing.publish_run(local, destination, {"run_id": "r1"})
    with pytest.raises(StorageError, match="already exists; a run prefix is published once"):
        publishing.publish_run(local, destination, {"run_id": "r2"})
    with pytest.raises(ObjectExists, match="already exists"):
        fs.write_bytes(f"{destination}/a.txt", b"second", create_only=True)
    assert fs.read_bytes(f"{destination}/a.txt") == b"first"
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"first").hexdigest()


def test_champion_json_is_replaced_only_over_the_version_judged(s3_server, s3_prefix, tmp_path):
    """Two overlapping runs both pass the gate against no champion; S3's conditional PUT makes
    the second judge again instead of overwriting the first."""
    uri = fs.join(s3_prefix, "conditional.txt")
    fs.write_if_unchanged(uri, b"one", None)
    data, version = fs.read_versioned(uri)
    assert data == b"one" and version
    with pytest.raises(WriteConflict):
        fs.write_if_unchanged(uri, b"two", None)
    fs.write_if_unchanged(uri, b"two", version)
    with pytest.raises(WriteConflict):
        fs.write_if_unchanged(uri, b"three", version)
    bucket, key = split_uri(uri)
    assert s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read() == b"two"

    runs, config = {}, ChampionConfig()
    for run_id, accuracy in (("r1", 0.8), ("r2", 0.9)):
        local = tmp_path / run_id / "embedding"
        local.mkdir(parents=True)
        (local / "model.keras").write_bytes(run_id.encode())
        runs[run_id] = (
            publishing.publish_run(local.parent, layout.run_uri(s3_prefix, run_id), {"run_id": run_id}),
            {"embedding": variant_result(accuracy, 1 - accuracy)},
        )
    margin = TrainingConfig().stall_margin
    judged = {run_id: gate.judge(variants, "k1", s3_prefix, config, margin) for run_id, (_, variants) in runs.items()}
    assert all(decision.promote for decision in judged.values())
    for run_id, (_, variants) in runs.items():
        gate.promote(
            judged[run_id], layout.run_uri(s3_prefix, run_id), run_id, "k1", variants, s3_prefix, config, margin
        )
    assert gate.read_champion(s3_prefix)[0].run_id == "r2"
    decisions = {
        name.removesuffix(".json"): json.loads(body)
        for name, body in objects_under(s3_server.client(), f"{s3_prefix}/champion-decisions").items()
    }
    assert decisions["r1"]["promoted"] and decisions["r1"]["previous_champion"] is None
    assert decisions["r2"]["promoted"] and decisions["r2"]["previous_champion"]["run_id"] == "r1"
    assert "judged again" in decisions["r2"]["reason"]


@pytest.mark.parametrize("how", ["option", "AWS_ENDPOINT_URL_S3"])
def test_a_custom_endpoint_comes_from_the_option_or_the_s3_variable(
    how, s3_server, s3_prefix, imdb_npz, tmp_path, capsys, monkeypatch
):
    """Without AWS_ENDPOINT_URL, the run reaches the local server only through `--s3-endpoint-url`
    or AWS_ENDPOINT_URL_S3 (else it would talk to AWS, unreachable here)."""
    import s3fs

    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "set by this test")  # undone after it, as main() sets it too
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    extra = ["--variants", "embedding", "--max-epochs", "1"]
    if how == "option":
        extra += ["--s3-endpoint-url", s3_server.endpoint]
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()  # cached clients keep the endpoint they were made with
    try:
        run_pipeline(s3_prefix, str(imdb_npz), tmp_path, *extra)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    run_uri = last_run_uri(capsys)
    assert run_uri.startswith(f"{s3_prefix}/runs/")
    stored = objects_under(s3_server.client(), run_uri)  # through boto3, at the server's endpoint
    manifest = json.loads(stored["manifest.json"])
    assert {entry["path"] for entry in manifest["files"]} | {"manifest.json"} == set(stored)
    assert s3_server.endpoint not in stored["manifest.json"].decode()  # an SDK setting, not a parameter


class _ForgetfulS3Handler(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that stores every PUT, even one sent with If-None-Match: * over an existing
    object, as a server without conditional writes does; DeleteObjects answers that all went."""

    protocol_version = "HTTP/1.1"
    objects: ClassVar[dict[str, bytes]] = {}
    conditional_puts: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_PUT(self) -> None:
        body, key = self._body(), self.path.split("?")[0]
        if self.headers.get("If-None-Match") == "*":
            type(self).conditional_puts.append(key)
        type(self).objects[key] = body
        self._reply(200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def do_POST(self) -> None:  # DeleteObjects (?delete): the probe removing its object
        bucket = self.path.split("?")[0]
        for key in re.findall(rb"<Key>([^<]+)</Key>", self._body()):
            type(self).objects.pop(f"{bucket}/{key.decode()}", None)
        self._reply(200, b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>')


@pytest.fixture
def forgetful_s3(monkeypatch):
    """That endpoint on 127.0.0.1 for one test, as the storage's endpoint; yields its handler class."""
    import s3fs

    handler = type("Handler", (_ForgetfulS3Handler,), {"objects": {}, "conditional_puts": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_address[1]}")
    for name, value in {"AWS_ACCESS_KEY_ID": "forgetful", "AWS_SECRET_ACCESS_KEY": "forgetful"}.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # cached clients keep the endpoint they were made with
    yield handler
    s3fs.S3FileSystem.clear_instance_cache()
    server.shutdown()
    server.server_close()


def test_an_endpoint_that_ignores_if_none_match_stops_the_run_with_one_line(forgetful_s3, imdb_npz, tmp_path, capsys):
    root = "s3://forgetful/imdb"
    assert main(small_run_options(str(imdb_npz), tmp_path, "--storage", root)) == 1
    line = run_error_line(capsys.readouterr())
    assert line.startswith(f"error: storage {root} ignores conditional writes (If-None-Match)")
    probes = forgetful_s3.conditional_puts
    assert len(probes) == 2 and probes[0] == probes[1]  # the same probe twice, create-only both times
    assert forgetful_s3.objects == {}  # the probe removed its object
