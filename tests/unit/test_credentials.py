"""A source's credentials (user, token, signature) are used to download it and shown nowhere: not in
the config (a flow run's parameter), the cache's file names, logs, run tags or the champion history."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.cli import build_parser, config_from_args
from tasks.config import DataConfig, StorageConfig, WatchConfig
from tasks.data import sources
from tasks.errors import SourceError
from tasks.registry.history import current_command
from tasks.runtime.ui import run_tags
from tasks.storage import fs
from tests.helpers import HTTP_TOKEN, HTTP_USER, PRIVATE_PATH


def _secret_url(base: str) -> tuple[str, list[str]]:
    """A URL of the fixture's private imdb.npz with Basic auth and signature-like query values,
    fresh for each test (this process remembers hidden URLs); and the secrets it holds."""
    signature, token = f"sig-{uuid.uuid4().hex}", f"qtok-{uuid.uuid4().hex}"
    host = base.removeprefix("http://")
    url = f"http://{HTTP_USER}:{HTTP_TOKEN}@{host}{PRIVATE_PATH}imdb.npz?X-Amz-Signature={signature}&token={token}"
    return url, [HTTP_TOKEN, signature, token]


def _names_under(folder: Path) -> str:
    return "\n".join(str(path) for path in folder.rglob("*"))


def test_uris_and_cache_paths_hide_user_token_and_every_query_value():
    shown = fs.without_credentials("https://u:p@host/a/imdb.npz?X-Amz-Credential=AKIA&sig=s&flag#frag")
    assert shown == "https://***@host/a/imdb.npz?X-Amz-Credential=***&sig=***&***#***"
    assert fs.without_credentials(shown) == shown
    assert fs.without_credentials("https://host/imdb.npz") == "https://host/imdb.npz"

    # A download's cache path: a new signature of the same file finds the same copy, named without it.
    first, second = (f"https://u:p@host/a/imdb.npz?sig={sig}" for sig in ("sig-one", "sig-two"))
    assert sources.cache_path(first, "/c") == sources.cache_path(second, "/c")
    assert "sig-one" not in str(sources.cache_path(first, "/c"))
    # ... but another file behind the same path (another value of a plain query parameter) does not.
    signed = "https://host/get/imdb.npz?id={}&X-Amz-Date={}&X-Amz-Signature={}"
    assert sources.cache_path(signed.format(1, 1, "a"), "/c") == sources.cache_path(signed.format(1, 2, "b"), "/c")
    assert sources.cache_path(signed.format(1, 1, "a"), "/c") != sources.cache_path(signed.format(2, 1, "a"), "/c")


def test_a_hidden_source_is_downloaded_with_its_credentials_and_recorded_without(http_server, tmp_path, caplog):
    base, requests = http_server
    url, secrets = _secret_url(base)
    shown = fs.hide_credentials(url)
    config = DataConfig(source=shown, cache_dir=str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO):
        info = sources.resolve_source(config)
    assert info.uri == shown and f"imdb.npz from {shown}" == info.description
    assert any(secrets[1] in path for path in requests)  # the signature reached the server
    assert Path(info.local_path).is_file()
    for secret in secrets:
        assert secret not in _names_under(tmp_path / "cache")
        assert secret not in caplog.text and secret not in info.model_dump_json()


def test_a_source_without_its_credentials_is_refused_with_its_reason(http_server, tmp_path):
    base, _ = http_server
    host = base.removeprefix("http://")
    hidden = f"http://***@{host}{PRIVATE_PATH}imdb.npz?token=***"
    with pytest.raises(SourceError, match="credentials are hidden and this process does not have them"):
        sources.resolve_source(DataConfig(source=hidden, cache_dir=str(tmp_path)))
    with pytest.raises(SourceError, match="own reviews are read with the AWS chain's credentials"):
        sources.resolve_source(DataConfig(source=f"http://***@{host}/reviews.csv", cache_dir=str(tmp_path)))
    wrong = f"http://{HTTP_USER}:not-the-token@{host}{PRIVATE_PATH}imdb.npz"
    with pytest.raises(SourceError, match="HTTP 401") as caught:
        sources.resolve_source(DataConfig(source=fs.hide_credentials(wrong), cache_dir=str(tmp_path)))
    assert "not-the-token" not in str(caught.value)


def test_a_deployment_names_the_environment_variable_holding_the_full_url(http_server, tmp_path, monkeypatch):
    url, secrets = _secret_url(http_server[0])
    shown = fs.without_credentials(url)
    config = DataConfig(source=shown, source_url_env="IMDB_TEST_SOURCE_URL", cache_dir=str(tmp_path))
    with pytest.raises(SourceError, match="IMDB_TEST_SOURCE_URL is not set"):
        sources.resolve_source(config)
    monkeypatch.setenv("IMDB_TEST_SOURCE_URL", url.replace("imdb.npz", "other.npz"))
    with pytest.raises(SourceError, match="does not hold a URL of the source") as caught:
        sources.resolve_source(config)
    assert not any(secret in str(caught.value) for secret in secrets)
    monkeypatch.setenv("IMDB_TEST_SOURCE_URL", "not-a-url-but-a-secret")  # a name, say, of the wrong variable
    with pytest.raises(SourceError) as caught:
        sources.resolve_source(config)
    assert "not-a-url-but-a-secret" not in str(caught.value)
    monkeypatch.setenv("IMDB_TEST_SOURCE_URL", url)
    assert sources.resolve_source(config).uri == shown


def test_the_config_refuses_credentials_and_the_command_line_hides_them():
    url = "https://user:tok-cli@host/imdb.npz?X-Amz-Signature=sig-cli"
    for invalid in (
        lambda: DataConfig(source=url),
        lambda: StorageConfig(root="s3://KEY:tok-cli@bucket/imdb"),
        lambda: WatchConfig(source="s3://bucket/reviews/?sig=sig-cli"),
    ):
        with pytest.raises(ValidationError, match="carries credentials") as caught:
            invalid()
        assert "tok-cli" not in caught.value.errors()[0]["msg"] and "sig-cli" not in caught.value.errors()[0]["msg"]
    config = config_from_args(build_parser().parse_args(["--source", url]))
    assert config.data.source == "https://***@host/imdb.npz?X-Amz-Signature=***"
    assert "tok-cli" not in config.model_dump_json() and "sig-cli" not in config.model_dump_json()
    assert fs.with_credentials(config.data.source) == url


def test_the_champion_history_and_run_tags_show_no_credentials():
    url = "https://user:tok-hist@host/data/imdb.npz?sig=sig-hist"
    command = current_command(["imdb_pipeline.py", "--source", url, f"--source={url}", "--seed", "1"])
    assert "tok-hist" not in command and "sig-hist" not in command
    assert command.startswith("imdb_pipeline.py --source 'https://***@host/data/imdb.npz?sig=***' '--source=https://")
    assert run_tags(fs.without_credentials(url), ("embedding",)) == ["source:imdb.npz", "variant:embedding"]
    assert run_tags("auto", ()) == ["source:auto"]
