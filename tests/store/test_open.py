"""Choosing a backend from a Config or a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeflux.config import Config, S3Settings
from lakeflux.errors import Invalid
from lakeflux.store import FileStore, MemoryStore, S3Store, open_store, open_store_url

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
            "AWS_ALLOW_HTTP", "AWS_BUCKET", "AWS_BUCKET_NAME")


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_VARS:
        monkeypatch.delenv(name, raising=False)


def test_file_store_is_rooted_at_data_dir(tmp_path: Path) -> None:
    store = open_store(Config(object_store="file", data_dir=tmp_path / "data"))
    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "data"


def test_memory_stores_are_separate() -> None:
    a = open_store(Config(object_store="memory"))
    b = open_store(Config(object_store="memory"))
    assert isinstance(a, MemoryStore) and isinstance(b, MemoryStore)
    a.put_if_absent("k", b"a")
    assert not b.exists("k")
    a.clear()


def test_s3_store_from_settings() -> None:
    s3 = S3Settings(bucket="lake", endpoint="http://127.0.0.1:9000", region="eu-west-1", access_key_id="ak",
                    secret_access_key="sk", allow_http=True, prefix="p")
    store = open_store(Config(object_store="s3", s3=s3))
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.endpoint, store.region) == ("lake", "p/", s3.endpoint, "eu-west-1")


def test_s3_settings_fall_back_to_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    store = open_store(Config(object_store="s3", s3=S3Settings(bucket="lake")))
    assert isinstance(store, S3Store)
    assert (store.endpoint, store.region, store.allow_http) == ("http://127.0.0.1:4566", "us-west-2", True)


def test_s3_without_bucket_is_invalid() -> None:
    with pytest.raises(Invalid, match="bucket"):
        open_store(Config(object_store="s3"))


def test_unknown_kind_names_the_valid_ones() -> None:
    with pytest.raises(Invalid, match="memory, file, s3"):
        open_store(Config(object_store="ftp"))


@pytest.mark.parametrize("kind", ["google", "azure"])
def test_cloud_kinds_not_supported_yet(kind: str) -> None:
    with pytest.raises(Invalid, match="not supported yet"):
        open_store(Config(object_store=kind))


def test_open_store_url_file(tmp_path: Path) -> None:
    store = open_store_url((tmp_path / "x y").as_uri())
    assert isinstance(store, FileStore) and store.root == tmp_path / "x y"
    assert isinstance(open_store_url(str(tmp_path)), FileStore)
    with pytest.raises(Invalid, match="remote host"):
        open_store_url("file://elsewhere/x")


def test_open_store_url_memory() -> None:
    named = open_store_url("memory://lakeflux-url-test")
    assert isinstance(named, MemoryStore) and named.root == "/lakeflux-url-test"
    fresh = open_store_url("memory://")
    assert isinstance(fresh, MemoryStore) and fresh.root != named.root


def test_open_store_url_s3() -> None:
    store = open_store_url("s3://lake/some/prefix?endpoint=http://127.0.0.1:9000&allow_http=true&region=r1")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.endpoint, store.region) == (
        "lake", "some/prefix/", "http://127.0.0.1:9000", "r1")
    assert store.url == "s3://lake/some/prefix/"


@pytest.mark.parametrize("url,match", [
    ("s3://lake?bogus=1", "unknown s3 URL parameter"),
    ("s3:///prefix", "bucket"),
    ("gs://bucket", "not supported yet"),
    ("ftp://host/x", "unknown object store URL scheme"),
])
def test_open_store_url_errors(url: str, match: str) -> None:
    with pytest.raises(Invalid, match=match):
        open_store_url(url)
