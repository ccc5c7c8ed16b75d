"""Object store on S3 or an S3-compatible server (MinIO, LocalStack, moto), through s3fs.

put_if_absent is one conditional PUT (`If-None-Match: *`): S3 creates the object only if the key is
free and answers 412 otherwise, so exactly one of any number of racing writers wins. What makes this
subtle is retrying: if a PUT fails in a way that leaves its outcome unknown (timeout, connection reset
after the body was sent, 5xx, 409 "conditional request conflict"), a blind retry would get 412 for our
own object and report a lost race. So conditional PUTs go through a client with every automatic retry
disabled (botocore's, s3fs's and aiohttp's), and an unclear failure is resolved here by reading the key
back and comparing bytes with ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import s3fs
from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import Invalid, NotFound, Unavailable
from ._common import check_key, check_prefix, check_range, check_write_key
from .base import ObjectMeta
from .paths import is_temp

# Errors that may come out of an s3fs call for reasons of the network or the server.
_TRANSPORT_ERRORS = (OSError, BotoCoreError, ClientError, TimeoutError)
# 4xx statuses after which S3 guarantees nothing was written, except those that mean "try again".
_UNCLEAR_4XX = {408, 409, 429}
DEFAULT_REGION = "us-east-1"


class _SendOnceSession(AIOHTTPSession):
    """aiobotocore's HTTP session with aiohttp's silent resend turned off.

    aiohttp re-sends a PUT once, on its own, when the connection drops before the response (it counts
    PUT as idempotent). A conditional PUT is not: the resend gets 412 for the object the first send
    created. aiohttp has no public switch for this, so clear its `_retry_connection` flag on each
    session; tests/store (lost-response tests through a real proxy) fail if a new aiohttp ignores it.
    """

    async def _get_session(self, proxy_url: Any) -> Any:
        session = await super()._get_session(proxy_url)  # type: ignore[misc]
        if getattr(session, "_retry_connection", False):
            session._retry_connection = False
        return session


def _client_error(exc: BaseException) -> ClientError | None:
    """The botocore ClientError behind `exc` (s3fs re-raises them as OSError with the cause attached)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status_and_code(exc: BaseException) -> tuple[int | None, str]:
    err = _client_error(exc)
    if err is None:
        return None, ""
    meta = err.response.get("ResponseMetadata", {})
    return meta.get("HTTPStatusCode"), str(err.response.get("Error", {}).get("Code", ""))


def _is_precondition_failed(exc: BaseException) -> bool:
    status, code = _status_and_code(exc)
    return isinstance(exc, FileExistsError) or status == 412 or code == "PreconditionFailed"


def _is_missing_key(exc: BaseException) -> bool:
    status, code = _status_and_code(exc)
    if code == "NoSuchBucket":
        return False
    return code in ("NoSuchKey", "404") or status == 404 or (
        isinstance(exc, FileNotFoundError) and status is None
    )


def _is_rejected(exc: BaseException) -> bool:
    """True if S3 answered with a status that guarantees the request changed nothing."""
    status, _ = _status_and_code(exc)
    return status is not None and (400 <= status < 500 and status not in _UNCLEAR_4XX or status == 501)


def _describe(exc: BaseException) -> str:
    status, code = _status_and_code(exc)
    if status is not None:
        return f"{code or 'error'} (HTTP {status})"
    return f"{type(exc).__name__}: {exc}"


def _mtime_ns(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    return 0


class S3Store:
    """ObjectStore over `s3://<bucket>/<prefix>`; every method is safe to call from many threads.

    `endpoint` selects an S3-compatible server and switches to path-style addressing (which MinIO, moto
    and LocalStack need); an `http://` endpoint needs `allow_http=True`, as in InfluxDB 3's flags.
    Credentials left None come from the usual AWS chain (env vars, profile, instance role).
    `attempts` bounds conditional PUT attempts, `read_attempts` botocore's attempts for every other call;
    `sleep` is the back-off between conditional PUT attempts (tests inject a recorder).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        session_token: str | None = None,
        allow_http: bool = False,
        *,
        attempts: int = 3,
        read_attempts: int = 3,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not bucket:
            raise Invalid("s3 object store needs a bucket")
        if endpoint and endpoint.startswith("http://") and not allow_http:
            raise Invalid(f"s3 endpoint {endpoint} uses plain http: pass --aws-allow-http to allow it")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint = endpoint
        self.region = region
        self.allow_http = allow_http
        self.url = f"s3://{bucket}/{self.prefix}"
        self._key, self._secret, self._token = key, secret, session_token
        self._attempts = max(1, attempts)
        self._sleep = sleep
        timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
        # Reads, listings, deletes and plain puts are idempotent: let botocore retry them (standard mode:
        # connection errors, 5xx, throttling, with jittered back-off) and s3fs once more around body reads.
        self._fs = self._filesystem(
            {**timeouts, "retries": {"total_max_attempts": max(1, read_attempts), "mode": "standard"}},
            s3fs_tries=2,
        )
        # Conditional puts must be sent exactly once per attempt; see the module docstring.
        self._fs_once = self._filesystem(
            {
                **timeouts,
                "retries": {"total_max_attempts": 1, "mode": "standard"},
                "http_session_cls": _SendOnceSession,
            },
            s3fs_tries=1,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint={self.endpoint!r})"

    def _filesystem(self, config: dict[str, Any], *, s3fs_tries: int) -> s3fs.S3FileSystem:
        config = dict(config)
        client: dict[str, Any] = {}
        if self.region:
            client["region_name"] = self.region
        if self.endpoint:
            config["s3"] = {"addressing_style": "path"}
            client.setdefault("region_name", DEFAULT_REGION)
        fs = s3fs.S3FileSystem(
            key=self._key,
            secret=self._secret,
            token=self._token,
            endpoint_url=self.endpoint,
            client_kwargs=client,
            config_kwargs=config,
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        fs.retries = s3fs_tries  # s3fs's own retry loop (a class attribute, not a constructor argument)
        return fs

    def _path(self, key: str) -> str:
        return f"{self.bucket}/{self.prefix}{key}"

    def _failure(self, op: str, key: str, exc: BaseException) -> Exception:
        """Translate a backend exception into NotFound or Unavailable."""
        if _is_missing_key(exc):
            return NotFound(f"object {key!r} not found")
        return Unavailable(f"s3 store: {op} {self.url}{key} failed: {_describe(exc)}")

    # --- reads -----------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        """Return the whole object (one GET; S3 serves only complete objects). Raises NotFound if absent."""
        check_key(key)
        try:
            return bytes(self._fs.cat_file(self._path(key)))
        except _TRANSPORT_ERRORS as exc:
            raise self._failure("get", key, exc) from exc

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the object (end may exceed the size). Raises NotFound if absent."""
        check_key(key)
        check_range(start, end)
        if start == end:
            if not self.exists(key):
                raise NotFound(f"object {key!r} not found")
            return b""
        try:
            return bytes(self._fs.cat_file(self._path(key), start=start, end=end))
        except _TRANSPORT_ERRORS as exc:
            status, _ = _status_and_code(exc)
            if status == 416:  # start is at or past the end: an empty range of an existing object
                return b""
            raise self._failure("get_range", key, exc) from exc

    def exists(self, key: str) -> bool:
        """True if `key` is an object (one HEAD; a "directory" prefix is not an object)."""
        check_key(key)
        try:
            self._fs.call_s3("head_object", Bucket=self.bucket, Key=self.prefix + key)
            return True
        except _TRANSPORT_ERRORS as exc:
            if _is_missing_key(exc):
                return False
            raise self._failure("exists", key, exc) from exc

    def list(self, prefix: str) -> list[ObjectMeta]:
        """All objects whose key starts with `prefix`, sorted by key (S3 listings are strongly consistent)."""
        check_prefix(prefix)
        found: list[ObjectMeta] = []
        cut = len(self.prefix)
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        try:
            while True:
                page = self._fs.call_s3("list_objects_v2", **request)
                for item in page.get("Contents", []):
                    key = item["Key"][cut:]
                    if key and not is_temp(key):
                        found.append(ObjectMeta(key, int(item["Size"]), _mtime_ns(item.get("LastModified"))))
                if not page.get("IsTruncated"):
                    break
                request["ContinuationToken"] = page["NextContinuationToken"]
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(f"s3 store: list {self.url}{prefix} failed: {_describe(exc)}") from exc
        found.sort(key=lambda m: m.key)
        return found

    # --- writes ----------------------------------------------------------------------------------
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if absent, with one conditional PUT (`If-None-Match: *`) per attempt.

        Returns True once S3 has acknowledged our PUT (S3 acknowledges only durably stored objects), or
        once a read-back after an unclear failure finds exactly our bytes; False if S3 answered 412 (the
        key was taken; nothing was written), or a read-back finds other bytes. Byte equality is the
        identity test, so payloads should carry a writer id. If the key is still absent after an unclear
        failure the PUT is retried, up to `attempts` times in all; then Unavailable. Also Unavailable
        when the server refuses the request (credentials, missing bucket, no conditional-PUT support).

        A caller that retries after Unavailable may get False for its own earlier PUT: resolve that with
        `compare_stored(store, key, data)`.
        """
        check_write_key(key)
        path = self._path(key)
        payload = bytes(data)
        unclear = False
        last: BaseException | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(0.2 * 2 ** (attempt - 1))
            try:
                self._fs_once.pipe_file(path, payload, mode="create")
                return True
            except _TRANSPORT_ERRORS as exc:
                last = exc
                if _is_precondition_failed(exc):
                    # After an unclear attempt the object holding the key may be our own.
                    return self._read_back(key, payload, exc) is True if unclear else False
                if _is_rejected(exc):
                    raise Unavailable(
                        f"s3 store: put_if_absent {self.url}{key} was refused: {_describe(exc)}"
                    ) from exc
                unclear = True
                outcome = self._read_back(key, payload, exc)
                if outcome is not None:
                    return outcome
        raise Unavailable(
            f"s3 store: put_if_absent {self.url}{key} failed {self._attempts} times: {_describe(last)}"
            if last is not None
            else f"s3 store: put_if_absent {self.url}{key} failed"
        )

    def _read_back(self, key: str, payload: bytes, cause: BaseException) -> bool | None:
        """True if `key` holds `payload`, False if other bytes, None if absent; Unavailable if unreadable."""
        try:
            return self.get(key) == payload
        except NotFound:
            return None
        except Unavailable as exc:
            raise Unavailable(
                f"s3 store: outcome of put_if_absent {self.url}{key} is unknown: {_describe(cause)}; "
                f"reading it back failed: {exc.message}"
            ) from exc

    def put(self, key: str, data: bytes) -> None:
        """Create or replace `key` with one PUT (atomic: readers see old or new bytes).

        Returns once S3 has acknowledged the PUT, i.e. the new bytes are durable and visible.
        """
        check_write_key(key)
        try:
            self._fs.pipe_file(self._path(key), bytes(data))
        except _TRANSPORT_ERRORS as exc:
            raise Unavailable(f"s3 store: put {self.url}{key} failed: {_describe(exc)}") from exc

    def copy(self, src: str, dst: str) -> None:
        """Server-side CopyObject; returns once S3 has acknowledged it (dst durable and visible)."""
        check_key(src)
        check_write_key(dst)
        try:
            self._fs.call_s3("copy_object", Bucket=self.bucket, Key=self.prefix + dst,
                             CopySource={"Bucket": self.bucket, "Key": self.prefix + src})
        except _TRANSPORT_ERRORS as exc:
            if _is_missing_key(exc):
                raise NotFound(f"object not found: {src}") from exc
            raise Unavailable(f"s3 store: copy {self.url}{src} to {dst} failed: {_describe(exc)}") from exc

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error. Returns once S3 has acknowledged the DELETE."""
        check_key(key)
        try:
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=self.prefix + key)
        except _TRANSPORT_ERRORS as exc:
            if _is_missing_key(exc):
                return
            raise Unavailable(f"s3 store: delete {self.url}{key} failed: {_describe(exc)}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (for local test servers; production buckets are made by ops)."""
        try:
            self._fs.call_s3("head_bucket", Bucket=self.bucket)
            return
        except _TRANSPORT_ERRORS as exc:
            status, code = _status_and_code(exc)
            if status != 404 and code not in ("404", "NoSuchBucket") and not isinstance(exc, FileNotFoundError):
                raise Unavailable(f"s3 store: bucket {self.bucket} unreachable: {_describe(exc)}") from exc
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != DEFAULT_REGION:
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._fs.call_s3("create_bucket", **params)
        except _TRANSPORT_ERRORS as exc:
            _, code = _status_and_code(exc)
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise Unavailable(f"s3 store: creating bucket {self.bucket} failed: {_describe(exc)}") from exc

    # --- native readers --------------------------------------------------------------------------
    def url_for(self, key: str) -> str:
        """The `s3://bucket/...` URL of `key` (or of a prefix ending in '/') for DataFusion or DuckDB: the key
        percent-escaped, as URL readers decode it (a key holding `%2E` must not be read as `.`)."""
        return f"s3://{self.bucket}/{quote(self.prefix + key, safe='/=')}"

    def datafusion_store(self) -> Any:
        """A `datafusion.object_store.AmazonS3` reading this bucket natively (path-style, same credentials).

        Register it with `ctx.register_object_store("s3://", store, self.bucket)`, then read `url_for(...)`.
        datafusion is imported here lazily: only the query layer calls this.
        """
        from datafusion.object_store import AmazonS3

        return AmazonS3(
            bucket_name=self.bucket,
            region=self.region or DEFAULT_REGION,
            access_key_id=self._key,
            secret_access_key=self._secret,
            session_token=self._token,
            endpoint=self.endpoint,
            allow_http=self.allow_http,
        )
