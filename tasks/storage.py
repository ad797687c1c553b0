"""One storage layer for every read and write, keyed by URI (`/path`, `file://`, `s3://`), on fsspec.

A reader never sees half an object: local files are written under a temporary name and moved (or
hard-linked, for create-only writes) into place; an S3 PUT is atomic by itself, and create-only
writes use a conditional PUT (If-None-Match). S3 credentials and endpoint come from the standard
AWS chain (environment, profile, instance role; AWS_ENDPOINT_URL for MinIO, SeaweedFS, Ceph...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from tasks.errors import ObjectExists, StorageError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for steady progress
# Listings cached by s3fs go stale when another process writes (verify, champion); always ask S3.
FILESYSTEM_OPTIONS = {"s3": {"use_listings_cache": False}}


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving `uri` and the path within it."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    try:
        return url_to_fs(uri, **FILESYSTEM_OPTIONS.get(scheme, {}))
    except (ImportError, ValueError) as error:
        raise StorageError(f"{uri}: unsupported storage ({error})") from None


def is_local(uri: str) -> bool:
    return isinstance(filesystem(uri)[0], LocalFileSystem)


def join(root: str, *parts: str) -> str:
    """`root/part/...` for paths and URIs alike."""
    return "/".join([root.rstrip("/"), *(part.strip("/") for part in parts)])


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time plus a random suffix (two runs may start together)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def sha256_of(uri: str) -> str:
    """Hex sha256 of a stored object, streamed."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    try:
        with fs.open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        raise StorageError(f"{uri} does not exist") from None
    return digest.hexdigest()


def exists(uri: str) -> bool:
    """True for an object, or for a folder/prefix holding at least one object."""
    fs, path = filesystem(uri)
    try:
        return fs.exists(path)
    except OSError as error:
        raise StorageError(f"cannot reach {uri} ({error.__class__.__name__}: {error})") from None


def ensure_writable(root: str) -> None:
    """Creates `root` if needed and proves an object can be written there, else StorageError."""
    fs, path = filesystem(root)
    probe = f"{path.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
    try:
        if isinstance(fs, LocalFileSystem):  # on S3, makedirs would create a missing bucket
            fs.makedirs(path, exist_ok=True)
        fs.pipe_file(probe, b"ok")
        fs.rm(probe)
    except (OSError, PermissionError, ValueError) as error:
        raise StorageError(f"storage {root} is not writable ({error.__class__.__name__}: {error})") from None


def write_bytes(uri: str, data: bytes, *, create_only: bool = False) -> None:
    """Writes `data` at `uri` whole or not at all; `create_only` refuses an existing object."""
    fs, path = filesystem(uri)
    try:
        if isinstance(fs, LocalFileSystem):
            _write_local(path, data, create_only, uri)
        else:
            _write_remote(fs, path, data, create_only, uri)
    except OSError as error:
        raise StorageError(f"cannot write {uri} ({error.__class__.__name__}: {error})") from None


def _write_local(path: str, data: bytes, create_only: bool, uri: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        if not create_only:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)  # atomic, and fails if `path` exists
        except FileExistsError:
            raise ObjectExists(f"{uri} already exists; published objects are never overwritten") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _write_remote(fs: fsspec.AbstractFileSystem, path: str, data: bytes, create_only: bool, uri: str) -> None:
    try:
        fs.pipe_file(path, data, mode="create" if create_only else "overwrite")
    except OSError as error:
        # s3fs reports a failed If-None-Match as FileExistsError, or (older) as OSError(EINVAL, "pre-conditions...")
        if create_only and (isinstance(error, FileExistsError) or "pre-condition" in str(error).lower()):
            raise ObjectExists(f"{uri} already exists; published objects are never overwritten") from None
        raise


def write_verified(uri: str, data: bytes, *, create_only: bool = False) -> str:
    """`write_bytes`, then reads the object back and checks its sha256; returns that sha256."""
    expected = hashlib.sha256(data).hexdigest()
    write_bytes(uri, data, create_only=create_only)
    stored = sha256_of(uri)
    if stored != expected:
        raise StorageError(f"{uri}: stored sha256 {stored} differs from the uploaded {expected}")
    return expected


def write_json(uri: str, payload: Any, *, create_only: bool = False) -> str:
    """Writes `payload` as JSON (verified); returns the sha256 of the bytes written."""
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    return write_verified(uri, data, create_only=create_only)


def browsable_url(uri: str, expires_seconds: int = 7 * 24 * 3600) -> str:
    """A URL a person can open: a presigned https URL for S3, a file:// URL for local files."""
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        return f"file://{path}"
    try:
        return fs.sign(path, expiration=expires_seconds)
    except NotImplementedError:
        return uri


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise StorageError(f"{uri} does not exist") from None


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))
