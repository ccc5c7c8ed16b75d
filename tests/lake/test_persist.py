"""Fresh data for outside readers (issue 14): `POST /api/v3/persist` and `lakeflux persist` snapshot now, and a
clean stop persists what is buffered, so the Delta tables and a glob hold every committed row."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from delta_reading import DeltaReader, sorted_rows

from lakeflux.config import Config
from lakeflux.store import paths
from lakeflux.testing.process import ServerProcess
from lakeflux.testing.server import InProcessServer

pytest.importorskip("deltalake")

T0 = 1_767_225_600 * 10**9
HOUR = 3_600 * 10**9


def rows(n: int, first: int = 0) -> str:
    return "\n".join(f"cpu,host=h{i % 3} usage={i}.5 {T0 + i * HOUR}" for i in range(first, first + n))


def test_persist_route_makes_buffered_rows_readable(tmp_path):
    reader = DeltaReader(data_dir=tmp_path / "d")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        assert srv.write("mydb", rows(40)).status == 204
        assert srv.write("mydb", rows(10, first=40), no_sync="true").status == 204  # buffered, not committed
        assert srv.write("other", "mem v=1i 1").status == 204
        r = srv.request("POST", "/api/v3/persist", {"db": "mydb", "table": "cpu"})
        assert r.status == 200, r.body
        reply = r.json()
        assert reply["snapshot"] is not None
        assert reply["tables"] == [{"db": "mydb", "table": "cpu", "files": 3, "rows": 50, "delta_version": 0}]
        assert srv.services.buffer.tables.rows == 0  # every table: a snapshot covers them all
        ours = srv.query("mydb", "SELECT host, CAST(time AS BIGINT) AS time, usage FROM cpu")
        assert sorted_rows(reader.rows("mydb", "cpu"), ["host", "time", "usage"]) == sorted(
            (r["host"], r["time"], r["usage"]) for r in ours)
        assert reader.rows("other", "mem").num_rows == 1
        again = srv.request("POST", "/api/v3/persist").json()
        assert again["snapshot"] is None
        assert {(t["db"], t["table"]) for t in again["tables"]} == {("mydb", "cpu"), ("other", "mem")}


@pytest.mark.parametrize(("query", "status", "text"), [
    ("?db=nope", 404, "database not found: nope"),
    ("?db=mydb&table=nope", 404, "table not found: nope in database mydb"),
    ("?table=cpu", 400, "'table' needs 'db'"),
])
def test_persist_route_names_what_is_missing(server, query, status, text):
    assert server.write("mydb", "cpu v=1 1").status == 204
    r = server.request("POST", f"/api/v3/persist{query}")
    assert r.status == status and text in r.json()["error"]


def test_persist_needs_a_token(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        assert srv.request("POST", "/api/v3/persist", auth=False).status == 401


def lakeflux(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "lakeflux", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def post(url: str, path: str, body: bytes) -> None:
    with urllib.request.urlopen(urllib.request.Request(url + path, data=body, method="POST"), timeout=30) as r:
        assert r.status == 204


@pytest.mark.slow
def test_cli_persist_then_a_clean_stop_leave_the_lake_complete(tmp_path):
    data = tmp_path / "data"
    reader = DeltaReader(data_dir=data)
    srv = ServerProcess(data, "--without-auth").start()
    try:
        post(srv.url, "/api/v3/write_lp?db=mydb", rows(30).encode())
        out = lakeflux("persist", "-H", srv.url, "-d", "mydb", "-t", "cpu", cwd=tmp_path)
        assert out.startswith("persisted: snapshot ") and '"mydb"."cpu": 2 files, 30 rows, Delta version 0' in out
        assert reader.rows("mydb", "cpu").num_rows == 30
        listed = json.loads(lakeflux("show", "files", "-H", srv.url, "-d", "mydb", "-t", "cpu", "--format", "json",
                                     cwd=tmp_path))
        assert [(f["table_name"], f["delta_version"]) for f in listed] == [("cpu", 0), ("cpu", 0)]
        prefix = paths.table_prefix("node0", "mydb", "cpu")
        assert sorted(f["path"][len(prefix):] for f in listed) == sorted(
            uri[len(reader.uri("mydb", "cpu")) + 1:] for uri in reader.table("mydb", "cpu").file_uris())
        assert "delta_version" in lakeflux("show", "files", "-H", srv.url, "-d", "mydb", cwd=tmp_path)
        post(srv.url, "/api/v3/write_lp?db=mydb&no_sync=true", rows(20, first=30).encode())
        post(srv.url, "/api/v3/write_lp?db=mydb", rows(5, first=50).encode())
    finally:
        srv.stop()  # SIGTERM: the graceful path persists what is buffered
    assert reader.version("mydb", "cpu") == 1
    assert reader.rows("mydb", "cpu").num_rows == 55
    duckdb = pytest.importorskip("duckdb")
    glob = f"{data}/{paths.table_prefix('node0', 'mydb', 'cpu')}date=*/*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(55,)]


def test_a_server_with_delta_log_retention_off_records_no_retention(tmp_path):
    """`serve --delta-log-retention off`: the tables' metaData names no retention (nothing cleans the log)."""
    data = tmp_path / "data"
    with ServerProcess(data, "--without-auth", "--delta-log-retention", "off") as srv:
        post(srv.url, "/api/v3/write_lp?db=mydb", rows(10).encode())
        assert lakeflux("persist", "-H", srv.url, "-d", "mydb", cwd=tmp_path).startswith("persisted: snapshot ")
    assert DeltaReader(data_dir=data).table("mydb", "cpu").metadata().configuration == {}
