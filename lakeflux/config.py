"""One frozen settings object for `serve`, built from CLI flags and LAKEFLUX_* / INFLUXDB3_* env vars.

The CLI owns flag parsing; this module owns the names, defaults and validation, so tests and the
in-process server build a Config directly.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import Invalid

DEFAULT_BIND = "127.0.0.1:8181"
DEFAULT_MAX_REQUEST = 10 * 1024 * 1024
# What a node of a cluster does (`--mode`, comma-combinable); `all` is every one, the single-node default.
MODES = ("ingest", "query", "process", "compact")
ALL_MODE = "all"


def physical_memory() -> int:
    """Bytes of physical memory of this machine (1 GiB when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 2**30


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
    # `--cluster-id`: the prefix of the catalog and node registry the cluster's nodes share. None: the node
    # id, which is where a single node has always kept its catalog (docs/cluster.md).
    cluster_id: str | None = None
    # `--mode`: a subset of MODES, or ("all",).
    modes: tuple[str, ...] = (ALL_MODE,)
    # `--node-address`: how other nodes and operators reach this node (shown by `lakeflux show nodes`);
    # None: http://<--http-bind>, with the host name for a wildcard bind.
    node_address: str | None = None
    # Seconds between registry heartbeats; a node silent for three of them shows as unresponsive.
    heartbeat_interval: float = 10.0
    # `--catalog-sync-interval`: a cluster node applies the other nodes' catalog changes at least this often
    # (it also does whenever one of its own changes finds its slot taken). Unused by a single node.
    catalog_sync_interval: float = 1.0
    # `--replication-interval`: a query node probes each ingest node for its next WAL segment this often.
    replication_interval: float = 0.25
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
    # Flush early once the open batch holds this many rows and no other client write is on its way in (or
    # twice this many): a lone writer of 5,000-line batches, or a few concurrent ones, then commits as fast as
    # the store allows instead of waiting for the timer (buffer/writebuffer.py).
    wal_flush_size: int = 5_000
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
    # `--exec-mem-pool-bytes` (Core's name and default, 20% of memory): DataFusion's memory pool, shared by
    # every running query; a query's share of it (/ max_concurrent_queries) bounds what one batch of a
    # size-setting function (repeat, array_repeat) may build.
    exec_mem_pool_bytes: int = field(default_factory=lambda: physical_memory() // 5)
    # Slow and idle HTTP clients (server/connections.py): a request head must arrive within
    # `--http-read-header-timeout` (and a body may not pause longer), a whole request within
    # `--http-read-timeout`; an idle keep-alive connection is closed after `--http-idle-timeout`; at most
    # `--http-max-connections` are open (the longest-waiting idle one is closed to make room).
    http_read_header_timeout: float = 10.0
    http_read_timeout: float = 300.0
    http_idle_timeout: float = 180.0
    http_max_connections: int = 4096
    # `--shutdown-grace-period`: on SIGTERM, running queries are cancelled and pending writes committed;
    # the process exits after this long even if a query is still stuck in the engine.
    shutdown_grace_period: float = 20.0
    hard_delete_default_duration: float = 72 * 3600.0
    # `--delta-log-retention`: Delta log files (old commits and checkpoints) are deleted once older than this
    # and than the newest checkpoint that old (Delta's `delta.logRetentionDuration`, recorded in each table);
    # None: never deleted.
    delta_log_retention: float | None = 30 * 86_400.0
    # The cluster compactor (`--mode compact`): a round this often; replaced compacted files are deleted this
    # long after they left the compaction; compacted files hold at most this many rows.
    compaction_check_interval: float = 10.0
    compaction_cleanup_wait: float = 600.0
    compaction_row_limit: int = 1_000_000

    @property
    def cluster(self) -> str:
        """The cluster's prefix in the store: `cluster_id`, else the node id (a single node's own prefix)."""
        return self.cluster_id or self.node_id

    def has_mode(self, mode: str) -> bool:
        """Whether this node takes the `mode` role (`all` takes every role)."""
        return ALL_MODE in self.modes or mode in self.modes

    @property
    def address(self) -> str:
        """`node_address`, else the HTTP URL of `--http-bind` (the host name when bound to every address)."""
        if self.node_address:
            return self.node_address
        host, port = self.host_port
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def with_changes(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.http_bind.rpartition(":")
        if not host or not port.isdigit():
            raise Invalid(f"invalid --http-bind {self.http_bind!r}: expected HOST:PORT")
        return host.strip("[]"), int(port)


# Roles whose work is not built yet: refused rather than accepted and ignored.
_NOT_YET: dict[str, str] = {}


def parse_modes(text: str) -> tuple[str, ...]:
    """`--mode` text: comma-separated roles out of MODES, or `all`; returned in MODES order, deduplicated.
    Raises Invalid naming the unknown role."""
    given = [part.strip() for part in text.split(",") if part.strip()]
    if not given:
        raise Invalid("--mode is empty: expected all or a comma-separated list of " + ", ".join(MODES))
    for mode in given:
        if mode != ALL_MODE and mode not in MODES:
            raise Invalid(f"unknown mode {mode!r}: expected all or a comma-separated list of {', '.join(MODES)}")
    for mode in given:
        if mode in _NOT_YET:
            raise Invalid(f"--mode {mode} is not available in this version: {_NOT_YET[mode]}")
    if ALL_MODE in given:
        return (ALL_MODE,)
    return tuple(m for m in MODES if m in given)


def check_id(kind: str, value: str) -> str:
    """A node or cluster id becomes the first segment of object keys: non-empty, no '/', not '.' or '..',
    no control characters. Raises Invalid naming `kind`."""
    if not value or value in (".", "..") or "/" in value or any(ord(c) < 32 for c in value):
        raise Invalid(f"invalid {kind} {value!r}: it names a folder of the object store, so it must be non-empty, "
                      "without '/' or control characters, and not '.' or '..'")
    return value
