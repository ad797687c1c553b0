"""Resolving sources: downloads over real HTTP (a local server), the cache, checksums, fallback."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest

from tasks.config import DataConfig
from tasks.data import sources
from tasks.errors import ChecksumMismatch, SourceError, SourceUnreachable


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_path_and_file_uri_are_read_in_place(imdb_npz, tmp_path):
    for uri in (str(imdb_npz), imdb_npz.as_uri()):
        info = sources.resolve_source(DataConfig(source=uri, cache_dir=str(tmp_path)))
        assert (info.kind, info.local_path, info.sha256) == ("npz", str(imdb_npz), sha256(imdb_npz))
    assert not any(tmp_path.iterdir())


def test_http_download_is_verified_cached_and_reused(imdb_npz, http_server, tmp_path):
    base, requests = http_server
    uri = f"{base}/imdb.npz"
    config = DataConfig(source=uri, source_sha256=sha256(imdb_npz), cache_dir=str(tmp_path))
    requests.clear()
    first = sources.resolve_source(config)
    second = sources.resolve_source(config)
    assert requests == ["/imdb.npz"]  # downloaded once, then reused
    assert first == second
    assert first.local_path == str(sources.cache_path(uri, str(tmp_path)))
    assert first.sha256 == sha256(imdb_npz)
    name = sources.cache_path(uri, str(tmp_path)).name
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, name + sources.CHECKSUM_SUFFIX]  # no partial left
    assert (tmp_path / (name + sources.CHECKSUM_SUFFIX)).read_text().strip() == sha256(imdb_npz)


def test_a_download_reports_its_progress_in_percent(imdb_npz, http_server, monkeypatch, tmp_path, caplog):
    size = imdb_npz.stat().st_size
    monkeypatch.setattr(sources.fs, "CHUNK_BYTES", size // 8)
    monkeypatch.setattr(sources, "PROGRESS_STEP_BYTES", size // 4)
    with caplog.at_level(logging.INFO, logger="tasks.data.sources"):
        sources.resolve_source(DataConfig(source=f"{http_server[0]}/imdb.npz", cache_dir=str(tmp_path)))
    percents = [int(match) for record in caplog.records for match in re.findall(r"\((\d+) %\)", record.getMessage())]
    assert len(percents) >= 4 and percents == sorted(percents) and percents[-1] == 100


def test_checksum_mismatch_is_refused_and_leaves_no_file(http_server, tmp_path):
    base, _ = http_server
    config = DataConfig(source=f"{base}/imdb.npz", source_sha256="0" * 64, cache_dir=str(tmp_path))
    with pytest.raises(ChecksumMismatch, match="does not match the expected 0000"):
        sources.resolve_source(config)
    assert not any(tmp_path.iterdir())


def test_corrupted_cache_is_downloaded_again(imdb_npz, http_server, tmp_path):
    base, requests = http_server
    uri = f"{base}/imdb.npz"
    config = DataConfig(source=uri, source_sha256=sha256(imdb_npz), cache_dir=str(tmp_path))
    cached = sources.cache_path(uri, str(tmp_path))
    cached.write_bytes(imdb_npz.read_bytes()[:100])
    requests.clear()
    info = sources.resolve_source(config)
    assert requests == ["/imdb.npz"]
    assert info.sha256 == sha256(imdb_npz) == sha256(cached)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "corrupt", [lambda path: path.write_bytes(path.read_bytes()[:-50]), _flip_a_byte], ids=["truncated", "byte-flipped"]
)
def test_corruption_of_a_download_without_expected_checksum_is_caught(imdb_npz, http_server, tmp_path, corrupt):
    """No --source-sha256: the checksum recorded at download time guards the cached copy."""
    base, requests = http_server
    config = DataConfig(source=f"{base}/imdb.npz", cache_dir=str(tmp_path))
    first = sources.resolve_source(config)
    cached = Path(first.local_path)
    corrupt(cached)
    assert sha256(cached) != first.sha256
    requests.clear()
    again = sources.resolve_source(config)
    assert requests == ["/imdb.npz"]  # fetched again, never loaded as it was
    assert again.sha256 == first.sha256 == sha256(cached) == sha256(imdb_npz)
    requests.clear()
    assert sources.resolve_source(config).sha256 == first.sha256 and requests == []  # intact: reused


def test_missing_remote_file_is_a_source_error(http_server, tmp_path):
    base, _ = http_server
    with pytest.raises(SourceError, match="HTTP 404"):
        sources.resolve_source(DataConfig(source=f"{base}/nope.npz", cache_dir=str(tmp_path)))


def test_missing_local_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        sources.resolve_source(DataConfig(source=str(tmp_path / "absent.npz")))


def test_unreachable_host_is_reported_as_unreachable(closed_port_url, tmp_path):
    with pytest.raises(SourceUnreachable, match=re.escape("127.0.0.1")):
        sources.resolve_source(DataConfig(source=closed_port_url, cache_dir=str(tmp_path)))


def test_auto_falls_back_to_offline_only_when_unreachable(closed_port_url, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(sources, "CANONICAL_URL", closed_port_url)
    info = sources.resolve_source(DataConfig(source="auto", cache_dir=str(tmp_path)))
    assert info.kind == "offline"
    assert "127.0.0.1" in info.fallback_reason
    assert "falling back to the offline corpus" in caplog.text
    assert "different, smaller data set" in info.description


def test_auto_uses_the_cached_canonical_files(imdb_npz, monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "CANONICAL_SHA256", sha256(imdb_npz))
    cached = sources.cache_path(sources.CANONICAL_URL, str(tmp_path))
    cached.write_bytes(imdb_npz.read_bytes())
    word_index = sources.cache_path(sources.WORD_INDEX_URL, str(tmp_path))
    word_index.write_text('{"good": 1}')
    monkeypatch.setattr(sources, "WORD_INDEX_MD5", hashlib.md5(word_index.read_bytes()).hexdigest())
    (tmp_path / (word_index.name + sources.CHECKSUM_SUFFIX)).write_text(sha256(word_index))
    info = sources.resolve_source(DataConfig(source="auto", cache_dir=str(tmp_path)))
    assert (info.kind, info.local_path, info.fallback_reason) == ("npz", str(cached), None)
    assert (info.word_index_path, info.word_index_sha256) == (str(word_index), sha256(word_index))
    assert info.description.startswith("canonical Keras IMDB")


def test_auto_does_not_fall_back_on_a_checksum_mismatch(imdb_npz, http_server, monkeypatch, tmp_path):
    base, _ = http_server
    monkeypatch.setattr(sources, "CANONICAL_URL", f"{base}/imdb.npz")  # serves a file with another checksum
    with pytest.raises(ChecksumMismatch):
        sources.resolve_source(DataConfig(source="auto", cache_dir=str(tmp_path)))


def test_auto_probes_the_canonical_file_again_a_day_after_a_fallback(
    imdb_npz, http_server, closed_port_url, monkeypatch, tmp_path
):
    import os
    import time

    base, requests = http_server
    config = DataConfig(source="auto", cache_dir=str(tmp_path))
    monkeypatch.setattr(sources, "CANONICAL_URL", closed_port_url)  # the network is down
    assert sources.resolve_source(config).kind == "offline"
    marker = sources.unreachable_marker(str(tmp_path))
    assert "127.0.0.1" in marker.read_text()

    # The network is back, but within the day the offline corpus is used without probing it.
    monkeypatch.setattr(sources, "CANONICAL_URL", f"{base}/imdb.npz")
    monkeypatch.setattr(sources, "CANONICAL_SHA256", sha256(imdb_npz))
    word_index = imdb_npz.parent / "auto_word_index.json"  # downloaded with the canonical file
    word_index.write_text(json.dumps({f"word{rank}": rank for rank in range(1, 80)}))
    monkeypatch.setattr(sources, "WORD_INDEX_URL", f"{base}/{word_index.name}")
    monkeypatch.setattr(sources, "WORD_INDEX_MD5", hashlib.md5(word_index.read_bytes()).hexdigest())
    before = len(requests)
    info = sources.resolve_source(config)
    assert info.kind == "offline" and "127.0.0.1" in info.fallback_reason and "h ago" in info.fallback_reason
    assert len(requests) == before

    # A day later it is probed again, downloaded, and the failure is forgotten.
    stale = time.time() - sources.CANONICAL_RETRY_SECONDS - 60
    os.utime(marker, (stale, stale))
    info = sources.resolve_source(config)
    assert (info.kind, info.sha256, info.fallback_reason) == ("npz", sha256(imdb_npz), None)
    assert requests[before:] == ["/imdb.npz", f"/{word_index.name}"] and not marker.exists()
    assert sources.resolve_source(config).kind == "npz" and len(requests) == before + 2  # the cached copies
