"""Plain helpers and constants shared by the tests (fixtures and hooks live in conftest.py).

Import them as `from tests.helpers import ...` from any folder of tests/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
SERVER_START_SECONDS = 180  # a cold `prefect server start` on a small or busy machine is slow

# Small generated data: large enough for a learnable signal, small enough for seconds per test.
VOCABULARY = 60
TRAIN_REVIEWS = 240
TEST_REVIEWS = 120
SMALL_MIN_SPLIT_ROWS = 20  # the generated val split has 48 reviews, fewer than the default floor
TINY_MAXLEN = 20  # the padded length of the `tiny_dataset` fixture
# The `http_server` fixture serves its files under PRIVATE_PATH only to Basic auth of these.
PRIVATE_PATH = "/private/"
HTTP_USER = "reader"
HTTP_TOKEN = "tok-5e2f8a1c9d"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def small_run_options(source: str, tmp_path: Path, *extra: str) -> list[str]:
    """CLI options for a quick flow run on the generated data; `extra` may override any of them.

    The generated reviews are linearly separable, so the bag-of-words baseline scores about 1.0 and
    RNNs trained for 3 epochs are far below it: the guard is off here (`--baseline-margin 1`) and
    tested on its own, with its default margin. Its val split has 48 reviews, below the default
    `--min-split-rows`, so the floor is lowered too (and tested on its own).
    """
    return [
        "--source",
        source,
        "--storage",
        str(tmp_path / "store"),
        "--work-dir",
        str(tmp_path / "work"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-words",
        "50",
        "--maxlen",
        "20",
        "--max-epochs",
        "3",
        "--batch-size",
        "32",
        "--learning-rate",
        "0.01",
        "--seed",
        "3",
        "--baseline-margin",
        "1",
        "--min-split-rows",
        str(SMALL_MIN_SPLIT_ROWS),
        *extra,
    ]


def cli_error_line(captured) -> str:
    """The one `error:` line, last on stderr and without a traceback, of a command line that runs no
    flow (predict, champion, verify)."""
    lines = captured.err.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], captured.err[-3000:]
    assert "Traceback" not in captured.err, captured.err[-3000:]
    return errors[0]


def run_error_line(captured) -> str:
    """The one `error:` line a failed in-process run (`main()`, needs prefect_harness) ends its own
    stderr with, checked against what a user or a worker sees: the failed flow run's log, read back
    through the Prefect API, holds no traceback and names the same problem.

    (capsys sees only `main()`'s prints: Prefect's console handler writes to the stderr bound at
    import. `tests/e2e/test_config_cli.py` reads a real CLI process's output.)
    """
    error = cli_error_line(captured)
    log = latest_flow_run_log()
    assert "Traceback" not in log, log[-3000:]
    unquoted = log.replace("\\'", "'").replace('\\"', '"')  # Prefect logs failures as repr(state)
    assert error.removeprefix("error: ") in unquoted, log[-3000:]
    return error


def latest_flow_run_log(timeout: float = 30) -> str:
    """Every log line of the latest flow run (needs prefect_harness)."""
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        return flow_run_log(client, flow_run.id, timeout)


def flow_run_log(client, flow_run_id, timeout: float = 30) -> str:
    """Every log line of a flow run (its task runs' included), read through the Prefect API once its
    final `Finished in state` line has arrived (logs reach the server in batches)."""
    import time

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    deadline = time.monotonic() + timeout
    while True:
        logs: list = []
        while True:
            page = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
                limit=200,
                offset=len(logs),
            )
            logs += page
            if len(page) < 200:
                break
        if any(log.message.startswith("Finished in state") and log.task_run_id is None for log in logs):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return "\n".join(log.message for log in logs)


def assert_nothing_published(store: Path) -> None:
    assert not (store / "runs").exists()
    assert not (store / "champion.json").exists()


def keras_load_data(path, monkeypatch, num_words):
    """keras.datasets.imdb.load_data reading `path` instead of downloading."""
    import keras
    import keras.src.datasets.imdb as keras_imdb

    monkeypatch.setattr(keras_imdb, "get_file", lambda *args, **kwargs: str(path))
    return keras.datasets.imdb.load_data(num_words=num_words)


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def objects_under(client, uri: str) -> dict[str, bytes]:
    """Every object below `uri`, by key relative to it, read with boto3."""
    bucket, prefix = split_uri(uri)
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"].removeprefix(prefix + "/")] = body
    return found


def latest_task_runs() -> list:
    """The task runs of the latest flow run (needs prefect_harness)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        latest = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[latest.id])))


def stage_states(stages: tuple[str, ...]) -> dict[str, str]:
    """State names of the latest flow run's task runs, by stage name prefix."""
    task_runs = latest_task_runs()
    return {stage: next(run.state.name for run in task_runs if run.name.startswith(stage)) for stage in stages}


def make_raw_reviews(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Reviews as raw frequency ranks (1 = most frequent), like the canonical file stores them.

    Positive reviews use ranks 10-19 more often, negative ones 20-29, so a model can learn.
    """
    labels = rng.integers(0, 2, size=count)
    reviews = np.empty(count, dtype=object)
    for row, label in enumerate(labels):
        length = int(rng.integers(3, 40))
        common = rng.integers(1, VOCABULARY, size=length)
        signal = rng.integers(10, 20, size=length) if label else rng.integers(20, 30, size=length)
        reviews[row] = np.where(rng.random(length) < 0.5, signal, common).tolist()
    return reviews, labels.astype(np.int64)


def write_imdb_npz(path: Path, seed: int = 0, train: int = TRAIN_REVIEWS, test: int = TEST_REVIEWS) -> Path:
    rng = np.random.default_rng(seed)
    x_train, y_train = make_raw_reviews(train, rng)
    x_test, y_test = make_raw_reviews(test, rng)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def write_word_index(folder: Path) -> Path:
    """`imdb_word_index.json` for the generated reviews, beside their imdb.npz: rank r is the word `word<r>`."""
    path = Path(folder) / "imdb_word_index.json"
    path.write_text(json.dumps({f"word{rank}": rank for rank in range(1, VOCABULARY)}))
    return path


def review_texts(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Raw texts of fresh generated reviews in the words of `write_word_index`, with markup and capitals."""
    reviews, labels = make_raw_reviews(count, np.random.default_rng(seed))
    texts = [" ".join(f"Word{rank}" if i % 3 else f"word{rank}<br />" for i, rank in enumerate(row)) for row in reviews]
    return texts, labels


# Hand-made results, as the gate, the reports and the UI read them (tests/unit and tests/e2e).


def metrics_of(accuracy: float, loss: float = 0.5, roc_auc: float | None = None, majority: float = 0.5):
    """Test metrics as `classification_metrics` returns them, with these values (of 100 reviews)."""
    from tasks.training.evaluation import ClassificationMetrics

    return ClassificationMetrics(
        loss=loss,
        accuracy=accuracy,
        roc_auc=roc_auc,
        confusion_matrix=[[40, 10], [12, 38]],
        majority_rate=majority,
        examples=100,
    )


def trained_variant(seed: int = 3, attempts: int = 1, **fields):
    """A TrainedVariant as training returns it, after `attempts` attempts (this one last); `fields` override."""
    from tasks.training.jobs import Attempt, TrainedVariant

    values = {
        "variant": "embedding",
        "model_path": "m",
        "history_path": "h",
        "parameters": 1,
        "epochs_run": 3,
        "best_epoch": 2,
        "stopped_early": False,
        "train_seconds": 1.0,
        "trained_at": 0.0,
        "seed": seed,
        "best_val_loss": 0.5,
        "best_val_accuracy": 0.8,
        **fields,
    }
    attempt = Attempt(**{name: values.get(name, False) for name in Attempt.model_fields})
    return TrainedVariant(**values, attempts=[attempt] * attempts)


def variant_result(accuracy: float, loss: float = 0.5, majority: float = 0.5, roc_auc: float | None = None, **fields):
    """A variant's result with one training (`fields` override its TrainedVariant) and these test metrics."""
    from tasks.reporting.results import SeedResult, VariantResult, across_seeds

    trained, test = trained_variant(**fields), metrics_of(accuracy, loss, roc_auc, majority)
    seeds = [SeedResult(trained=trained, test=test)]
    return VariantResult(published=trained, test=test, seeds=seeds, across_seeds=across_seeds(seeds))


def champion_record(run_uri: str = "x", dataset_key: str = "k1", accuracy: float = 0.7, **fields) -> dict:
    """champion.json as the gate writes it, for a champion of `run_uri` (`fields` override)."""
    return {
        "run_id": run_uri.rsplit("/", 1)[-1],
        "run_uri": run_uri,
        "variant": "embedding",
        "model_uri": f"{run_uri}/embedding/model.keras",
        "vocabulary_uri": None,
        "vocabulary_sha256": None,
        "metric": "accuracy",
        "metrics": metrics_of(accuracy, roc_auc=accuracy).model_dump(),
        "dataset_key": dataset_key,
        "manifest_sha256": "0" * 64,
        "promoted_at": "2025-01-06T03:00:00+00:00",
        **fields,
    }


def copy_champion(store: Path, root: str) -> dict:
    """Copies the champion's run from a local store to another storage root (s3://...) with a
    champion.json pointing at the copy; returns that record."""
    from tasks.storage import fs

    champion = json.loads((Path(store) / "champion.json").read_text())
    run = Path(champion["run_uri"])
    filesystem, prefix = fs.filesystem(root)
    filesystem.put(str(run), f"{prefix}/runs/{run.name}", recursive=True)
    copy = f"{root}/runs/{run.name}"
    record = {**champion, "run_uri": copy, "model_uri": f"{copy}/{champion['variant']}/model.keras"}
    fs.write_json(f"{root}/champion.json", record)
    return record


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prefect_home(folder: Path, migrated_database: Path) -> Path:
    """`folder`/prefect-home, a new PREFECT_HOME whose server database is a copy of the migrated one
    (the `migrated_prefect_database` fixture): the server that starts there skips the migrations."""
    home = Path(folder) / "prefect-home"
    home.mkdir()
    shutil.copyfile(migrated_database, home / "prefect.db")
    return home


@contextmanager
def server_client(environment: dict):
    """A Prefect client talking to `prefect_server` (not to the session harness)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: environment["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        yield client


# Malformed imdb.npz files (tests/unit and tests/e2e test_bad_input.py).


def object_reviews(*rows: list) -> np.ndarray:
    """An object array of `rows`, as imdb.npz stores reviews."""
    array = np.empty(len(rows), dtype=object)
    array[:] = list(rows)
    return array


def write_npz(path: Path, **arrays: np.ndarray | None) -> Path:
    """A tiny valid imdb.npz (two reviews of raw ranks per split, labels 0 and 1) with `arrays`
    replacing its keys; None drops a key."""
    valid = {
        "x_train": object_reviews([4, 5, 6], [7, 8]),
        "y_train": np.array([0, 1]),
        "x_test": object_reviews([9, 4], [5]),
        "y_test": np.array([1, 0]),
    }
    np.savez(path, **{key: value for key, value in {**valid, **arrays}.items() if value is not None})
    return path


# name -> (arrays replacing the valid ones, words the error must contain)
BAD_NPZ = {
    "missing-keys": ({"x_test": None, "y_test": None}, "missing x_test, y_test"),
    "float-ids": ({"x_train": object_reviews([1.5, 2.0], [3.0])}, "must be integers, found float"),
    "float-id-matrix": ({"x_train": np.array([[1.0, 2.0], [3.0, 4.0]])}, "must be integers, found float64"),
    "string-ids": ({"x_train": object_reviews(["good", "film"], ["bad"])}, "must be integers, found str"),
    "digit-string-ids": ({"x_train": object_reviews(["5", "7"], ["9"])}, "must be integers, found str"),
    "bool-ids": ({"x_train": object_reviews([True, True], [True])}, "must be integers, found bool"),
    "ids-beyond-int64": ({"x_train": object_reviews([1, 2**70], [3])}, "must fit in 64-bit integers"),
    "negative-ids": ({"x_train": object_reviews([4, -5], [3])}, "must be >= 1"),
    "zero-ids": ({"x_test": object_reviews([0, 1], [3])}, "must be >= 1"),
    "rows-not-sequences": ({"x_train": np.array([4, 5])}, "must be sequences of word ids"),
    "single-value": ({"x_train": np.array(5)}, "is a single value"),
    "string-labels": ({"y_train": np.array(["pos", "neg"])}, "must be integers 0 or 1"),
    "float-labels": ({"y_test": np.array([1.0, 0.0])}, "must be integers 0 or 1"),
    "labels-outside-0-1": ({"y_train": np.array([0, 2])}, "must be integers 0 or 1"),
    "labels-2d": ({"y_train": np.array([[0], [1]])}, "must be integers 0 or 1"),
    "fewer-labels": ({"y_test": np.array([1])}, "2 reviews but 1 labels"),
    "empty-test-split": ({"x_test": object_reviews(), "y_test": np.zeros(0, dtype=int)}, "'x_test' is empty"),
}
# The subset also run end to end through the CLI (each costs a flow start).
BAD_NPZ_END_TO_END = [
    "missing-keys",
    "float-ids",
    "ids-beyond-int64",
    "negative-ids",
    "string-labels",
    "empty-test-split",
]


# Listening sockets of processes, from /proc (Linux).

LISTEN = "0A"  # the TCP state code /proc/net/tcp* use for a listening socket


def _address(field: str) -> tuple[str, int]:
    """An address of /proc/net/tcp*: hex words in host byte order, then the port."""
    import ipaddress

    host, port = field.split(":")
    raw = bytes.fromhex(host)
    if sys.byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def listening_addresses(pids) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held open by one of `pids`."""
    inodes = set()
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # the process has ended
            continue
        for descriptor in descriptors:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            except OSError:  # closed since the listing
                continue
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                found.add(_address(fields[1]))
    return found


def review_lists(reviews) -> list[list[int]]:
    """A Reviews' rows as plain lists, to compare with Keras' own output."""
    return [
        reviews.ids[start:end].tolist() for start, end in zip(reviews.offsets[:-1], reviews.offsets[1:], strict=True)
    ]


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """Calls `predicate` until it returns something true, which it returns; after `timeout` seconds,
    returns its last (false) answer for the caller's assertion to show."""
    import time

    deadline = time.monotonic() + timeout
    while not (answer := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer


def wait_for(predicate: Callable[[], T], timeout: float, message: str) -> T:
    """`wait_until`, failing the test with `message` when `predicate` never held."""
    answer = wait_until(predicate, timeout)
    assert answer, message
    return answer


def named_events(client, name: str, matches: Callable[[Any], bool], timeout: float = 30) -> list:
    """The events called `name` for which `matches(event)` holds, waited for through the API;
    events reach it a moment after they are emitted."""
    from prefect.events.filters import EventFilter, EventNameFilter

    def matching() -> list:
        page = client.read_events(filter=EventFilter(event=EventNameFilter(name=[name])), limit=50)
        return [event for event in page.events if matches(event)]

    return wait_until(matching, timeout, interval=0.5)


def drift_events(dataset_key: str, timeout: float = 30) -> list:
    """The `imdb-rnn-pipeline.data.drift` events about `dataset_key` (needs prefect_harness)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return named_events(
            client,
            "imdb-rnn-pipeline.data.drift",
            lambda event: event.payload.get("dataset_key") == dataset_key,
            timeout,
        )


def wait_for_text(process, log_path: Path, text: str, timeout: float = 300) -> None:
    """Waits until a pipeline process started with its output in `log_path` has logged `text`;
    fails when the process exits first or `timeout` seconds pass."""
    import time

    deadline = time.monotonic() + timeout
    while text not in log_path.read_text(errors="replace"):
        assert process.poll() is None, f"pipeline exited before {text!r}:\n{log_path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout:.0f} s"
        time.sleep(0.05)


def dask_trainings(log: str) -> dict[str, list[str]]:
    """Which Dask worker started each training, from a run's log: training label -> worker
    addresses, in order (a training started again after its worker died has two)."""
    import re

    started: dict[str, list[str]] = {}
    for label, worker in re.findall(r"^(.+): training on Dask worker (tcp://\S+)$", log, flags=re.MULTILINE):
        started.setdefault(label, []).append(worker)
    return started


def split_npz(path: Path, num_words: int, val_fraction: float, seed: int) -> dict:
    """An imdb.npz's train, val and test reviews in memory, split as the split stage splits them."""
    from tasks.data import corpus, split

    train_part, test = corpus.load_keras_npz(path, num_words)
    train, val = split.split_train_val(np.arange(len(train_part)), val_fraction, seed)
    return {"train": train_part.take(train), "val": train_part.take(val), "test": test}


def file_source(kind: str, path: Path) -> Any:
    """A resolved source of `kind` (offline or npz) for a local file, as the download stage gives it."""
    from tasks.data.sources import SourceInfo

    return SourceInfo(kind=kind, uri=str(path), local_path=str(path), sha256=sha256(Path(path)), description=kind)


def prepare_source(source: Any, root: Path, seed: int = 0, **data: Any) -> tuple[Any, Any]:
    """The split plan and the stored data set of a resolved source under `root`, as the stages make them."""
    from tasks.config import DataConfig
    from tasks.data import prepare

    config = DataConfig(cache_dir=str(root / "cache-datasets"), **data)
    plan = prepare.split_resolved(source, config, seed, str(root))
    return plan, prepare.store_splits(plan, source, config, seed, str(root))


def stored_rows(uri: str) -> list[list[int]]:
    """A stored split's rows with their front padding cut off."""
    from tasks.data.store import read_split

    tokens, _, _ = read_split(uri)
    return [[int(token) for token in row if token] for row in tokens]


def write_reviews_csv(path: Path, rows: list[tuple[str, int]], header: str = "text,label,source") -> Path:
    """A CSV of (text, label[, ...]) rows, quoted where a field needs it."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header.split(","))
        writer.writerows(rows)
    return path
