"""Fault injection: each test causes a real fault (SIGKILL, a stopped S3 server, a corrupted file,
a tampered object, two runs at once, a full disk, a denied write) and checks that nothing is lost,
nothing half-done looks complete, and the champion never regresses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flows import imdb_pipeline
from flows.imdb_pipeline import main
from tasks.registry import publishing
from tasks.storage import fs, layout
from tests.helpers import latest_task_runs, run_error_line, sha256, small_run_options, stage_states, wait_for_text
from tools.verify import main as verify_main

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_STAGES = ("download", "split", "pad-and-store")


@pytest.fixture
def fast_publish_retries(monkeypatch):
    """The production number of publish retries, without waiting 35 s between them."""
    monkeypatch.setattr(imdb_pipeline, "publish", imdb_pipeline.publish.with_options(retry_delay_seconds=[0.5, 0.5]))


def harness_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def start_pipeline(options: list[str], log_path: Path) -> subprocess.Popen:
    """The CLI in its own process group, reporting to the session's Prefect server."""
    env = {**os.environ, "PREFECT_API_URL": harness_api_url()}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.imdb_pipeline", *options],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def complete_runs(root: str) -> list[str]:
    return [run["run_id"] for run in publishing.list_runs(root) if run["complete"]]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_run_killed_while_a_variant_trains_leaves_nothing_and_a_rerun_reuses_its_work(imdb_npz, tmp_path, capsys):
    store = tmp_path / "store"
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "onehot,embedding", "--max-epochs", "20", "--patience", "20"
    )
    # onehot trains (and is cached) in a run of its own first: the killed run reuses it and trains embedding.
    assert main([*options, "--variants", "onehot"]) == 0
    earlier_runs, champion_before = complete_runs(str(store)), (store / "champion.json").read_bytes()
    log_path = tmp_path / "killed.log"
    process = start_pipeline(options, log_path)
    try:
        wait_for_text(process, log_path, "embedding epoch 2/20", timeout=240)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log = log_path.read_text()
    assert "Task run 'train-onehot-seed-3' - Finished in state Cached" in log and "embedding epoch 20/20" not in log

    assert complete_runs(str(store)) == earlier_runs
    assert [run["run_id"] for run in publishing.list_runs(str(store))] == earlier_runs  # no half run either
    assert (store / "champion.json").read_bytes() == champion_before

    capsys.readouterr()
    assert main(options) == 0
    assert stage_states((*DATA_STAGES, "train-onehot", "train-embedding")) == {
        **dict.fromkeys(DATA_STAGES, "Cached"),
        "train-onehot": "Cached",
        "train-embedding": "Completed",
    }
    runs = complete_runs(str(store))
    assert len(runs) == len(earlier_runs) + 1 and publishing.verify_run(layout.run_uri(str(store), runs[-1])) == []


@pytest.fixture
def stoppable_s3(tmp_path, monkeypatch):
    """A SeaweedFS server of this test's own, which the test may stop and start again."""
    import s3fs

    from infra.local_s3 import start

    credentials = ("fault-access", f"fault-secret-{uuid.uuid4().hex}")
    server = start(tmp_path / "s3", "faults", *credentials)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    # botocore's default 5 attempts with backoff take ~10 s per call to a dead endpoint; 2 suffice here.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    s3fs.S3FileSystem.clear_instance_cache()  # cached clients would still talk to another server
    servers = [server]

    def restart():
        servers.append(
            start(server.data_dir, server.bucket, *credentials, s3_port=int(server.endpoint.rsplit(":", 1)[1]))
        )
        return servers[-1]

    yield server, restart
    for running in servers:
        running.stop()
    s3fs.S3FileSystem.clear_instance_cache()


def test_s3_stopped_while_publishing_fails_clearly_keeps_the_results_and_a_rerun_publishes(
    stoppable_s3, fast_publish_retries, imdb_npz, tmp_path, capsys, monkeypatch
):
    server, restart = stoppable_s3
    root = f"s3://{server.bucket}/pipeline"
    client = server.client()
    one_variant = ("--storage", root, "--variants", "embedding")
    assert main(small_run_options(str(imdb_npz), tmp_path, *one_variant, "--max-epochs", "1")) == 0
    champion_before = client.get_object(Bucket=server.bucket, Key="pipeline/champion.json")["Body"].read()
    earlier_runs = complete_runs(root)

    real_write, published = fs.write_verified, []

    def stop_server_after_two_files(uri: str, data: bytes, **options) -> str:
        if "/runs/" in uri:
            if len(published) == 2:
                server.stop()  # the real server goes away in the middle of publishing
            published.append(uri)
        return real_write(uri, data, **options)

    monkeypatch.setattr(fs, "write_verified", stop_server_after_two_files)
    options = small_run_options(str(imdb_npz), tmp_path, *one_variant, "--max-epochs", "2")
    capsys.readouterr()
    started = time.monotonic()
    assert main(options) == 1
    failed_after = time.monotonic() - started
    message = run_error_line(capsys.readouterr())
    assert message.startswith("error: cannot ") and f"{root}/runs/" in message
    assert "nothing was promoted" in message and "has no manifest" in message
    assert stage_states(("publish",)) == {"publish": "Failed"}
    publish_run = next(run for run in latest_task_runs() if run.name.startswith("publish"))
    assert publish_run.run_count == 3  # the first attempt and its two retries, then it gave up
    run_dir = Path(message.split("this run's files stay in ", 1)[1].split(",", 1)[0])
    assert (run_dir / "embedding" / "model.keras").is_file()  # nothing trained is lost
    assert (run_dir / "embedding" / "metrics.json").is_file()

    monkeypatch.setattr(fs, "write_verified", real_write)
    server = restart()
    client = server.client()
    assert client.get_object(Bucket=server.bucket, Key="pipeline/champion.json")["Body"].read() == champion_before
    interrupted = [run for run in publishing.list_runs(root) if not run["complete"]]
    assert len(interrupted) == 1 and complete_runs(root) == earlier_runs  # the half run is never a run
    assert verify_main(["--all", root]) == 1
    assert f"incomplete: {interrupted[0]['uri']}" in capsys.readouterr().err

    assert main(options) == 0
    assert stage_states(("train-embedding", "publish")) == {"train-embedding": "Cached", "publish": "Completed"}
    run_uri = last_line(capsys.readouterr().out).removeprefix("run: ")
    assert publishing.verify_run(run_uri) == []
    print(f"S3 outage: the run failed after {failed_after:.1f} s")


def test_a_publish_retried_after_a_partial_upload_keeps_the_objects_already_there(
    s3_server, s3_prefix, fast_publish_retries, imdb_npz, tmp_path, capsys, monkeypatch, caplog
):
    """The first publish attempt stops after two objects reached S3 (a storage error on the third);
    its retry keeps those two, as they are, and uploads only the rest."""
    from tasks.errors import StorageError
    from tests.helpers import split_uri

    client = s3_server.client()
    real_write, writes, kept = fs.write_verified, [], {}

    def fail_once_on_the_third_object(uri: str, data: bytes, **options) -> str:
        if "/runs/" in uri:
            writes.append(uri)
            if len(writes) == 3:
                for earlier in writes[:2]:
                    bucket, key = split_uri(earlier)
                    kept[earlier] = client.head_object(Bucket=bucket, Key=key)["LastModified"]
                raise StorageError(f"cannot write {uri} (connection reset by peer)")
        return real_write(uri, data, **options)

    monkeypatch.setattr(fs, "write_verified", fail_once_on_the_third_object)
    options = small_run_options(
        str(imdb_npz), tmp_path, "--storage", s3_prefix, "--variants", "embedding", "--max-epochs", "1"
    )
    with caplog.at_level("INFO", logger="tasks.registry.publishing"):
        assert main(options) == 0
    run_uri = last_line(capsys.readouterr().out).removeprefix("run: ")
    publish_run = next(run for run in latest_task_runs() if run.name.startswith("publish"))
    assert publish_run.run_count == 2  # the failed attempt and the retry that resumed
    assert publishing.verify_run(run_uri) == []
    first_two = [uri.removeprefix(run_uri + "/") for uri in writes[:2]]
    assert [
        line
        for line in caplog.text.splitlines()
        if "kept from an earlier attempt" in line and any(f" {path} (" in line for path in first_two)
    ], caplog.text[-3000:]
    assert writes[3:] and not set(writes[3:]) & set(writes[:2])  # the retry never wrote them again
    files = fs.read_json(fs.join(run_uri, "manifest.json"))["files"]
    assert len(writes) == len(files) + 2  # every file once, the third twice (failed, then retried), the manifest
    for uri, modified in kept.items():
        bucket, key = split_uri(uri)
        assert client.head_object(Bucket=bucket, Key=key)["LastModified"] == modified


def test_a_corrupted_cached_download_is_fetched_again_never_loaded(http_server, imdb_npz, tmp_path, capsys):
    base, requests = http_server
    options = small_run_options(f"{base}/imdb.npz", tmp_path, "--variants", "embedding", "--max-epochs", "1")
    assert main(options) == 0
    cached = next((tmp_path / "cache").glob("*-imdb.npz"))
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    requests.clear()
    capsys.readouterr()
    assert main(options) == 0
    assert requests == ["/imdb.npz"]
    assert sha256(cached) == sha256(imdb_npz)
    run_uri = last_line(capsys.readouterr().out).removeprefix("run: ")
    assert fs.read_json(fs.join(run_uri, "manifest.json"))["source"]["sha256"] == sha256(imdb_npz)


def test_a_champion_changed_after_publishing_is_refused_as_a_yardstick(imdb_npz, tmp_path, capsys):
    store = tmp_path / "store"
    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1")
    assert main(options) == 0
    champion_run = json.loads((store / "champion.json").read_text())["run_uri"]
    (Path(champion_run) / "embedding" / "model.keras").write_bytes(b"someone else's model")
    champion_before = (store / "champion.json").read_bytes()
    capsys.readouterr()

    assert verify_main([champion_run]) == 1
    assert "mismatch: embedding/model.keras: sha256 differs from the manifest" in capsys.readouterr().err
    assert main(options) == 0
    out = capsys.readouterr().out
    assert "fails verification (embedding/model.keras: sha256 differs from the manifest): refusing to compare" in out
    assert (store / "champion.json").read_bytes() == champion_before
    run_id = last_line(out).rsplit("/", 1)[1]
    decision = json.loads((store / "champion-decisions" / f"{run_id}.json").read_text())
    assert decision["promoted"] is False and "refusing to compare" in decision["reason"]

    assert main([*options, "--promote", "always"]) == 0  # replaces the champion that fails verification
    out = capsys.readouterr().out
    assert "champion: promoted (" in out and "refusing to compare; replaced (--promote always)" in out
    run_id = last_line(out).rsplit("/", 1)[1]
    replaced = json.loads((store / "champion.json").read_text())
    assert replaced["run_id"] == run_id and publishing.verify_run(replaced["run_uri"]) == []
    decision = json.loads((store / "champion-decisions" / f"{run_id}.json").read_text())
    assert decision["promoted"] is True and decision["previous_champion"]["run_id"] == champion_run.rsplit("/", 1)[1]


# Runs the CLI with `tasks.registry.gate.promote` held until every run named in the barrier folder has
# judged the champion: the runs then promote at once, each over the champion it judged.
PROMOTE_BARRIER = """
import runpy, sys, time
from pathlib import Path
from tasks.registry import gate
barrier, parties = Path(sys.argv[1]), int(sys.argv[2])
original = gate.promote

def promote_together(*args, **kwargs):
    (barrier / str(time.monotonic_ns())).touch()
    deadline = time.monotonic() + 240
    while len(list(barrier.iterdir())) < parties:
        assert time.monotonic() < deadline, "the other run never reached promotion"
        time.sleep(0.05)
    return original(*args, **kwargs)

gate.promote = promote_together
sys.argv = ["flows.imdb_pipeline", *sys.argv[3:]]
runpy.run_module("flows.imdb_pipeline", run_name="__main__")
"""


def test_two_runs_at_once_keep_their_own_objects_and_serialise_the_champion(imdb_npz, tmp_path):
    """Both runs judge "no champion yet", then promote at the same moment (held at a barrier in
    each process): one conditional write wins, the other run sees the conflict and judges again."""
    store, barrier = tmp_path / "store", tmp_path / "barrier"
    barrier.mkdir()
    options = small_run_options(
        str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "2", "--promote", "always"
    )
    logs = [tmp_path / f"run-{number}.log" for number in (1, 2)]
    env = {**os.environ, "PREFECT_API_URL": harness_api_url()}
    processes = []
    for log_path in logs:
        with log_path.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", PROMOTE_BARRIER, str(barrier), "2", *options],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
    try:
        codes = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert len(list(barrier.iterdir())) == 2

    run_ids = [last_line(log.read_text()).rsplit("/", 1)[1] for log in logs]
    assert len(set(run_ids)) == 2 and sorted(complete_runs(str(store))) == sorted(run_ids)
    for run_id in run_ids:
        assert publishing.verify_run(layout.run_uri(str(store), run_id)) == []
        assert fs.read_json(fs.join(layout.run_uri(str(store), run_id), "manifest.json"))["run_id"] == run_id
    decisions = {
        run_id: json.loads((store / "champion-decisions" / f"{run_id}.json").read_text()) for run_id in run_ids
    }
    assert all(decision["promoted"] for decision in decisions.values())
    # Serialised: the champion is the run that lost the race, judged again and replaced the
    # winner; with a lost update both would claim to have replaced nothing.
    holder = json.loads((store / "champion.json").read_text())["run_id"]
    other = next(run_id for run_id in run_ids if run_id != holder)
    assert decisions[other]["previous_champion"] is None and "judged again" not in decisions[other]["reason"]
    assert decisions[holder]["previous_champion"]["run_id"] == other
    assert "(judged again: another run promoted while this one published)" in decisions[holder]["reason"]
    assert "champion.json changed since the gate read it" in logs[run_ids.index(holder)].read_text()


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB filesystem (tmpfs) at `tmp_path/full`: writes past it fail with ENOSPC."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_while_publishing_is_a_clear_error_and_leaves_nothing_that_looks_complete(
    tiny_filesystem, fast_publish_retries, imdb_npz, tmp_path, capsys
):
    store = tmp_path / "store"
    (store / "runs").parent.mkdir(parents=True)
    (store / "runs").symlink_to(tiny_filesystem)  # data and caches fit; the run's files do not
    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "1")
    assert main(options) == 1
    message = run_error_line(capsys.readouterr())
    assert message.startswith(f"error: cannot write {store}/runs/") and "No space left on device" in message
    runs = publishing.list_runs(str(store))
    assert len(runs) == 1 and not runs[0]["complete"]
    leftovers = [path.name for path in tiny_filesystem.rglob("*") if ".tmp-" in path.name]
    assert leftovers == []  # no half-written file under its final name, no temporary either
    assert not (store / "champion.json").exists()


def test_a_denied_write_to_s3_is_a_clear_error_naming_the_storage(tmp_path, imdb_npz, capsys, monkeypatch):
    import s3fs

    from infra.local_s3 import start

    identities = tmp_path / "identities.json"
    admin, reader = ("admin-key", f"admin-{uuid.uuid4().hex}"), ("reader-key", f"reader-{uuid.uuid4().hex}")
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
                        "actions": ["Admin", "Read", "List", "Write", "Tagging"],
                    },
                    {
                        "name": "reader",
                        "credentials": [{"accessKey": reader[0], "secretKey": reader[1]}],
                        "actions": ["Read", "List"],
                    },
                ]
            }
        )
    )
    server = start(tmp_path / "s3", "readonly", *admin, identities=identities)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader[1])
        s3fs.S3FileSystem.clear_instance_cache()
        root = f"s3://{server.bucket}/pipeline"
        assert main(small_run_options(str(imdb_npz), tmp_path, "--storage", root)) == 1
        message = run_error_line(capsys.readouterr())
        assert message.startswith(f"error: storage {root} is not writable") and "Access Denied" in message
        assert server.client().list_objects_v2(Bucket=server.bucket).get("KeyCount", 0) == 0
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
