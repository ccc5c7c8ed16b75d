"""Limits and hardening (issue 7, CONTRACT §4.1-4.3): request size, line length, columns per table, tables
per database and databases (422 with InfluxDB's messages), many parallel queries during writes, read-only
SQL, plugin paths confined to the plugin dir, secrets kept out of the logs."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from lakeflux.catalog.state import MAX_COLUMNS_PER_TABLE, MAX_DATABASES, MAX_TABLES_PER_DB
from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.process import ServerProcess
from lakeflux.testing.server import InProcessServer, Reply

TRIGGER_ROUTE = "/api/v3/configure/processing_engine_trigger"


@pytest.fixture
def srv(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "ok.py").write_text("def process_writes(influxdb3_local, table_batches, args=None):\n    pass\n")
    (tmp_path / "outside.py").write_text("def process_writes(influxdb3_local, table_batches, args=None):\n    pass\n")
    os.symlink(tmp_path / "outside.py", plugin_dir / "link.py")
    config = Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.005, without_auth=True,
                    plugin_dir=plugin_dir,
                    max_http_request_size=1024 * 1024)
    with InProcessServer(config, store=MemoryStore()) as server:
        yield server


def test_request_size_limit(srv):
    ok = ("m f=1i\n" * 100_000).encode()[: 1024 * 1024 - 10]
    ok = ok[: ok.rindex(b"\n")]
    assert srv.request("POST", "/api/v3/write_lp?db=db", ok).status == 204
    reply = srv.request("POST", "/api/v3/write_lp?db=db", b"m f=1i\n" * 200_000)
    assert reply.status == 413 and "limit" in reply.json()["error"]


def test_very_long_line(srv):
    fits = "x" * 60_000
    assert srv.write("db", f'long s="{fits}" 1').status == 204
    assert srv.query("db", "SELECT length(s) AS n FROM long") == [{"n": 60_000}]
    reply = srv.write("db", f'long s="{"x" * 900_000}" 2')  # InfluxDB's 64 KiB string limit
    assert reply.status == 400
    error = reply.json()["data"][0]
    assert error["error_message"] == "String is greater than 64KB" and error["line_number"] == 1
    assert len(error["original_line"]) <= 1024
    reply = srv.write("db", f"long,{'t' * 500_000}= s=1", accept_partial="false")
    assert reply.status == 400
    assert len(reply.json()["data"]["original_line"]) <= 1024


def test_columns_per_table(srv):
    fields = ",".join(f"f{i}=1i" for i in range(MAX_COLUMNS_PER_TABLE))  # + time: one too many
    reply = srv.write("db", f"wide {fields} 1", accept_partial="false")
    assert reply.status == 422, reply.body
    assert reply.json()["error"].startswith(
        f"Update to schema would exceed number of columns per table ({MAX_COLUMNS_PER_TABLE})")
    fits = ",".join(f"f{i}=1i" for i in range(MAX_COLUMNS_PER_TABLE - 1))
    assert srv.write("db", f"wide {fits} 1").status == 204
    assert srv.write("db", "wide one_more=1i 2", accept_partial="false").status == 422


def test_tables_per_database(srv):
    # Created through the catalog: one write creating thousands of tables is slow (see the report).
    assert srv.write("db", "t0 f=1i 1").status == 204
    srv.services.catalog.commit([{"op": "create_table", "db": "db", "table": f"t{i}", "columns": [["f", "int64"]]}
                                 for i in range(1, MAX_TABLES_PER_DB)])
    reply = srv.write("db", "one_more f=1i 1", accept_partial="false")
    assert reply.status == 422
    assert reply.json()["error"] == (
        f"Update to schema would exceed number of tables allowed per database ({MAX_TABLES_PER_DB})")
    assert srv.write("db", "t0 f=2i 2").status == 204  # existing tables still take writes


def test_databases(srv):
    existing = len([d for d in srv.services.catalog.state.databases.values() if not d.deleted])
    for i in range(MAX_DATABASES - existing):
        assert srv.write(f"db{i}", "m f=1i 1").status == 204
    reply = srv.write("toomany", "m f=1i 1")
    assert reply.status == 422
    assert reply.json()["error"] == f"Adding a new database would exceed limit of {MAX_DATABASES} databases"


def test_parallel_queries_during_writes(srv):
    assert srv.write("db", "\n".join(f"q,k=k{i % 7} v={i}i {i + 1}" for i in range(1000))).status == 204
    stop = threading.Event()
    failures: list[str] = []

    def writer() -> None:
        n = 10_000
        while not stop.is_set():
            if srv.write("db", f"w v={n}i {n}").status != 204:
                failures.append("write")
            n += 1

    def ask() -> Reply:
        return srv.request("POST", "/api/v3/query_sql", {
            "db": "db", "q": "SELECT k, count(*) AS n, sum(v) AS s FROM q GROUP BY k ORDER BY k"})

    def reader() -> None:
        for _ in range(6):
            reply = ask()
            while reply.status == 503 and "Retry-After" in reply.headers:  # past --max-concurrent-queries
                time.sleep(0.05)
                reply = ask()
            if reply.status != 200 or sum(r["n"] for r in reply.json()) != 1000:
                failures.append(f"{reply.status} {reply.body[:200]!r}")

    w = threading.Thread(target=writer)
    w.start()
    readers = [threading.Thread(target=reader) for _ in range(24)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(120)
    stop.set()
    w.join(60)
    assert failures == []


@pytest.mark.parametrize("sql", [
    "CREATE TABLE x AS SELECT 1", "CREATE TABLE y (a INT)", "INSERT INTO q VALUES ('a', 1, now())",
    "DROP TABLE q", "DELETE FROM q", "UPDATE q SET v = 1", "COPY q TO '/tmp/lakeflux-escape.csv'",
    "COPY (SELECT 1) TO '/tmp/lakeflux-escape.parquet'", "SET datafusion.execution.batch_size = 1",
    "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'", "CREATE VIEW v AS SELECT 1",
    "SELECT * FROM '/etc/passwd'", "CREATE SCHEMA s", "DROP SCHEMA iox",
])
def test_sql_is_read_only(srv, sql):
    assert srv.write("db", "q,k=a v=1i 1").status == 204
    reply = srv.request("POST", "/api/v3/query_sql", {"db": "db", "q": sql})
    assert reply.status == 400, (sql, reply.status, reply.body)
    assert not os.path.exists("/tmp/lakeflux-escape.csv") and not os.path.exists("/tmp/lakeflux-escape.parquet")
    assert srv.query("db", "SELECT count(*) AS n FROM q") == [{"n": 1}]


@pytest.mark.parametrize("name", ["../outside.py", "/etc/passwd", "sub/../../outside.py", "link.py",
                                  "..\\outside.py"])
def test_plugin_paths_stay_in_the_plugin_dir(srv, tmp_path, name):
    assert srv.write("db", "m f=1i").status == 204
    reply = srv.request("POST", TRIGGER_ROUTE, {"db": "db", "trigger_name": "t", "plugin_filename": name,
                                                "trigger_specification": "all_tables"})
    assert reply.status in (400, 404), (name, reply.body)
    upload = srv.request("POST", "/api/v3/plugins/files", {"plugin_name": name, "content": "x = 1\n"})
    assert upload.status in (400, 403, 404), (name, upload.status, upload.body)
    assert (tmp_path / "outside.py").read_text().startswith("def process_writes")
    ok = srv.request("POST", TRIGGER_ROUTE, {"db": "db", "trigger_name": "t", "plugin_filename": "ok.py",
                                             "trigger_specification": "all_tables"})
    assert ok.status == 200, ok.body


def test_tokens_never_logged_in_process(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    config = Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.005, without_auth=False)
    with InProcessServer(config, store=MemoryStore()) as srv:
        token = srv.token
        assert token
        assert srv.write("db", "m f=1i").status == 204
        srv.request("POST", f"/write?db=db&p={token}", b"m f=2i", auth=False)
        srv.request("GET", "/api/v3/query_sql?db=db&q=SELECT%201", headers={"Authorization": f"Token {token}x"})
        srv.request("GET", "/api/v3/query_sql?db=db&q=SELEC", headers={"Authorization": f"Bearer {token}"})
        created = srv.request("POST", "/api/v3/configure/token/admin/regenerate").json()
    secrets = [token, created.get("token", token)]
    assert not [r.getMessage() for r in caplog.records if any(s in r.getMessage() for s in secrets)]


@pytest.mark.slow
@pytest.mark.s3
def test_s3_secret_not_in_server_log(tmp_path, s3_endpoint):
    secret = "lakeflux-secret-" + os.urandom(6).hex()
    srv = ServerProcess(tmp_path / "data", "--without-auth", "--object-store", "s3", "--bucket", s3_endpoint.bucket,
                        "--aws-endpoint", s3_endpoint.endpoint_url, "--aws-allow-http", "--aws-access-key-id",
                        s3_endpoint.access_key, "--aws-secret-access-key", secret, "--aws-default-region",
                        s3_endpoint.region, "--wal-flush-interval", "10ms").start()
    try:
        from lakeflux.testing.chaos import post, query

        assert post(f"{srv.url}/api/v3/write_lp?db=db", b"m f=1i").status == 204
        assert query(srv.url, "db", "SELECT count(*) AS n FROM m") == [{"n": 1}]
    finally:
        srv.stop()
    assert secret not in srv.log_path.read_text(errors="replace")
