"""One storage layer for every read and write, keyed by URI (`/path`, `file://`, `s3://`), on fsspec.

A reader never sees half an object: local files are written under a temporary name and moved (or
hard-linked, for create-only writes) into place; an S3 PUT is atomic by itself, and create-only
writes use a conditional PUT (If-None-Match). S3 credentials and endpoint come from the standard
AWS chain (environment, profile, instance role; AWS_ENDPOINT_URL for MinIO, SeaweedFS, Ceph...).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from tasks.errors import ObjectExists, StorageError, WriteConflict

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # 1 MiB: large enough for throughput, small enough for steady progress
# Listings cached by s3fs go stale when another process writes (verify, champion); always ask S3.
FILESYSTEM_OPTIONS = {"s3": {"use_listings_cache": False}}


@functools.cache
def _failure_types() -> tuple[type[BaseException], ...]:
    """What a storage call raises when the storage, not our code, fails: OSError, and botocore's
    own errors (no credentials, endpoint unreachable), which s3fs passes through unwrapped."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError)


@contextmanager
def _reported(action: str, uri: str) -> Iterator[None]:
    """Turns a storage failure into a StorageError naming the action and the URI."""
    try:
        yield
    except StorageError:
        raise
    except _failure_types() as error:
        if isinstance(error, FileNotFoundError) and action == "read":
            raise StorageError(f"{uri} does not exist") from None
        raise StorageError(f"cannot {action} {uri} ({error.__class__.__name__}: {error})") from None


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving `uri` and the path within it."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    try:
        return url_to_fs(uri, **FILESYSTEM_OPTIONS.get(scheme, {}))
    except (ImportError, ValueError) as error:
        raise StorageError(f"{uri}: unsupported storage ({error})") from None


def use_s3_endpoint(endpoint_url: str | None) -> None:
    """Routes s3:// through a custom endpoint, the way the AWS SDK's own setting does."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint_url


def is_local(uri: str) -> bool:
    return isinstance(filesystem(uri)[0], LocalFileSystem)


def join(root: str, *parts: str) -> str:
    """`root/part/...` for paths and URIs alike."""
    return "/".join([root.rstrip("/"), *(part.strip("/") for part in parts)])


# What replaces userinfo and every query value in a URI that is shown or stored.
REDACTED = "***"


def without_credentials(uri: str) -> str:
    """`uri` as it may be shown or stored anywhere (logs, UI, manifests, Prefect parameters): its
    user and password, every query value and any fragment replaced by `***`, query names kept so
    that a reader still sees a signed URL for what it is. Every value goes, not only names known to
    carry credentials: a token hides behind any name (`?sig=`, `?k=`, `?X-Amz-Signature=`). Plain
    paths are returned unchanged; applied twice, it changes nothing more."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    _, at, host = parts.netloc.rpartition("@")
    netloc = f"{REDACTED}@{host}" if at else host
    query = "&".join(
        f"{part.partition('=')[0]}={REDACTED}" if "=" in part else REDACTED for part in parts.query.split("&") if part
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, REDACTED if parts.fragment else ""))


# Query names that carry a credential, or change with every signature (X-Amz-Date, X-Goog-Expires):
# what a URI's identity leaves out, so a re-signed URL is still the same file.
SIGNING_QUERY_NAME = re.compile(r"sig|token|key|secret|pass|pwd|auth|credential|session|^x-amz-|^x-goog-", re.I)


def cache_identity(uri: str) -> str:
    """What tells two downloads apart, without any credential: `uri` without its user and password
    and without the query parameters that sign it; the other query parameters stay, values and all,
    so `?id=1` and `?id=2` are different files. Only ever hashed, never shown."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(
        part for part in parts.query.split("&") if part and not SIGNING_QUERY_NAME.search(part.partition("=")[0])
    )
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def carries_credentials(uri: str) -> bool:
    """Whether `uri` holds anything `without_credentials` would hide."""
    return without_credentials(uri) != uri


# Full URIs whose credentials a command line hid before they became a flow's parameters, by their
# hidden form: only this process's memory holds them, for the download that needs them.
_HIDDEN_URIS: dict[str, str] = {}


def hide_credentials(uri: str) -> str:
    """`without_credentials(uri)`, remembering `uri` itself in this process for `with_credentials`."""
    shown = without_credentials(uri)
    if shown != uri:
        _HIDDEN_URIS[shown] = uri
    return shown


def with_credentials(shown: str) -> str | None:
    """The full URI `hide_credentials` hid behind `shown` in this process, else None."""
    return _HIDDEN_URIS.get(shown)


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time plus a random suffix (two runs may start together)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def sha256_of(uri: str) -> str:
    """Hex sha256 of a stored object, streamed."""
    fs, path = filesystem(uri)
    digest = hashlib.sha256()
    with _reported("read", uri), fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def exists(uri: str) -> bool:
    """True for an object, or for a folder/prefix holding at least one object."""
    fs, path = filesystem(uri)
    with _reported("reach", uri):
        return fs.exists(path)


def list_folders(uri: str) -> list[str]:
    """Names of the folders (prefixes) directly under `uri`, sorted; empty when there is none."""
    fs, path = filesystem(uri)
    with _reported("list", uri):
        if not fs.exists(path):
            return []
        return sorted(
            entry["name"].rstrip("/").rsplit("/", 1)[-1]
            for entry in fs.ls(path, detail=True)
            if entry["type"] == "directory"
        )


def list_files(uri: str) -> list[str] | None:
    """URIs of the objects directly under the folder/prefix `uri`, sorted by name; None when `uri`
    is no folder (a single object, or nothing at all)."""
    fs, path = filesystem(uri)
    with _reported("list", uri):
        if not fs.isdir(path):
            return None
        names = [entry["name"].rsplit("/", 1)[-1] for entry in fs.ls(path, detail=True) if entry["type"] == "file"]
    return [join(uri, name) for name in sorted(names)]


@contextmanager
def open_read(uri: str, compression: str | None = None) -> Iterator[IO[bytes]]:
    """A binary file object reading `uri` (decompressed when `compression` is given, e.g. "gzip")."""
    fs, path = filesystem(uri)
    with _reported("read", uri), fs.open(path, "rb", compression=compression) as handle:
        yield handle


def ensure_writable(root: str) -> None:
    """Creates `root` if needed and proves an object can be written there, else StorageError.

    On S3 it also proves the endpoint honours conditional writes (If-None-Match): publishing is
    create-only, and an endpoint that overwrites anyway would let one run replace another's files.
    The probe object is removed after (so the root needs DeleteObject as well as PutObject).
    """
    fs, path = filesystem(root)
    probe = f"{path.rstrip('/')}/.write-probe-{uuid.uuid4().hex}"
    try:
        if isinstance(fs, LocalFileSystem):  # on S3, makedirs would create a missing bucket
            fs.makedirs(path, exist_ok=True)
            fs.pipe_file(probe, b"ok")
        else:
            fs.pipe_file(probe, b"ok", mode="create")
            _refuse_ignored_create_only(fs, probe, root)
        fs.rm(probe)
    except (*_failure_types(), ValueError) as error:  # type: ignore[misc]  # mypy cannot unpack a tuple here
        raise StorageError(f"storage {root} is not writable ({error.__class__.__name__}: {error})") from None


def _refuse_ignored_create_only(fs: fsspec.AbstractFileSystem, probe: str, root: str) -> None:
    try:
        fs.pipe_file(probe, b"again", mode="create")
    except OSError as error:
        if _is_failed_precondition(error):
            return
        raise
    fs.rm(probe)
    raise StorageError(
        f"storage {root} ignores conditional writes (If-None-Match): a create-only write replaced an "
        "existing object, so published runs and the champion could be overwritten; use an endpoint "
        "that honours them (AWS S3, MinIO, SeaweedFS, ...)"
    )


def write_bytes(uri: str, data: bytes, *, create_only: bool = False) -> None:
    """Writes `data` at `uri` whole or not at all; `create_only` refuses an existing object."""
    fs, path = filesystem(uri)
    with _reported("write", uri):
        if isinstance(fs, LocalFileSystem):
            _write_local(path, data, create_only, uri)
        else:
            _write_remote(fs, path, data, create_only, uri)


def upload_file(local_path: str | Path, uri: str) -> None:
    """Copies a local file to `uri` whole or not at all, streaming (never whole in memory)."""
    fs, path = filesystem(uri)
    with _reported("write", uri):
        if isinstance(fs, LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            try:
                shutil.copyfile(local_path, temporary)
                os.replace(temporary, path)
            finally:
                if os.path.exists(temporary):
                    os.remove(temporary)
        else:
            fs.put_file(str(local_path), path)


def move_file(local_path: str | Path, uri: str) -> None:
    """Moves a local file the caller has done with to `uri`, whole or not at all: a rename when `uri`
    is on the same local filesystem (a split of millions of reviews is gigabytes: copying it took
    longer than encoding it), else `upload_file`'s copy."""
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        with _reported("write", uri):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                os.replace(local_path, path)
                return
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
    upload_file(local_path, uri)
    os.remove(local_path)


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
        if os.path.exists(temporary):  # also after a failed write (disk full): no half file stays
            os.remove(temporary)


def _write_remote(fs: fsspec.AbstractFileSystem, path: str, data: bytes, create_only: bool, uri: str) -> None:
    try:
        fs.pipe_file(path, data, mode="create" if create_only else "overwrite")
    except OSError as error:
        if create_only and _is_failed_precondition(error):
            raise ObjectExists(f"{uri} already exists; published objects are never overwritten") from None
        raise


def read_versioned(uri: str) -> tuple[bytes | None, str | None]:
    """The object's bytes and a version token for `write_if_unchanged` (None, None when absent).

    The token is the S3 ETag, or the sha256 of a local file's bytes.
    """
    fs, path = filesystem(uri)
    with _reported("read", uri):
        if isinstance(fs, LocalFileSystem):
            data = _read_local_or_none(path)
            return data, None if data is None else hashlib.sha256(data).hexdigest()
        for _ in range(3):  # ETag before and after the read agree: the bytes belong to that ETag
            before = _etag_or_none(fs, path)
            data = fs.cat_file(path) if before else None
            if _etag_or_none(fs, path) == before:
                return data, before
    raise WriteConflict(f"{uri} kept changing while it was read")


def write_if_unchanged(uri: str, data: bytes, version: str | None) -> None:
    """Writes `data` only if the object is still at `version` (None: only if it does not exist).

    Raises WriteConflict when another writer got there first. S3 checks the version itself
    (If-Match / If-None-Match); locally an exclusive lock beside the file serialises writers.
    """
    fs, path = filesystem(uri)
    with _reported("write", uri):
        if isinstance(fs, LocalFileSystem):
            _replace_local_if_unchanged(path, data, version, uri)
            return
        options = {"IfMatch": version} if version else {"mode": "create"}
        try:
            fs.pipe_file(path, data, **options)
        except OSError as error:
            if _is_failed_precondition(error):
                raise WriteConflict(f"{uri} was changed by another writer") from None
            raise


def _read_local_or_none(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _etag_or_none(fs: fsspec.AbstractFileSystem, path: str) -> str | None:
    try:
        return fs.info(path).get("ETag")
    except FileNotFoundError:
        return None


def _replace_local_if_unchanged(path: str, data: bytes, version: str | None, uri: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        current = _read_local_or_none(path)
        if (None if current is None else hashlib.sha256(current).hexdigest()) != version:
            raise WriteConflict(f"{uri} was changed by another writer")
        _write_local(path, data, False, uri)


def _is_failed_precondition(error: OSError) -> bool:
    """A conditional PUT (If-None-Match / If-Match) refused by S3: s3fs raises FileExistsError, or
    (older versions) OSError(EINVAL, "At least one of the pre-conditions you specified did not hold")."""
    return isinstance(error, FileExistsError) or "pre-condition" in str(error).lower()


def write_verified(uri: str, data: bytes, *, create_only: bool = False) -> str:
    """`write_bytes`, then reads the object back and checks its sha256; returns that sha256."""
    expected = hashlib.sha256(data).hexdigest()
    write_bytes(uri, data, create_only=create_only)
    stored = sha256_of(uri)
    if stored != expected:
        raise StorageError(f"{uri}: stored sha256 {stored} differs from the uploaded {expected}")
    return expected


def read_verified(uri: str, sha256: str) -> bytes:
    """The object's bytes, refused when they are not the ones recorded when it was written: nothing
    read back from shared storage is trusted without its checksum."""
    data = read_bytes(uri)
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise StorageError(f"{uri}: sha256 {found} differs from the {sha256} recorded when it was written")
    return data


def json_bytes(payload: Any) -> bytes:
    """The one way the pipeline writes JSON: indented, keys sorted, a final newline."""
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def compact_json_bytes(payload: Any) -> bytes:
    """JSON without indentation, for large maps (a word index): Python's C encoder writes it ~10x faster."""
    return (json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n").encode()


def write_json(uri: str, payload: Any, *, create_only: bool = False) -> str:
    """Writes `payload` as JSON (verified); returns the sha256 of the bytes written."""
    return write_verified(uri, json_bytes(payload), create_only=create_only)


def shown_location(uri: str, presign_seconds: int = 0) -> str:
    """Where a person finds a stored object: its path for local files, its s3:// URI on S3. With
    `presign_seconds`, an S3 object gets an https link that anyone holding it can open for that
    long, and that carries the access key id (and a session token) of whoever signed it."""
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        return path
    if presign_seconds <= 0:
        return uri
    try:
        return fs.sign(path, expiration=presign_seconds)
    except NotImplementedError:
        return uri


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with _reported("read", uri), fs.open(path, "rb") as handle:
        return handle.read()


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def remove_tree(uri: str) -> None:
    """Removes a folder (every object under a prefix) and what it holds."""
    fs, path = filesystem(uri)
    with _reported("remove", uri):
        folders = {path, *(key.rsplit("/", 1)[0] for key in fs.find(path))}
        fs.rm(path, recursive=True)
        if not isinstance(fs, LocalFileSystem):
            _remove_folder_markers(fs, folders, path)
        fs.invalidate_cache(path)


def _remove_folder_markers(fs: fsspec.AbstractFileSystem, folders: set[str], path: str) -> None:
    """Some S3 servers (SeaweedFS) keep a folder's `key/` entry after its objects are gone, and list
    it as a prefix still; deleting a key that does not exist is a no-op on any S3."""
    bucket = path.split("/", 1)[0]
    parents = {parent for folder in folders for parent in _parents(folder, path)}
    for folder in sorted(parents, key=len, reverse=True):
        fs.call_s3("delete_object", Bucket=bucket, Key=folder.split("/", 1)[1] + "/")


def _parents(folder: str, top: str) -> list[str]:
    """`folder` and each folder above it, up to and including `top`."""
    parts = folder.split("/")
    return ["/".join(parts[:end]) for end in range(len(top.split("/")), len(parts) + 1)]
