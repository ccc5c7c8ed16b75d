"""One frozen settings object for `serve`, built from CLI flags and LAKEFLUX_* / INFLUXDB3_* env vars.

The CLI owns flag parsing; this module owns the names, defaults and validation, so tests and the
in-process server build a Config directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import Invalid

DEFAULT_BIND = "127.0.0.1:8181"
DEFAULT_MAX_REQUEST = 10 * 1024 * 1024


def env(name: str, default: str | None = None) -> str | None:
    """LAKEFLUX_<name> wins over INFLUXDB3_<name>; either may be unset."""
    for prefix in ("LAKEFLUX_", "INFLUXDB3_"):
        value = os.environ.get(prefix + name)
        if value is not None and value != "":
            return value
    return default


@dataclass(frozen=True)
class S3Settings:
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    allow_http: bool = False
    prefix: str = ""


@dataclass(frozen=True)
class Config:
    """Everything `serve` needs; durations are in seconds."""

    node_id: str = "node0"
    object_store: str = "file"  # memory | file | s3
    data_dir: Path = Path("data")
    s3: S3Settings = field(default_factory=S3Settings)
    http_bind: str = DEFAULT_BIND
    without_auth: bool = False
    # InfluxDB 3 Core's bootstrap: no token at first start; the first (unauthenticated)
    # POST /api/v3/configure/token/admin creates it.
    manual_admin_token: bool = False
    disable_authz: tuple[str, ...] = ()
    plugin_dir: Path | None = None
    plugin_repo: str = "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/"
    virtual_env: Path | None = None
    package_manager: str = "discover"
    restrict_plugin_triggers_to: tuple[str, ...] = ()
    plugin_timeout: float | None = None
    # `--plugin-wal-backlog-limit`: WAL bytes a lagging WAL trigger may hold back before it skips its
    # oldest segments (an ERROR row names them); None: no limit.
    plugin_wal_backlog_limit: int | None = 2**30
    wal_flush_interval: float = 1.0
    # Flush early once the open batch holds this many rows: a few concurrent writers of 5,000-line
    # batches then commit as fast as the store allows instead of waiting for the timer.
    wal_flush_size: int = 10_000
    wal_max_write_buffer_size: int = 100_000
    gen1_duration: float = 600.0
    # Snapshot early once buffered rows take this much memory (bounded memory under heavy ingest).
    snapshot_memory_bytes: int = 256 * 1024 * 1024
    snapshotted_wal_files_to_keep: int = 300
    # `--wal-snapshot-size`: snapshot after this many WAL segments; None derives it from gen1_duration.
    wal_snapshot_size: int | None = None
    max_http_request_size: int = DEFAULT_MAX_REQUEST
    # `--max-write-bytes-in-flight`: write bodies read but not yet answered, in bytes; past it writes get
    # 503 + Retry-After. None: no limit.
    max_write_bytes_in_flight: int | None = 256 * 1024 * 1024
    wal_replay_fail_on_error: bool = False
    query_log_size: int = 1000
    # `--query-timeout`: a query still running after this long is stopped (504); None: no limit. 300 s is
    # what InfluxDB 3's Python client waits for an answer (Core itself has no server-side limit).
    query_timeout: float | None = 300.0
    # `--max-concurrent-queries` (Core's name): queries running at once; past it, 503 + Retry-After.
    max_concurrent_queries: int = 16
    # `--shutdown-grace-period`: on SIGTERM, running queries are cancelled and pending writes committed;
    # the process exits after this long even if a query is still stuck in the engine.
    shutdown_grace_period: float = 20.0
    hard_delete_default_duration: float = 72 * 3600.0

    def with_changes(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.http_bind.rpartition(":")
        if not host or not port.isdigit():
            raise Invalid(f"invalid --http-bind {self.http_bind!r}: expected HOST:PORT")
        return host.strip("[]"), int(port)
