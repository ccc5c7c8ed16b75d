"""lakeflux.store: the ObjectStore protocol, its backends, and how a Config or URL picks one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import Config, S3Settings
from ..errors import Invalid
from ._common import compare_stored
from .base import ObjectMeta, ObjectStore
from .file import FileStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from .s3 import S3Store

__all__ = [
    "FileStore",
    "MemoryStore",
    "ObjectMeta",
    "ObjectStore",
    "S3Store",
    "compare_stored",
    "open_store",
    "open_store_url",
]



def __getattr__(name: str) -> Any:
    # s3fs and botocore take a fifth of a second to import: load them only when S3 is used.
    if name == "S3Store":
        from .s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STORE_KINDS = ("memory", "file", "s3")
_NOT_YET = ("google", "azure")
_TRUE = ("1", "true", "yes", "on")


def open_store(config: Config) -> ObjectStore:
    """The backend `config.object_store` names: memory, file (rooted at config.data_dir) or s3."""
    kind = config.object_store
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(Path(config.data_dir))
    if kind == "s3":
        return s3_store_from_settings(config.s3)
    if kind in _NOT_YET:
        raise Invalid(f"object store {kind!r} is not supported yet; use one of: {', '.join(STORE_KINDS)}")
    raise Invalid(f"unknown object store {kind!r}; valid object stores: {', '.join(STORE_KINDS)}")


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def s3_store_from_settings(s3: S3Settings) -> S3Store:
    """An S3Store from explicit settings, each falling back to the usual AWS_* environment variable."""
    from .s3 import S3Store

    bucket = s3.bucket or _env("AWS_BUCKET", "AWS_BUCKET_NAME")
    if not bucket:
        raise Invalid("object store s3 needs a bucket (--bucket)")
    allow_http = s3.allow_http or (_env("AWS_ALLOW_HTTP") or "").lower() in _TRUE
    return S3Store(
        bucket=bucket,
        prefix=s3.prefix,
        endpoint=s3.endpoint or _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
        region=s3.region or _env("AWS_REGION", "AWS_DEFAULT_REGION"),
        key=s3.access_key_id or _env("AWS_ACCESS_KEY_ID"),
        secret=s3.secret_access_key or _env("AWS_SECRET_ACCESS_KEY"),
        session_token=s3.session_token or _env("AWS_SESSION_TOKEN"),
        allow_http=allow_http,
    )


def open_store_url(url: str) -> ObjectStore:
    """A backend chosen by URL scheme, as fsspec and pyiceberg do.

    `file:///abs/path` (or a bare path), `memory://name` (a fresh root if no name), and
    `s3://bucket/prefix?endpoint=http://host:9000&region=...&allow_http=true`; s3 credentials come from
    the AWS_* environment variables.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return FileStore(Path(url))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise Invalid(f"file URL {url!r} names a remote host; use file:///absolute/path")
        return FileStore(Path(unquote(parts.path)))
    if scheme == "memory":
        name = (parts.netloc + parts.path).strip("/")
        return MemoryStore(name or None)
    if scheme in ("s3", "s3a"):
        return _s3_from_url(parts.netloc, parts.path, parts.query)
    if scheme in ("gs", "gcs", "az", "abfs", "abfss"):
        raise Invalid(f"object store URL scheme {scheme!r} is not supported yet")
    raise Invalid(f"unknown object store URL scheme {scheme!r}; use file://, memory:// or s3://")


def _s3_from_url(bucket: str, path: str, query: str) -> S3Store:
    params = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    known = {"endpoint", "endpoint_url", "region", "allow_http"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise Invalid(f"unknown s3 URL parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    settings = S3Settings(
        bucket=bucket or None,
        prefix=unquote(path).strip("/"),
        endpoint=params.get("endpoint") or params.get("endpoint_url"),
        region=params.get("region"),
        allow_http=params.get("allow_http", "").lower() in _TRUE,
    )
    return s3_store_from_settings(settings)
