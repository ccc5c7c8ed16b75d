"""`serve` flags → Config: defaults, every flag, env precedence, validation, unused InfluxDB flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lakeflux.cli.main import app
from lakeflux.cli.output import CliFailure
from lakeflux.cli.serve import ServeFlags, build_config, unused_flags
from lakeflux.config import Config, S3Settings, physical_memory
from lakeflux.server.services import snapshot_segments


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEFLUX_DB_DIR")
    config = build_config(ServeFlags())
    assert config == Config(without_auth=False, data_dir=Path("data"))
    assert config.http_bind == "127.0.0.1:8181"
    assert config.plugin_dir is None and config.plugin_timeout is None


def test_every_flag_maps_to_config() -> None:
    flags = ServeFlags(
        node_id="n1", object_store="s3", data_dir="/srv/lf", bucket="b", aws_access_key_id="ak",
        aws_secret_access_key="sk", aws_default_region="eu-west-1", aws_endpoint="http://127.0.0.1:9000",
        aws_session_token="st", aws_allow_http=True, http_bind="0.0.0.0:9999", without_auth=True,
        disable_authz="health,ping", plugin_dir="/srv/plugins", plugin_repo="http://mirror/",
        virtual_env_location="/srv/venv", package_manager="uv", restrict_plugin_triggers_to="wal,request",
        plugin_timeout="30s", wal_flush_interval="250ms", wal_flush_size=500, wal_max_write_buffer_size=7,
        gen1_duration="5m", max_http_request_size=1024, wal_replay_fail_on_error=True, query_log_size=9,
        hard_delete_default_duration="1d", wal_snapshot_size=50, delta_log_retention="7d",
    )
    assert build_config(flags) == Config(
        node_id="n1", object_store="s3", data_dir=Path("/srv/lf"),
        s3=S3Settings(bucket="b", endpoint="http://127.0.0.1:9000", region="eu-west-1", access_key_id="ak",
                      secret_access_key="sk", session_token="st", allow_http=True),
        http_bind="0.0.0.0:9999", without_auth=True, disable_authz=("health", "ping"),
        plugin_dir=Path("/srv/plugins"), plugin_repo="http://mirror/", virtual_env=Path("/srv/venv"),
        package_manager="uv", restrict_plugin_triggers_to=("wal", "request"), plugin_timeout=30.0,
        wal_flush_interval=0.25, wal_flush_size=500, wal_max_write_buffer_size=7, gen1_duration=300.0,
        max_http_request_size=1024, wal_replay_fail_on_error=True, query_log_size=9,
        hard_delete_default_duration=86400.0, wal_snapshot_size=50, delta_log_retention=7 * 86400.0,
    )


def test_env_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUXDB3_NODE_IDENTIFIER_PREFIX", "influx-node")
    monkeypatch.setenv("INFLUXDB3_HTTP_BIND_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("LAKEFLUX_HTTP_BIND_ADDR", "127.0.0.1:2")
    monkeypatch.setenv("INFLUXDB3_START_WITHOUT_AUTH", "true")
    monkeypatch.setenv("LAKEFLUX_WAL_FLUSH_INTERVAL", "2s")
    monkeypatch.setenv("INFLUXDB3_GEN1_DURATION", "1m")
    monkeypatch.setenv("LAKEFLUX_QUERY_LOG_SIZE", "5")
    config = build_config(ServeFlags())
    assert config.node_id == "influx-node"
    assert config.http_bind == "127.0.0.1:2"
    assert config.without_auth is True
    assert (config.wal_flush_interval, config.gen1_duration, config.query_log_size) == (2.0, 60.0, 5)
    flagged = build_config(ServeFlags(node_id="flag", http_bind="127.0.0.1:3", without_auth=False, query_log_size=6))
    assert (flagged.node_id, flagged.http_bind, flagged.without_auth, flagged.query_log_size) == (
        "flag", "127.0.0.1:3", False, 6)


def test_plain_aws_and_virtual_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "plain")
    monkeypatch.setenv("AWS_ENDPOINT", "http://s3.local")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("LAKEFLUX_AWS_ACCESS_KEY_ID", "prefixed")
    monkeypatch.setenv("VIRTUAL_ENV", "/venv")
    config = build_config(ServeFlags(object_store="s3", bucket="b"))
    assert config.s3.access_key_id == "prefixed"
    assert config.s3.endpoint == "http://s3.local"
    assert config.s3.allow_http is True
    assert config.virtual_env == Path("/venv")


@pytest.mark.parametrize(("flags", "message"), [
    (ServeFlags(object_store="s3"), "needs --bucket"),
    (ServeFlags(object_store="azure"), "not supported"),
    (ServeFlags(object_store="disk"), "invalid --object-store"),
    (ServeFlags(gen1_duration="2m"), "expected one of 1m, 5m, 10m"),
    (ServeFlags(wal_flush_interval="soon"), "invalid --wal-flush-interval"),
    (ServeFlags(package_manager="conda"), "invalid --package-manager"),
    (ServeFlags(restrict_plugin_triggers_to="wal,cron"), "invalid --restrict-plugin-triggers-to"),
    (ServeFlags(disable_authz="write"), "invalid --disable-authz"),
    (ServeFlags(http_bind="8181"), "expected HOST:PORT"),
    (ServeFlags(query_log_size=0), "must be at least 1"),
    (ServeFlags(delta_log_retention="30m"), "invalid --delta-log-retention '30m': must be at least 1h"),
    (ServeFlags(delta_log_retention="soon"), "invalid --delta-log-retention"),
])
def test_invalid_settings(flags: ServeFlags, message: str) -> None:
    with pytest.raises(CliFailure, match=message):
        build_config(flags)


def test_delta_log_retention_default_off_and_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_config(ServeFlags()).delta_log_retention == 30 * 86400.0
    assert build_config(ServeFlags(delta_log_retention="1h")).delta_log_retention == 3600.0
    assert build_config(ServeFlags(delta_log_retention="off")).delta_log_retention is None
    monkeypatch.setenv("LAKEFLUX_DELTA_LOG_RETENTION", "none")
    assert build_config(ServeFlags()).delta_log_retention is None


def test_invalid_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEFLUX_WAL_FLUSH_SIZE", "lots")
    with pytest.raises(CliFailure, match="expected an integer"):
        build_config(ServeFlags())
    monkeypatch.delenv("LAKEFLUX_WAL_FLUSH_SIZE")
    monkeypatch.setenv("LAKEFLUX_WAL_REPLAY_FAIL_ON_ERROR", "maybe")
    with pytest.raises(CliFailure, match="expected true or false"):
        build_config(ServeFlags())


def test_wal_snapshot_size_sets_segments_per_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    assert snapshot_segments(build_config(ServeFlags())) == 600  # 10m gen1 / 1s flushes, as InfluxDB's default
    assert snapshot_segments(build_config(ServeFlags(gen1_duration="1m", wal_flush_interval="500ms"))) == 120
    assert snapshot_segments(build_config(ServeFlags(wal_snapshot_size=20))) == 20
    monkeypatch.setenv("INFLUXDB3_WAL_SNAPSHOT_SIZE", "30")
    assert build_config(ServeFlags()).wal_snapshot_size == 30
    with pytest.raises(CliFailure, match="invalid --wal-snapshot-size 0"):
        build_config(ServeFlags(wal_snapshot_size=0))


def test_plugin_timeout_off_spellings() -> None:
    assert build_config(ServeFlags(plugin_timeout="off")).plugin_timeout is None
    assert build_config(ServeFlags(plugin_timeout="1m")).plugin_timeout == 60.0


def test_unused_influxdb_flags_are_listed_for_warning() -> None:
    assert unused_flags(["--log-filter", "info", "--num-io-threads=4", "--disable-telemetry-upload"]) == [
        "--log-filter", "--num-io-threads", "--disable-telemetry-upload"]
    with pytest.raises(CliFailure, match="unknown option --frobnicate"):
        unused_flags(["--frobnicate"])
    with pytest.raises(CliFailure, match="--log-filter needs a value"):
        unused_flags(["--log-filter"])
    with pytest.raises(CliFailure, match="terminate TLS"):
        unused_flags(["--tls-cert", "c.pem"])


def test_serve_refuses_bad_flags_before_starting(runner: CliRunner) -> None:
    unknown = runner.invoke(app, ["serve", "--object-store", "memory", "--frobnicate"])
    assert unknown.exit_code == 2
    assert "unknown option --frobnicate" in unknown.stderr
    bad = runner.invoke(app, ["serve", "--gen1-duration", "3m"])
    assert bad.exit_code == 2
    assert "invalid --gen1-duration" in bad.stderr
    short = runner.invoke(app, ["serve", "--object-store", "memory", "--delta-log-retention", "10m"])
    assert short.exit_code == 2
    assert "invalid --delta-log-retention '10m': must be at least 1h" in short.stderr


def test_serve_help_lists_env_names(runner: CliRunner) -> None:
    text = runner.invoke(app, ["serve", "--help"]).stdout
    for flag in ("--node-id", "--host-id", "--aws-endpoint", "--hard-delete-default-duration", "--plugin-timeout",
                 "--wal-flush-size", "LAKEFLUX_HTTP_BIND_ADDR"):
        assert flag in text


def test_plugin_wal_backlog_limit_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_config(ServeFlags()).plugin_wal_backlog_limit == 2**30
    assert build_config(ServeFlags(plugin_wal_backlog_limit="512MiB")).plugin_wal_backlog_limit == 512 * 2**20
    assert build_config(ServeFlags(plugin_wal_backlog_limit="off")).plugin_wal_backlog_limit is None
    monkeypatch.setenv("INFLUXDB3_PLUGIN_WAL_BACKLOG_LIMIT", "2GB")
    assert build_config(ServeFlags()).plugin_wal_backlog_limit == 2 * 10**9
    for bad in ("lots", "0", "-1MiB"):
        with pytest.raises(CliFailure, match="invalid --plugin-wal-backlog-limit"):
            build_config(ServeFlags(plugin_wal_backlog_limit=bad))


def test_max_write_bytes_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_config(ServeFlags()).max_write_bytes_in_flight == 256 * 2**20
    assert build_config(ServeFlags(max_write_bytes_in_flight="1MiB")).max_write_bytes_in_flight == 2**20
    assert build_config(ServeFlags(max_write_bytes_in_flight="off")).max_write_bytes_in_flight is None
    monkeypatch.setenv("LAKEFLUX_MAX_WRITE_BYTES_IN_FLIGHT", "64MB")
    assert build_config(ServeFlags()).max_write_bytes_in_flight == 64 * 10**6
    with pytest.raises(CliFailure, match="invalid --max-write-bytes-in-flight"):
        build_config(ServeFlags(max_write_bytes_in_flight="0"))


def test_query_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    config = build_config(ServeFlags())
    assert (config.query_timeout, config.max_concurrent_queries, config.shutdown_grace_period) == (300.0, 16, 20.0)
    config = build_config(ServeFlags(query_timeout="2m", max_concurrent_queries=3, shutdown_grace_period="5s"))
    assert (config.query_timeout, config.max_concurrent_queries, config.shutdown_grace_period) == (120.0, 3, 5.0)
    assert build_config(ServeFlags(query_timeout="off")).query_timeout is None
    monkeypatch.setenv("INFLUXDB3_MAX_CONCURRENT_QUERIES", "7")
    monkeypatch.setenv("LAKEFLUX_QUERY_TIMEOUT", "30s")
    config = build_config(ServeFlags())
    assert (config.query_timeout, config.max_concurrent_queries) == (30.0, 7)
    with pytest.raises(CliFailure, match="--max-concurrent-queries"):
        build_config(ServeFlags(max_concurrent_queries=0))


def test_exec_mem_pool_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_config(ServeFlags()).exec_mem_pool_bytes == physical_memory() // 5
    assert build_config(ServeFlags(exec_mem_pool_bytes="256MiB")).exec_mem_pool_bytes == 256 * 2**20
    assert build_config(ServeFlags(exec_mem_pool_bytes="10%")).exec_mem_pool_bytes == physical_memory() // 10
    monkeypatch.setenv("INFLUXDB3_EXEC_MEM_POOL_BYTES", "1GiB")
    assert build_config(ServeFlags()).exec_mem_pool_bytes == 2**30
    for bad in ("lots", "0", "150%"):
        with pytest.raises(CliFailure, match="invalid --exec-mem-pool-bytes"):
            build_config(ServeFlags(exec_mem_pool_bytes=bad))


def test_http_connection_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    config = build_config(ServeFlags())
    assert (config.http_read_header_timeout, config.http_read_timeout, config.http_idle_timeout,
            config.http_max_connections) == (10.0, 300.0, 180.0, 4096)
    config = build_config(ServeFlags(http_read_header_timeout="2s", http_read_timeout="1m", http_idle_timeout="30s",
                                     http_max_connections=100))
    assert (config.http_read_header_timeout, config.http_read_timeout, config.http_idle_timeout,
            config.http_max_connections) == (2.0, 60.0, 30.0, 100)
    monkeypatch.setenv("LAKEFLUX_HTTP_IDLE_TIMEOUT", "5s")
    assert build_config(ServeFlags()).http_idle_timeout == 5.0
    with pytest.raises(CliFailure, match="--http-max-connections"):
        build_config(ServeFlags(http_max_connections=1))
