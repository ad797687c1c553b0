"""One storage layer for every read and write, keyed by URI (`/path`, `file://`, `s3://`), on fsspec.

Writes go to a temporary name first and are moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from tasks.errors import StorageError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for steady progress


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving `uri` and the path within it."""
    try:
        return url_to_fs(uri)
    except (ImportError, ValueError) as error:
        raise StorageError(f"{uri}: unsupported storage ({error})") from None


def join(root: str, *parts: str) -> str:
    """`root/part/...` for paths and URIs alike."""
    return "/".join([root.rstrip("/"), *(part.strip("/") for part in parts)])


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time plus a random suffix (two runs may start together)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def sha256_of(uri: str) -> str:
    """Hex sha256 of a file, streamed."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def ensure_writable(root: str) -> None:
    """Creates `root` if needed and proves a file can be written there, else StorageError."""
    fs, path = filesystem(root)
    probe = f"{path.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
    try:
        fs.makedirs(path, exist_ok=True)
        with fs.open(probe, "wb") as handle:
            handle.write(b"ok")
        fs.rm(probe)
    except (OSError, PermissionError, ValueError) as error:
        raise StorageError(f"storage {root} is not writable ({error.__class__.__name__}: {error})") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Writes `data` at `uri` through a temporary name, so the final name is whole or absent."""
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fs.makedirs(parent, exist_ok=True)
        with fs.open(temporary, "wb") as handle:
            handle.write(data)
        fs.mv(temporary, path)
    except OSError as error:
        _remove_quietly(fs, temporary)
        raise StorageError(f"cannot write {uri} ({error.__class__.__name__}: {error})") from None


def write_json(uri: str, payload: Any) -> None:
    write_bytes(uri, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise StorageError(f"{uri} does not exist") from None


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def upload_file(local_path: Path, uri: str) -> None:
    write_bytes(uri, Path(local_path).read_bytes())


def _remove_quietly(fs: fsspec.AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except OSError:
        log.warning("could not remove temporary file %s", path)
