"""`lakeflux serve`: map flags and env vars onto `lakeflux.config.Config`, then run the server.

`build_config` is a plain function of the flag values (None = flag not given) so the mapping is tested
without starting anything. Precedence per setting: flag, `LAKEFLUX_<NAME>`, `INFLUXDB3_<NAME>`, default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated

import typer

from lakeflux.config import (
    DEFAULT_BIND,
    DEFAULT_MAX_REQUEST,
    MODES,
    Config,
    S3Settings,
    check_id,
    env,
    parse_modes,
    physical_memory,
)
from lakeflux.engine.durations import NS_PER_SECOND, parse_duration
from lakeflux.errors import Invalid, LakefluxError

from .args import parse_name_list
from .options import DEFAULT_DATA_DIR
from .output import CliFailure, warn
from .write import parse_size

OBJECT_STORES = ("memory", "file", "s3")
PACKAGE_MANAGERS = ("discover", "pip", "uv", "disabled")
TRIGGER_KINDS = ("wal", "schedule", "request")
AUTHZ_EXEMPT = ("health", "ping", "metrics")
GEN1_DURATIONS = {"1m": 60.0, "5m": 300.0, "10m": 600.0}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# InfluxDB serve flags lakeflux accepts so existing command lines and unit files keep working, but ignores.
UNUSED_VALUE_FLAGS = frozenset({
    "log-filter", "log-destination", "log-format", "traces-exporter", "traces-exporter-jaeger-agent-host",
    "traces-exporter-jaeger-agent-port", "traces-exporter-jaeger-service-name", "traces-jaeger-debug-name",
    "traces-jaeger-tags", "traces-jaeger-max-msgs-per-second", "parquet-mem-cache-size",
    "parquet-mem-cache-prune-percentage", "parquet-mem-cache-prune-interval",
    "parquet-mem-cache-query-path-duration", "num-cores", "num-io-threads", "num-datafusion-threads",
    "datafusion-num-threads", "datafusion-runtime-type", "datafusion-max-parquet-fanout",
    "datafusion-use-cached-parquet-loader", "datafusion-config", "ram-pool-data-bytes",
    "query-file-limit",
    "table-index-cache-max-entries", "table-index-cache-concurrency-limit", "last-cache-eviction-interval",
    "distinct-cache-eviction-interval", "gen1-lookback-duration", "retention-check-interval",
    "delete-grace-period", "telemetry-endpoint", "object-store-connection-limit",
    "object-store-http2-max-frame-size", "object-store-max-retries", "object-store-retry-timeout",
    "object-store-cache-endpoint", "tcp-listener-file-path", "admin-token-recovery-http-bind",
    "admin-token-recovery-tcp-listener-file-path", "admin-token-file", "aws-credentials-file",
    "google-service-account", "azure-storage-account", "azure-storage-access-key", "azure-endpoint",
    "tls-minimum-version",
})
UNUSED_SWITCH_FLAGS = frozenset({
    "disable-telemetry-upload", "object-store-http2-only", "disable-parquet-mem-cache", "aws-skip-signature",
    "azure-allow-http", "verbose",
})
# Accepting these silently would let someone believe traffic is encrypted: refuse them instead.
REFUSED_FLAGS = {"tls-key": "terminate TLS in a proxy in front of lakeflux", "tls-cert": "terminate TLS in a proxy"}


@dataclass(frozen=True)
class ServeFlags:
    """The `serve` flag values exactly as given; None means the flag was not passed."""

    node_id: str | None = None
    cluster_id: str | None = None
    mode: str | None = None
    node_address: str | None = None
    catalog_sync_interval: str | None = None
    replication_interval: str | None = None
    compaction_check_interval: str | None = None
    compaction_cleanup_wait: str | None = None
    compaction_row_limit: int | None = None
    object_store: str | None = None
    data_dir: str | None = None
    bucket: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_default_region: str | None = None
    aws_endpoint: str | None = None
    aws_session_token: str | None = None
    aws_allow_http: bool | None = None
    http_bind: str | None = None
    without_auth: bool | None = None
    manual_admin_token: bool | None = None
    disable_authz: str | None = None
    plugin_dir: str | None = None
    plugin_repo: str | None = None
    virtual_env_location: str | None = None
    package_manager: str | None = None
    restrict_plugin_triggers_to: str | None = None
    plugin_timeout: str | None = None
    plugin_wal_backlog_limit: str | None = None
    wal_flush_interval: str | None = None
    wal_flush_size: int | None = None
    wal_max_write_buffer_size: int | None = None
    gen1_duration: str | None = None
    max_http_request_size: int | None = None
    max_write_bytes_in_flight: str | None = None
    wal_replay_fail_on_error: bool | None = None
    query_log_size: int | None = None
    query_timeout: str | None = None
    max_concurrent_queries: int | None = None
    exec_mem_pool_bytes: str | None = None
    http_read_header_timeout: str | None = None
    http_read_timeout: str | None = None
    http_idle_timeout: str | None = None
    http_max_connections: int | None = None
    shutdown_grace_period: str | None = None
    hard_delete_default_duration: str | None = None
    delta_log_retention: str | None = None
    force_snapshot_mem_threshold: str | None = None
    snapshotted_wal_files_to_keep: int | None = None
    wal_snapshot_size: int | None = None


def _text(flag: str | None, *names: str, default: str | None = None) -> str | None:
    """The flag, else the first env var set among `names` (each under LAKEFLUX_/INFLUXDB3_), else default."""
    if flag is not None:
        return flag
    for name in names:
        value = env(name)
        if value is not None:
            return value
    return default


def _aws(flag: str | None, name: str) -> str | None:
    """AWS settings also come from the plain `AWS_*` variables every AWS tool reads."""
    return _text(flag, name) or os.environ.get(name) or None


def _bool(flag: bool | None, option: str, *names: str) -> bool:
    if flag is not None:
        return flag
    text = _text(None, *names)
    if text is None:
        return False
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise CliFailure(f"invalid value {text!r} for {option} (from the environment): expected true or false", code=2)


def _int(flag: int | None, option: str, name: str, default: int, minimum: int = 1) -> int:
    if flag is not None:
        value = flag
    else:
        text = env(name)
        try:
            value = int(text) if text is not None else default
        except ValueError:
            raise CliFailure(f"invalid {option} {text!r}: expected an integer", code=2) from None
    if value < minimum:
        raise CliFailure(f"invalid {option} {value}: must be at least {minimum}", code=2)
    return value


def _optional_int(flag: int | None, option: str, name: str) -> int | None:
    """Like `_int`, but None when neither the flag nor its environment variable is given."""
    if flag is None and env(name) is None:
        return None
    return _int(flag, option, name, default=0)


def _seconds(text: str, option: str) -> float:
    try:
        seconds = parse_duration(text) / NS_PER_SECOND
    except Invalid as exc:
        raise CliFailure(f"invalid {option} {text!r}: {exc.message}", code=2) from None
    if seconds <= 0:
        raise CliFailure(f"invalid {option} {text!r}: must be positive", code=2)
    return seconds


def _choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise CliFailure(f"invalid {option} {value!r}: expected one of {', '.join(allowed)}", code=2)
    return value


def _choices(text: str | None, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_choice(item, option, allowed) for item in parse_name_list(text))


def _object_store(flags: ServeFlags) -> str:
    store = _text(flags.object_store, "OBJECT_STORE", default="file") or "file"
    if store in ("google", "azure"):
        raise CliFailure(f"--object-store {store} is not supported by lakeflux: use memory, file or s3", code=2)
    return _choice(store, "--object-store", OBJECT_STORES)


def _s3_settings(flags: ServeFlags, store: str) -> S3Settings:
    settings = S3Settings(
        bucket=_text(flags.bucket, "BUCKET"),
        endpoint=_aws(flags.aws_endpoint, "AWS_ENDPOINT"),
        region=_aws(flags.aws_default_region, "AWS_DEFAULT_REGION"),
        access_key_id=_aws(flags.aws_access_key_id, "AWS_ACCESS_KEY_ID"),
        secret_access_key=_aws(flags.aws_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        session_token=_aws(flags.aws_session_token, "AWS_SESSION_TOKEN"),
        allow_http=_bool(flags.aws_allow_http, "--aws-allow-http", "AWS_ALLOW_HTTP")
        or (os.environ.get("AWS_ALLOW_HTTP", "").lower() in _TRUE),
    )
    if store == "s3" and not settings.bucket:
        raise CliFailure("--object-store s3 needs --bucket (or LAKEFLUX_BUCKET)", code=2)
    return settings


# A Delta reader lists a table's log, then reads the checkpoint and commits it found: cleanup must leave them
# to it for longer than any listing-to-reading takes, on any clock skew between the server and the store.
MIN_LOG_RETENTION_S = 3_600.0


def _log_retention(text: str | None) -> float | None:
    """--delta-log-retention: a duration of at least an hour, or off (log files are never deleted)."""
    seconds = _seconds_or_off(text or "30d", "--delta-log-retention")
    if seconds is not None and seconds < MIN_LOG_RETENTION_S:
        raise CliFailure(f"invalid --delta-log-retention {text!r}: must be at least 1h (a Delta reader that listed "
                         "the log must still find what it listed), or off", code=2)
    return seconds


def _seconds_or_off(text: str | None, option: str, default: float | None = None) -> float | None:
    """A duration, or off/none/0 (None); `default` when not given."""
    if text is None:
        return default
    if text.strip().lower() in ("off", "none", "0", ""):
        return None
    return _seconds(text, option)


def _size_or_off(text: str | None, option: str, default: int | None) -> int | None:
    """A size (bytes, or with a KiB/MiB/GiB or KB/MB/GB suffix), or off (None); `default` when not given."""
    if text is None:
        return default
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return parse_size(text)
    except CliFailure:
        raise CliFailure(f"invalid {option} {text!r}: expected bytes, a number with "
                         "KiB/MiB/GiB (or KB/MB/GB), or off", code=2) from None


def _gen1(text: str) -> float:
    if text not in GEN1_DURATIONS:
        raise CliFailure(f"invalid --gen1-duration {text!r}: expected one of 1m, 5m, 10m", code=2)
    return GEN1_DURATIONS[text]


def _memory_size(text: str, option: str) -> int:
    """Bytes (with an optional KiB/MiB/GiB or KB/MB/GB suffix) or a percentage of physical memory."""
    value = text.strip()
    if value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            percent = -1.0
        if not 0 < percent <= 100:
            raise CliFailure(f"invalid {option} {text!r}: a percentage is 0-100%", code=2)
        return int(physical_memory() * percent / 100)
    try:
        return parse_size(value)
    except CliFailure:
        raise CliFailure(f"invalid {option} {text!r}: expected bytes, a number with KiB/MiB/GiB "
                         "(or KB/MB/GB), or a percentage of memory", code=2) from None


def _optional_path(text: str | None) -> Path | None:
    return Path(text) if text else None


def _cluster(flags: ServeFlags) -> dict[str, object]:
    """`--cluster-id`, `--mode` and `--node-address`: the Config fields of a node's place in its cluster."""
    cluster_id = _text(flags.cluster_id, "CLUSTER_ID", "ENTERPRISE_CLUSTER_ID")
    mode = _text(flags.mode, "MODE", "ENTERPRISE_MODE", default="all") or "all"
    try:
        return {"cluster_id": check_id("--cluster-id", cluster_id) if cluster_id is not None else None,
                "modes": parse_modes(mode), "node_address": _text(flags.node_address, "NODE_ADDRESS")}
    except LakefluxError as exc:
        raise CliFailure(exc.message, code=2) from None


def build_config(flags: ServeFlags) -> Config:
    """Resolve every serve setting (flag, then env, then default) into a validated `Config`."""
    store = _object_store(flags)
    config = Config(
        node_id=_text(flags.node_id, "NODE_IDENTIFIER_PREFIX", "HOST_IDENTIFIER_PREFIX", default="node0") or "node0",
        **_cluster(flags),  # type: ignore[arg-type]
        catalog_sync_interval=_seconds(
            _text(flags.catalog_sync_interval, "CATALOG_SYNC_INTERVAL", default="1s") or "1s",
            "--catalog-sync-interval"),
        replication_interval=_seconds(
            _text(flags.replication_interval, "REPLICATION_INTERVAL", default="250ms") or "250ms",
            "--replication-interval"),
        compaction_check_interval=_seconds(
            _text(flags.compaction_check_interval, "COMPACTION_CHECK_INTERVAL", default="10s") or "10s",
            "--compaction-check-interval"),
        compaction_cleanup_wait=_seconds(
            _text(flags.compaction_cleanup_wait, "COMPACTION_CLEANUP_WAIT", default="10m") or "10m",
            "--compaction-cleanup-wait"),
        compaction_row_limit=_int(flags.compaction_row_limit, "--compaction-row-limit", "COMPACTION_ROW_LIMIT",
                                  Config.compaction_row_limit),
        object_store=store,
        data_dir=Path(_text(flags.data_dir, "DB_DIR", default=DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR),
        s3=_s3_settings(flags, store),
        http_bind=_text(flags.http_bind, "HTTP_BIND_ADDR", default=DEFAULT_BIND) or DEFAULT_BIND,
        without_auth=_bool(flags.without_auth, "--without-auth", "START_WITHOUT_AUTH", "WITHOUT_AUTH"),
        manual_admin_token=_bool(flags.manual_admin_token, "--manual-admin-token", "MANUAL_ADMIN_TOKEN"),
        disable_authz=_choices(_text(flags.disable_authz, "DISABLE_AUTHZ"), "--disable-authz", AUTHZ_EXEMPT),
        plugin_dir=_optional_path(_text(flags.plugin_dir, "PLUGIN_DIR")),
        plugin_repo=_text(flags.plugin_repo, "PLUGIN_REPO", default=Config.plugin_repo) or Config.plugin_repo,
        virtual_env=_optional_path(
            _text(flags.virtual_env_location, "VIRTUAL_ENV_LOCATION", "VIRTUAL_ENV") or os.environ.get("VIRTUAL_ENV")
        ),
        package_manager=_choice(
            _text(flags.package_manager, "PACKAGE_MANAGER", default="discover") or "discover",
            "--package-manager",
            PACKAGE_MANAGERS,
        ),
        restrict_plugin_triggers_to=_choices(
            _text(flags.restrict_plugin_triggers_to, "RESTRICT_PLUGIN_TRIGGERS_TO"),
            "--restrict-plugin-triggers-to",
            TRIGGER_KINDS,
        ),
        plugin_timeout=_seconds_or_off(_text(flags.plugin_timeout, "PLUGIN_TIMEOUT"), "--plugin-timeout"),
        plugin_wal_backlog_limit=_size_or_off(_text(flags.plugin_wal_backlog_limit, "PLUGIN_WAL_BACKLOG_LIMIT"),
                                              "--plugin-wal-backlog-limit", Config.plugin_wal_backlog_limit),
        wal_flush_interval=_seconds(
            _text(flags.wal_flush_interval, "WAL_FLUSH_INTERVAL", default="1s") or "1s", "--wal-flush-interval"
        ),
        wal_flush_size=_int(flags.wal_flush_size, "--wal-flush-size", "WAL_FLUSH_SIZE", Config.wal_flush_size),
        wal_max_write_buffer_size=_int(
            flags.wal_max_write_buffer_size,
            "--wal-max-write-buffer-size",
            "WAL_MAX_WRITE_BUFFER_SIZE",
            Config.wal_max_write_buffer_size,
        ),
        gen1_duration=_gen1(_text(flags.gen1_duration, "GEN1_DURATION", default="10m") or "10m"),
        max_http_request_size=_int(
            flags.max_http_request_size, "--max-http-request-size", "MAX_HTTP_REQUEST_SIZE", DEFAULT_MAX_REQUEST
        ),
        max_write_bytes_in_flight=_size_or_off(
            _text(flags.max_write_bytes_in_flight, "MAX_WRITE_BYTES_IN_FLIGHT"), "--max-write-bytes-in-flight",
            Config.max_write_bytes_in_flight),
        wal_replay_fail_on_error=_bool(
            flags.wal_replay_fail_on_error, "--wal-replay-fail-on-error", "WAL_REPLAY_FAIL_ON_ERROR"
        ),
        query_log_size=_int(flags.query_log_size, "--query-log-size", "QUERY_LOG_SIZE", Config.query_log_size),
        query_timeout=_seconds_or_off(_text(flags.query_timeout, "QUERY_TIMEOUT"), "--query-timeout",
                                      Config.query_timeout),
        max_concurrent_queries=_int(flags.max_concurrent_queries, "--max-concurrent-queries",
                                    "MAX_CONCURRENT_QUERIES", Config.max_concurrent_queries),
        http_read_header_timeout=_seconds(
            _text(flags.http_read_header_timeout, "HTTP_READ_HEADER_TIMEOUT", default="10s") or "10s",
            "--http-read-header-timeout"),
        http_read_timeout=_seconds(_text(flags.http_read_timeout, "HTTP_READ_TIMEOUT", default="5m") or "5m",
                                   "--http-read-timeout"),
        http_idle_timeout=_seconds(_text(flags.http_idle_timeout, "HTTP_IDLE_TIMEOUT", default="3m") or "3m",
                                   "--http-idle-timeout"),
        http_max_connections=_int(flags.http_max_connections, "--http-max-connections", "HTTP_MAX_CONNECTIONS",
                                  Config.http_max_connections, minimum=8),
        shutdown_grace_period=_seconds(
            _text(flags.shutdown_grace_period, "SHUTDOWN_GRACE_PERIOD", default="20s") or "20s",
            "--shutdown-grace-period"),
        snapshot_memory_bytes=_memory_size(
            _text(flags.force_snapshot_mem_threshold, "FORCE_SNAPSHOT_MEM_THRESHOLD", default="256MiB") or "256MiB",
            "--force-snapshot-mem-threshold"),
        exec_mem_pool_bytes=_memory_size(
            _text(flags.exec_mem_pool_bytes, "EXEC_MEM_POOL_BYTES", default="20%") or "20%", "--exec-mem-pool-bytes"),
        snapshotted_wal_files_to_keep=_int(
            flags.snapshotted_wal_files_to_keep, "--snapshotted-wal-files-to-keep", "SNAPSHOTTED_WAL_FILES_TO_KEEP",
            Config.snapshotted_wal_files_to_keep, minimum=0),
        wal_snapshot_size=_optional_int(flags.wal_snapshot_size, "--wal-snapshot-size", "WAL_SNAPSHOT_SIZE"),
        hard_delete_default_duration=_seconds(
            _text(flags.hard_delete_default_duration, "HARD_DELETE_DEFAULT_DURATION", default="72h") or "72h",
            "--hard-delete-default-duration",
        ),
        delta_log_retention=_log_retention(_text(flags.delta_log_retention, "DELTA_LOG_RETENTION", default="30d")),
    )
    try:
        config.host_port  # noqa: B018 - validates --http-bind now rather than when the server binds
    except LakefluxError as exc:
        raise CliFailure(exc.message, code=2) from None
    return config


def unused_flags(extra: list[str]) -> list[str]:
    """Check the extra serve arguments: known InfluxDB flags are returned (to warn about); others refused."""
    names: list[str] = []
    position = 0
    while position < len(extra):
        token = extra[position]
        position += 1
        if not token.startswith("--"):
            raise CliFailure(f"unexpected argument {token!r}", code=2)
        name, has_value, _ = token[2:].partition("=")
        if name in REFUSED_FLAGS:
            raise CliFailure(f"--{name} is not supported: {REFUSED_FLAGS[name]}", code=2)
        if name in UNUSED_VALUE_FLAGS:
            if not has_value:
                if position >= len(extra):
                    raise CliFailure(f"--{name} needs a value", code=2)
                position += 1
        elif name not in UNUSED_SWITCH_FLAGS:
            raise CliFailure(f"unknown option --{name} (see lakeflux serve --help)", code=2)
        names.append(f"--{name}")
    return names


def _opt(*decls: str, env_name: str = "", help: str = "") -> typer.models.OptionInfo:  # noqa: A002
    suffix = f" [env: LAKEFLUX_{env_name}, INFLUXDB3_{env_name}]" if env_name else ""
    return typer.Option(*decls, help=help + suffix)


def serve_command(
    ctx: typer.Context,
    node_id: Annotated[str | None, _opt("--node-id", "--host-id", env_name="NODE_IDENTIFIER_PREFIX",
                                        help="Node identifier; the WAL and catalog prefix [default: node0]")] = None,
    cluster_id: Annotated[str | None, _opt(
        "--cluster-id", env_name="CLUSTER_ID",
        help="Cluster the node joins: the prefix of the catalog and node registry its nodes share "
             "[default: the node id, a cluster of one]")] = None,
    mode: Annotated[str | None, _opt(
        "--mode", env_name="MODE",
        help=f"What this node does: all, or a comma-separated list of {', '.join(MODES)} [default: all]")] = None,
    node_address: Annotated[str | None, _opt(
        "--node-address", env_name="NODE_ADDRESS",
        help="URL other nodes and `lakeflux show nodes` give for this node [default: http://<--http-bind>]")] = None,
    catalog_sync_interval: Annotated[str | None, _opt(
        "--catalog-sync-interval", env_name="CATALOG_SYNC_INTERVAL",
        help="A cluster node applies the other nodes' catalog changes at least this often [default: 1s]")] = None,
    replication_interval: Annotated[str | None, _opt(
        "--replication-interval", env_name="REPLICATION_INTERVAL",
        help="A query node looks for each ingest node's next WAL segment this often [default: 250ms]")] = None,
    compaction_check_interval: Annotated[str | None, _opt(
        "--compaction-check-interval", env_name="COMPACTION_CHECK_INTERVAL",
        help="A compact-mode node looks for sealed files to compact this often [default: 10s]")] = None,
    compaction_cleanup_wait: Annotated[str | None, _opt(
        "--compaction-cleanup-wait", env_name="COMPACTION_CLEANUP_WAIT",
        help="Compacted files replaced by a later compaction are deleted after this long [default: 10m]")] = None,
    compaction_row_limit: Annotated[int | None, _opt(
        "--compaction-row-limit", env_name="COMPACTION_ROW_LIMIT",
        help="Rows per compacted file at most [default: 1000000]")] = None,
    object_store: Annotated[str | None, _opt("--object-store", env_name="OBJECT_STORE",
                                             help="memory | file | s3 [default: file]")] = None,
    data_dir: Annotated[str | None, _opt("--data-dir", env_name="DB_DIR",
                                         help="Directory of the file store and the admin token [default: ./data]")] = None,
    bucket: Annotated[str | None, _opt("--bucket", env_name="BUCKET", help="S3 bucket")] = None,
    aws_access_key_id: Annotated[str | None, _opt("--aws-access-key-id", help="[env: AWS_ACCESS_KEY_ID]")] = None,
    aws_secret_access_key: Annotated[
        str | None, _opt("--aws-secret-access-key", help="[env: AWS_SECRET_ACCESS_KEY]")
    ] = None,
    aws_default_region: Annotated[str | None, _opt("--aws-default-region", help="[env: AWS_DEFAULT_REGION]")] = None,
    aws_endpoint: Annotated[str | None, _opt("--aws-endpoint", help="S3 endpoint URL [env: AWS_ENDPOINT]")] = None,
    aws_session_token: Annotated[str | None, _opt("--aws-session-token", help="[env: AWS_SESSION_TOKEN]")] = None,
    aws_allow_http: Annotated[bool | None, _opt("--aws-allow-http", help="Allow http:// S3 endpoints")] = None,
    http_bind: Annotated[str | None, _opt("--http-bind", env_name="HTTP_BIND_ADDR",
                                          help=f"HOST:PORT to listen on [default: {DEFAULT_BIND}]")] = None,
    without_auth: Annotated[bool | None, _opt("--without-auth", env_name="START_WITHOUT_AUTH",
                                              help="Serve without authentication")] = None,
    manual_admin_token: Annotated[bool | None, _opt(
        "--manual-admin-token", env_name="MANUAL_ADMIN_TOKEN",
        help="Start without an admin token, as InfluxDB 3 Core does: the first POST "
             "/api/v3/configure/token/admin (no credentials needed) or `lakeflux create token --admin` creates it")] = None,
    disable_authz: Annotated[str | None, _opt("--disable-authz", env_name="DISABLE_AUTHZ",
                                              help="Routes open without a token: health,ping,metrics")] = None,
    plugin_dir: Annotated[str | None, _opt("--plugin-dir", env_name="PLUGIN_DIR",
                                           help="Plugin directory; none turns the processing engine off")] = None,
    plugin_repo: Annotated[str | None, _opt("--plugin-repo", env_name="PLUGIN_REPO",
                                            help="Base URL for gh: plugins")] = None,
    virtual_env_location: Annotated[str | None, _opt("--virtual-env-location",
                                                     help="Plugin venv [env: VIRTUAL_ENV]")] = None,
    package_manager: Annotated[str | None, _opt("--package-manager", env_name="PACKAGE_MANAGER",
                                                help="discover | pip | uv | disabled")] = None,
    restrict_plugin_triggers_to: Annotated[str | None, _opt(
        "--restrict-plugin-triggers-to", env_name="RESTRICT_PLUGIN_TRIGGERS_TO",
        help="Allowed trigger kinds, e.g. wal,schedule,request")] = None,
    plugin_timeout: Annotated[str | None, _opt("--plugin-timeout", env_name="PLUGIN_TIMEOUT",
                                               help="Interrupt plugin calls after this long [default: off]")] = None,
    plugin_wal_backlog_limit: Annotated[str | None, _opt(
        "--plugin-wal-backlog-limit", env_name="PLUGIN_WAL_BACKLOG_LIMIT",
        help="WAL a lagging WAL trigger may hold back before it skips its oldest segments, e.g. 512MiB, "
             "or off [default: 1GiB]")] = None,
    wal_flush_interval: Annotated[str | None, _opt("--wal-flush-interval", env_name="WAL_FLUSH_INTERVAL",
                                                   help="WAL commit interval [default: 1s]")] = None,
    wal_flush_size: Annotated[int | None, _opt("--wal-flush-size", env_name="WAL_FLUSH_SIZE",
                                               help="Commit early at this many buffered rows when no other write is arriving, "
                                                    "at twice this many in any case [default: 5000]")] = None,
    wal_max_write_buffer_size: Annotated[int | None, _opt(
        "--wal-max-write-buffer-size", env_name="WAL_MAX_WRITE_BUFFER_SIZE",
        help="Buffered rows before writes get 503 [default: 100000]")] = None,
    gen1_duration: Annotated[str | None, _opt("--gen1-duration", env_name="GEN1_DURATION",
                                              help="Parquet file time span: 1m | 5m | 10m [default: 10m]")] = None,
    max_http_request_size: Annotated[int | None, _opt(
        "--max-http-request-size", env_name="MAX_HTTP_REQUEST_SIZE", help="[default: 10485760]")] = None,
    max_write_bytes_in_flight: Annotated[str | None, _opt(
        "--max-write-bytes-in-flight", env_name="MAX_WRITE_BYTES_IN_FLIGHT",
        help="Write bodies read but not yet answered, e.g. 512MiB, or off; past it writes get 503 + Retry-After "
             "[default: 256MiB]")] = None,
    wal_replay_fail_on_error: Annotated[bool | None, _opt(
        "--wal-replay-fail-on-error", env_name="WAL_REPLAY_FAIL_ON_ERROR",
        help="Stop at a corrupt WAL segment instead of skipping it")] = None,
    query_log_size: Annotated[int | None, _opt("--query-log-size", env_name="QUERY_LOG_SIZE",
                                               help="Rows kept in system.queries [default: 1000]")] = None,
    query_timeout: Annotated[str | None, _opt(
        "--query-timeout", env_name="QUERY_TIMEOUT",
        help="Stop a query still running after this long (504), or off [default: 300s]")] = None,
    max_concurrent_queries: Annotated[int | None, _opt(
        "--max-concurrent-queries", env_name="MAX_CONCURRENT_QUERIES",
        help="Queries running at once; more get 503 + Retry-After [default: 16]")] = None,
    exec_mem_pool_bytes: Annotated[str | None, _opt(
        "--exec-mem-pool-bytes", env_name="EXEC_MEM_POOL_BYTES",
        help="Query memory shared by all running queries: bytes, 2GiB or 20% of memory; past it a query fails "
             "(422) [default: 20%]")] = None,
    http_read_header_timeout: Annotated[str | None, _opt(
        "--http-read-header-timeout", env_name="HTTP_READ_HEADER_TIMEOUT",
        help="Close a connection whose request head (or a pause in its body) takes longer [default: 10s]")] = None,
    http_read_timeout: Annotated[str | None, _opt(
        "--http-read-timeout", env_name="HTTP_READ_TIMEOUT",
        help="Close a connection whose whole request (head and body) takes longer [default: 5m]")] = None,
    http_idle_timeout: Annotated[str | None, _opt(
        "--http-idle-timeout", env_name="HTTP_IDLE_TIMEOUT",
        help="Close a keep-alive connection idle this long [default: 3m]")] = None,
    http_max_connections: Annotated[int | None, _opt(
        "--http-max-connections", env_name="HTTP_MAX_CONNECTIONS",
        help="Open connections at most (the longest-idle one is closed to make room; also bounded by the "
             "file-handle limit) [default: 4096]")] = None,
    shutdown_grace_period: Annotated[str | None, _opt(
        "--shutdown-grace-period", env_name="SHUTDOWN_GRACE_PERIOD",
        help="On SIGTERM: cancel queries, commit pending writes, and exit within this long [default: 20s]")] = None,
    hard_delete_default_duration: Annotated[str | None, _opt(
        "--hard-delete-default-duration", env_name="HARD_DELETE_DEFAULT_DURATION",
        help="Delay before a soft-deleted object is removed [default: 72h]")] = None,
    delta_log_retention: Annotated[str | None, _opt(
        "--delta-log-retention", env_name="DELTA_LOG_RETENTION",
        help="Delta log files (old commits, checkpoints) older than this go after a newer checkpoint: at "
             "least 1h, or off to keep them all [default: 30d]")] = None,
    force_snapshot_mem_threshold: Annotated[str | None, _opt(
        "--force-snapshot-mem-threshold", env_name="FORCE_SNAPSHOT_MEM_THRESHOLD",
        help="Snapshot once buffered rows use this much memory: bytes, 256MiB or 10% [default: 256MiB]")] = None,
    snapshotted_wal_files_to_keep: Annotated[int | None, _opt(
        "--snapshotted-wal-files-to-keep", env_name="SNAPSHOTTED_WAL_FILES_TO_KEEP",
        help="WAL segments kept after a snapshot covers them [default: 300]")] = None,
    wal_snapshot_size: Annotated[int | None, _opt(
        "--wal-snapshot-size", env_name="WAL_SNAPSHOT_SIZE",
        help="Snapshot after this many WAL segments [default: gen1 duration / WAL flush interval, 600]")] = None,
) -> None:
    """Run the lakeflux server (blocks until SIGINT or SIGTERM)."""
    given = dict(locals())
    values = {f.name: given[f.name] for f in fields(ServeFlags) if given[f.name] is not None}
    config = build_config(ServeFlags(**values))
    for name in unused_flags(list(ctx.args)):
        warn(f"{name} is accepted for InfluxDB compatibility but has no effect in lakeflux")
    start_server(config)


def start_server(config: Config) -> None:
    """Import the server only now (it pulls in aiohttp, DataFusion, ...) and run it until stopped."""
    try:
        from lakeflux.server.main import run
    except ImportError as exc:
        raise CliFailure(f"the lakeflux server is not available: {exc}") from None
    try:
        run(config)
    except LakefluxError as exc:
        raise CliFailure(exc.message) from None
    except KeyboardInterrupt:
        pass
