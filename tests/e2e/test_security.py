"""Security: tampered inputs never run code, credentials never reach any output, and the local
servers started by `make s3`, `make server` and `make dask` listen on loopback only."""

from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest

from flows.imdb_pipeline import STAGES, main
from tasks.storage import fs
from tests.helpers import (
    HTTP_TOKEN,
    HTTP_USER,
    PRIVATE_PATH,
    SERVER_START_SECONDS,
    assert_nothing_published,
    listening_addresses,
    objects_under,
    prefect_home,
    run_error_line,
    small_run_options,
    stage_states,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --- code hidden in inputs ------------------------------------------------------------------------


def _payloads(marker: Path) -> dict[str, tuple]:
    """Pickle reductions that create `marker` when unpickled, by different globals."""
    return {
        "os-system": (os.system, (f"touch {marker}",)),
        "builtins-exec": (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
    }


def write_malicious_npz(path: Path, marker: Path, payload: str) -> Path:
    reduction = _payloads(marker)[payload]

    class Exploit:
        def __reduce__(self):
            return reduction

    reviews = np.empty(2, dtype=object)
    reviews[:] = [Exploit(), [4, 5]]
    labels = np.array([0, 1])
    np.savez(path, x_train=reviews, y_train=labels, x_test=reviews, y_test=labels)
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("payload", ["os-system", "builtins-exec"])
def test_a_malicious_npz_fails_the_run_without_running_its_code(payload, prefect_harness, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = write_malicious_npz(tmp_path / "evil.npz", marker, payload)
    assert main(small_run_options(str(path), tmp_path)) == 1
    line = run_error_line(capsys.readouterr())
    assert str(path) in line and "refusing to unpickle" in line
    assert not marker.exists()
    assert_nothing_published(tmp_path / "store")

    np.load(path, allow_pickle=True)["x_train"]  # the same file, loaded the unsafe way, does run the code
    assert marker.exists()


def write_pickled_record(path: Path, marker: Path) -> None:
    """Replaces a cached result record with a real Prefect record whose pickled result creates
    `marker` when Prefect unpickles it: what a writer of the bucket's cache prefix could leave."""
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    reduction = _payloads(marker)["builtins-exec"]

    class Exploit:
        def __reduce__(self):
            return reduction

    metadata = ResultRecordMetadata(serializer=PickleSerializer(picklelib="pickle"), storage_key=str(path))
    path.write_bytes(ResultRecord(metadata=metadata, result=Exploit()).serialize())


CACHED_STAGES = ("download", "pad-and-store", "baseline", "train-embedding")


@pytest.mark.e2e
def test_a_cached_result_replaced_by_a_pickle_is_refused_and_its_stage_runs_again(
    prefect_harness, imdb_npz, tmp_path, capfd
):
    marker = tmp_path / "pwned"
    options = small_run_options(str(imdb_npz), tmp_path, "--variants", "embedding", "--max-epochs", "2")
    assert main(options) == 0
    records = [path for path in (tmp_path / "store" / "cache" / "prefect").rglob("*") if path.is_file()]
    assert len(records) >= len(CACHED_STAGES)
    for record in records:
        assert json.loads(record.read_bytes())["metadata"]["serializer"]["type"] == "imdb-json"
        write_pickled_record(record, marker)
    capfd.readouterr()

    assert main(options) == 0
    assert not marker.exists(), "a cached pickle ran its code"
    assert stage_states(CACHED_STAGES) == dict.fromkeys(CACHED_STAGES, "Completed")  # run again, not Cached
    assert "refused the cached result" in capfd.readouterr().err
    assert main(options) == 0
    assert stage_states(CACHED_STAGES) == dict.fromkeys(CACHED_STAGES, "Cached")  # good records written back
    assert not marker.exists()


# --- credentials ----------------------------------------------------------------------------------


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(path) for path in Path(folder).rglob("*") if path.is_file() and needle in path.read_bytes()]


def _all_logs(client, log_filter) -> list:
    logs, page = [], None
    while page is None or len(page) == 200:
        page = client.read_logs(log_filter, limit=200, offset=len(logs))
        logs += page
    return logs


def _flow_run_records(flow_run_id) -> dict[str, str]:
    """What the Prefect API keeps about one flow run, as JSON text per kind, once its logs are in."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        deadline, logs = time.monotonic() + 30, []
        while time.monotonic() < deadline:  # logs reach the API in batches, a moment after the run ends
            logs = _all_logs(client, LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if any(log.task_run_id is None and log.message.startswith("Finished in state") for log in logs):
                break
            time.sleep(1)
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        blocks = client.read_block_documents(include_secrets=True)
    last_stage = f"stage {len(STAGES)}/{len(STAGES)}"
    assert any(last_stage in log.message for log in logs), "the run's logs never reached the API"
    return {
        "parameters": json.dumps(flow_run.parameters, default=str),
        "flow run": flow_run.model_dump_json(),
        "task runs": json.dumps([run.model_dump(mode="json") for run in task_runs]),
        "logs": json.dumps([log.model_dump(mode="json") for log in logs]),
        "artifacts": json.dumps([artifact.model_dump(mode="json") for artifact in artifacts]),
        "blocks": json.dumps([block.model_dump(mode="json") for block in blocks]),
    }


@pytest.mark.e2e
def test_no_output_of_an_s3_run_holds_a_credential(prefect_harness, s3_server, s3_prefix, imdb_npz, tmp_path, capfd):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    secret, key_id = s3_server.secret_key, s3_server.access_key
    bucket, _, prefix = s3_prefix.removeprefix("s3://").partition("/")
    s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/mirror/imdb.npz", Body=imdb_npz.read_bytes())
    options = small_run_options(
        f"{s3_prefix}/mirror/imdb.npz", tmp_path, "--storage", s3_prefix, "--variants", "embedding", "--max-epochs", "1"
    )
    assert main(options) == 0
    output = capfd.readouterr()
    assert f"run: {s3_prefix}/runs/" in output.out
    for name, text in (("stdout", output.out), ("stderr", output.err)):
        assert secret not in text and key_id not in text, f"{name} shows a credential"

    objects = objects_under(s3_server.client(), s3_prefix)
    assert any(key.endswith("/manifest.json") for key in objects) and any(key.startswith("cache/") for key in objects)
    assert not [key for key, body in objects.items() if secret.encode() in body or key_id.encode() in body]
    assert not _files_containing(tmp_path, secret.encode()) and not _files_containing(tmp_path, key_id.encode())

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
    records = _flow_run_records(flow_run.id)
    assert json.loads(records["parameters"])["config"]["storage"]["root"] == s3_prefix
    cache_blocks = [
        block for block in json.loads(records["blocks"]) if str(block["data"].get("basepath", "")).startswith(s3_prefix)
    ]
    assert cache_blocks, "the flow saved no RemoteFileSystem block for its S3 cache"
    for name, text in records.items():
        assert secret not in text, f"the flow run's {name} hold the secret key"
        assert key_id not in text, f"the flow run's {name} hold the access key id"
    assert "X-Amz-" not in records["artifacts"], "an artifact holds a presigned URL"
    assert f"`{s3_prefix}/runs/" in records["artifacts"], "the run-files artifact shows no s3:// URI"

    # Everything the Prefect server and this process's Prefect home wrote to disk, events included.
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1]).parent
    assert list(database.glob("*.db"))
    for folder in (database, Path(os.environ["PREFECT_HOME"])):
        assert not _files_containing(folder, secret.encode()), f"{folder} holds the secret key"


@pytest.mark.e2e
def test_signed_links_are_given_only_when_asked_for_and_expire(s3_server, s3_prefix):
    import httpx

    from tasks.storage import fs

    uri = f"{s3_prefix}/runs/r/report.md"
    fs.write_bytes(uri, b"report")
    assert fs.shown_location(uri) == uri
    link = fs.shown_location(uri, presign_seconds=600)
    query = dict(parse_qsl(urlsplit(link).query))
    # SigV4 says how long it lasts (X-Amz-Expires), SigV2 (what s3fs signs here) until when (Expires).
    lifetime = int(query["X-Amz-Expires"]) if "X-Amz-Expires" in query else int(query["Expires"]) - time.time()
    assert link.startswith(("http://", "https://")) and 590 <= lifetime <= 600
    assert httpx.get(link, timeout=10).content == b"report"


def _secret_source(base: str) -> tuple[str, list[str]]:
    """A URL of the HTTP fixture's private imdb.npz with Basic auth, a signature and a token in its
    query, and the secrets in it (fresh ones: the Prefect database is shared by the session)."""
    signature, credential, token = (f"{kind}-{uuid.uuid4().hex}" for kind in ("sig", "cred", "qtok"))
    query = f"X-Amz-Signature={signature}&X-Amz-Credential={credential}&token={token}"
    host = base.removeprefix("http://")
    return f"http://{HTTP_USER}:{HTTP_TOKEN}@{host}{PRIVATE_PATH}imdb.npz?{query}", [
        HTTP_TOKEN,
        signature,
        credential,
        token,
    ]


@pytest.mark.e2e
def test_a_source_with_credentials_leaves_them_in_no_output(prefect_harness, http_server, tmp_path, capfd):
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    base, requests = http_server
    source, secrets = _secret_source(base)
    assert main(small_run_options(source, tmp_path, "--variants", "embedding", "--max-epochs", "1")) == 0
    assert any(secrets[1] in path for path in requests), "the download did not use the full URL"
    output = capfd.readouterr()
    assert "run: " in output.out and "imdb.npz from http://***@" in output.out

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
    records = _flow_run_records(flow_run.id)
    assert json.loads(records["parameters"])["config"]["data"]["source"] == fs.without_credentials(source)
    assert "source:imdb.npz" in flow_run.tags and flow_run.name.endswith("-imdb.npz-embedding")
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1]).parent
    for secret in secrets:
        for name, text in (("stdout", output.out), ("stderr", output.err), *records.items()):
            assert secret not in text, f"{name} holds {secret}"
        # storage root, cache and work dir are under tmp_path; the Prefect database keeps events too
        for folder in (tmp_path, database, Path(os.environ["PREFECT_HOME"])):
            assert not _files_containing(folder, secret.encode()), f"a file under {folder} holds {secret}"
            assert not [path for path in folder.rglob("*") if secret in str(path)], f"a name under {folder} holds it"


# --- local servers bind to loopback ---------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def process_tree(root: int) -> dict[int, str]:
    """`root` and all its descendants, each with its start time (so a reused pid is never mistaken)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, pending = {}, [root]
    while pending:
        pid = pending.pop()
        if (started := _start_time(pid)) is not None:
            tree[pid] = started
            pending.extend(children.get(pid, []))
    return tree


def start_make_target(arguments: list[str], log: Path) -> subprocess.Popen:
    """`make -s <arguments>` from the repo root, in its own session, its output in `log`."""
    environment = {**os.environ, "PREFECT_API_URL": ""}
    with log.open("wb") as output:
        # -o: never rebuild .venv here (no network); the target's own command is what is under test.
        return subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", *arguments],
            cwd=REPO_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def settled_listeners(process: subprocess.Popen, ready, log: Path) -> set[tuple[str, int]]:
    """Waits until `ready()`, then returns the listening sockets of the process tree once two reads
    a second apart agree (so listeners opened a little later are counted too)."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not ready():
        assert process.poll() is None, f"make exited early: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"not ready after {SERVER_START_SECONDS} s: {log.read_text()[-3000:]}"
        time.sleep(0.5)
    previous: set[tuple[str, int]] = set()
    for _ in range(20):
        current = listening_addresses(process_tree(process.pid))
        if current == previous:
            break
        previous = current
        time.sleep(1)
    return previous


def stop_tree(process: subprocess.Popen) -> None:
    """SIGTERM to make's process group (the servers shut down their own children), then SIGKILL to
    whatever of the tree is still running."""
    tree = process_tree(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_start_time(pid) == started for pid, started in tree.items()):
        time.sleep(0.2)
    for pid, started in tree.items():
        if _start_time(pid) == started:
            os.kill(pid, signal.SIGKILL)


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.e2e
def test_make_s3_make_server_and_make_dask_listen_on_loopback_only(tmp_path, migrated_prefect_database):
    from infra.local_s3 import free_port

    s3_port, server_port, dask_port = free_port(), free_port(), free_port()
    server_home = prefect_home(tmp_path, migrated_prefect_database)
    # target -> (make arguments, its main port, readiness check); both start at once to share the wait
    targets = {
        "s3": (
            ["s3", f"S3_PORT={s3_port}", f"S3_DATA_DIR={tmp_path / 's3data'}"],
            s3_port,
            lambda: b"S3 endpoint" in (tmp_path / "make-s3.log").read_bytes(),
        ),
        "server": (
            ["server", f"PREFECT_PORT={server_port}", f"PREFECT_HOME={server_home}"],
            server_port,
            lambda: _http_ok(f"http://127.0.0.1:{server_port}/api/health"),
        ),
        "dask": (
            ["dask", f"ARGS=--workers 2 --port {dask_port} --log-dir {tmp_path / 'dask'}"],
            dask_port,
            lambda: b"Dask scheduler tcp://127.0.0.1:" in (tmp_path / "make-dask.log").read_bytes(),
        ),
    }
    started: dict[str, subprocess.Popen] = {}
    try:
        for name, (arguments, _, _) in targets.items():
            started[name] = start_make_target(arguments, tmp_path / f"make-{name}.log")
        for name, (_, port, ready) in targets.items():
            listeners = settled_listeners(started[name], ready, tmp_path / f"make-{name}.log")
            assert ("127.0.0.1", port) in listeners, f"make {name}: {listeners}"
            assert {address for address, _ in listeners} == {"127.0.0.1"}, f"make {name}: {listeners}"
    finally:
        for process in started.values():
            stop_tree(process)
