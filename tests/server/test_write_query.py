"""The HTTP API of the core, driven in-process over real HTTP."""

from __future__ import annotations

import gzip

import pytest

from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


def test_write_then_query_roundtrip(server):
    r = server.write("db1", "cpu,host=a usage=1.5,n=3i,ok=true,s=\"x y\" 1700000000000000000\ncpu,host=b usage=2")
    assert r.status == 204, r.body
    rows = server.query("db1", "SELECT host, usage, n, ok, s, time FROM cpu ORDER BY host")
    assert rows[0] == {"host": "a", "usage": 1.5, "n": 3, "ok": True, "s": "x y", "time": "2023-11-14T22:13:20"}
    assert rows[1]["host"] == "b" and "n" not in rows[1]  # null columns are omitted


def test_select_star_columns_sorted_and_types(server):
    server.write("db1", "m,t=x f=1i,a=2.0 10")
    rows = server.query("db1", "SELECT * FROM m")
    assert list(rows[0]) == ["a", "f", "t", "time"]
    cols = server.query("db1", "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_name = 'm' ORDER BY column_name")
    assert cols == [{"column_name": "a", "data_type": "Float64"}, {"column_name": "f", "data_type": "Int64"},
                    {"column_name": "t", "data_type": "Dictionary(Int32, Utf8)"},
                    {"column_name": "time", "data_type": "Timestamp(Nanosecond, None)"}]


def test_show_tables_and_single_quoted_from(server):
    server.write("db1", "cpu v=1 1\n_anomalies.cpu v=2 2")
    tables = server.query("db1", "SHOW TABLES")
    user = [t for t in tables if t["table_schema"] == "iox"]
    assert {t["table_name"] for t in user} == {"cpu", "_anomalies.cpu"}
    assert all(t["table_catalog"] == "public" and t["table_type"] == "BASE TABLE" for t in user)
    assert server.query("db1", "SELECT count(*) AS n FROM 'cpu'") == [{"n": 1}]
    assert server.query("db1", 'SELECT v FROM "_anomalies.cpu"') == [{"v": 2.0}]


def test_partial_write_reports_bad_lines_and_keeps_good(server):
    body = "cpu v=1 1\ncpu v=oops 2\n\ncpu v=3 3"
    r = server.write("db1", body)
    assert r.status == 400
    err = r.json()
    assert err["error"] == "partial write of line protocol occurred"
    assert [d["line_number"] for d in err["data"]] == [2]
    assert err["data"][0]["original_line"] == "cpu v=oops 2"
    assert server.query("db1", "SELECT count(*) AS n FROM cpu") == [{"n": 2}]


def test_a_large_body_keeps_line_numbers_and_rows(server):
    """Errors of a large body name its physical lines (after a string over two lines too), and the good
    rows, that string among them, are all written."""
    lines = [f"cpu,host=h{i % 7} usage={i}.5,n={i}i {i}" for i in range(12_000)]
    lines[100] = "cpu,host=x usage=oops 100"
    lines[11_000] = "cpu,host=y n=1.5 11000"
    lines[9_000] = 'cpu,host=z note="two\nlines" 9000'
    body = "\n".join(lines)
    assert len(body) > 300_000
    r = server.write("db1", body)
    assert r.status == 400, r.body
    assert [(d["line_number"], d["original_line"]) for d in r.json()["data"]] == [
        (101, "cpu,host=x usage=oops 100"), (11_002, "cpu,host=y n=1.5 11000")]
    assert server.query("db1", "SELECT count(*) AS n, sum(n) AS s FROM cpu") == [
        {"n": 11_998, "s": sum(range(12_000)) - 100 - 9_000 - 11_000}]
    assert server.query("db1", "SELECT note FROM cpu WHERE host = 'z'") == [{"note": "two\nlines"}]


def test_accept_partial_false_rejects_everything(server):
    r = server.write("db1", "cpu v=1 1\ncpu v=oops 2", accept_partial="false")
    assert r.status == 400
    err = r.json()
    assert err["error"] == "line protocol parsing error"
    assert err["data"]["line_number"] == 2
    assert server.request("POST", "/api/v3/query_sql", {"db": "db1", "q": "SELECT 1"}).status == 404


def test_type_conflict_is_a_line_error(server):
    assert server.write("db1", "cpu v=1 1").status == 204
    r = server.write("db1", "cpu v=2i 2\ncpu v=3 3")
    assert r.status == 400
    data = r.json()["data"]
    assert data[0]["line_number"] == 1
    assert "expected iox::column_type::field::float, got iox::column_type::field::integer" in data[0]["error_message"]
    assert data[0]["original_line"] == "cpu v=2i 2"
    assert server.query("db1", "SELECT count(*) AS n FROM cpu") == [{"n": 2}]


def test_gzip_and_encoding_errors(server):
    body = gzip.compress(b"cpu v=1 1")
    r = server.request("POST", "/api/v3/write_lp?db=g", body, {"Content-Encoding": "gzip"})
    assert r.status == 204
    r = server.request("POST", "/api/v3/write_lp?db=g", b"not gzip", {"Content-Encoding": "gzip"})
    assert r.status == 400 and "gzip" in r.json()["error"]
    r = server.request("POST", "/api/v3/write_lp?db=g", b"cpu v=1", {"Content-Encoding": "br"})
    assert r.status == 400


@pytest.mark.parametrize("body,fragment", [(b"", "empty"), (b"cpu v=1 \xff\xfe", "UTF-8")])
def test_empty_and_non_utf8_bodies(server, body, fragment):
    r = server.request("POST", "/api/v3/write_lp?db=x", body)
    assert r.status == 400 and fragment in r.json()["error"]


def test_missing_db_and_bad_names(server):
    r = server.request("POST", "/api/v3/write_lp", b"cpu v=1")
    assert r.status == 400 and r.json()["error"] == "missing query parameter 'db'"
    assert server.write("bad%20name", "cpu v=1").status == 400
    assert server.write("_internal", "cpu v=1").status == 400


def test_request_too_large(fast_config):
    cfg = fast_config.with_changes(max_http_request_size=1000)
    with InProcessServer(cfg, store=MemoryStore()) as srv:
        r = srv.write("db", "cpu v=1\n" * 200)
        assert r.status == 413
        r = srv.request("POST", "/api/v3/write_lp?db=db", gzip.compress(b"cpu v=1\n" * 500),
                        {"Content-Encoding": "gzip"})
        assert r.status == 413
        assert srv.write("db", "cpu v=1").status == 204


def test_v2_and_v1_writes(server):
    assert server.request("POST", "/api/v2/write?bucket=b2&org=x&precision=s", b"m v=1 1700000000").status == 204
    assert server.query("b2", "SELECT time FROM m") == [{"time": "2023-11-14T22:13:20"}]
    r = server.request("POST", "/api/v2/write?bucket=b2", b"m v=bad")
    assert r.status == 400 and r.json()["code"] == "invalid"
    assert r.json()["message"].startswith("write buffer error: line protocol parse failed: ")
    r = server.request("POST", "/api/v2/write?bucket=b2", b"m v=2 1700000001\nm v=\"s\" 1700000002")
    assert r.json() == {"code": "invalid", "message": "write buffer error: line protocol parse failed: invalid column "
                        "type for column 'v', expected iox::column_type::field::float, got iox::column_type::field::string"}
    assert server.query("b2", "SELECT count(*) AS n FROM m") == [{"n": 1}]  # a rejected batch writes nothing
    assert server.request("POST", "/write?db=v1&rp=autogen&precision=ms", b"m v=1 1000").status == 204
    assert server.request("POST", "/write?db=v1&rp=weekly", b"m v=1 1000").status == 204
    assert server.query("v1/weekly", "SELECT count(*) AS n FROM m") == [{"n": 1}]


def test_no_sync_is_queryable_after_commit(server):
    assert server.write("ns", "m v=1 1", no_sync="true").status == 204
    server.call(server.services.buffer.flush_now())
    # The next synchronous write commits after the no_sync one: both are visible once it returns.
    assert server.write("ns", "m v=2 2").status == 204
    assert server.query("ns", "SELECT count(*) AS n FROM m") == [{"n": 2}]


def test_query_errors(server):
    server.write("db1", "cpu v=1 1")
    r = server.request("GET", "/api/v3/query_sql?db=nope&q=SELECT+1")
    assert r.status == 404
    r = server.request("GET", "/api/v3/query_sql?db=db1&q=SELEC+nonsense")
    assert r.status == 400 and "error" in r.json()
    for stmt in ["CREATE TABLE x AS SELECT 1", "INSERT INTO cpu VALUES (1.0, now())", "SET x = 1",
                 "DROP TABLE cpu"]:
        r = server.request("POST", "/api/v3/query_sql", {"db": "db1", "q": stmt})
        assert r.status == 400, stmt
    assert server.request("GET", "/api/v3/query_sql?q=SELECT+1").status == 400
    assert server.request("GET", "/api/v3/query_sql?db=db1").status == 400
    assert server.request("GET", "/api/v3/query_sql?db=db1&q=SELECT+1&format=xml").status == 400


def test_params_are_bound_not_substituted(server):
    server.write("db1", "cpu,host=a v=1 1\ncpu,host=b v=2 2")
    rows = server.query("db1", "SELECT v FROM cpu WHERE host = $h", params={"h": "b"})
    assert rows == [{"v": 2.0}]
    rows = server.query("db1", "SELECT v FROM cpu WHERE host = $h", params={"h": "a' OR '1'='1"})
    assert rows == []
    r = server.request("GET", '/api/v3/query_sql?db=db1&q=SELECT+v+FROM+cpu+WHERE+v+>+$x&params={"x":1.5}')
    assert r.status == 200 and r.json() == [{"v": 2.0}]


def test_formats(server):
    server.write("db1", "cpu,host=a v=1 1500000000", precision="ns")

    def get(fmt):
        return server.request("GET", f"/api/v3/query_sql?db=db1&q=SELECT+host,v,time+FROM+cpu&format={fmt}")
    r = get("jsonl")
    assert r.headers["Content-Type"].startswith("application/jsonl")
    assert r.body == b'{"host":"a","v":1.0,"time":"1970-01-01T00:00:01.500"}\n'
    r = get("csv")
    assert r.body.decode().splitlines() == ["host,v,time", "a,1.0,1970-01-01T00:00:01.500"]
    r = get("pretty")
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8" and b"| host |" in r.body
    r = get("parquet")
    import io

    import pyarrow.parquet as pq
    assert pq.read_table(io.BytesIO(r.body)).num_rows == 1
    r = server.request("GET", "/api/v3/query_sql?db=db1&q=SELECT+v+FROM+cpu", headers={"Accept": "text/csv"})
    assert r.body.startswith(b"v\n")


def test_health_ping_and_unknown_routes(server):
    assert server.request("GET", "/health").body == b"OK"
    for method in ("GET", "POST"):
        r = server.request(method, "/ping")  # Core's answer, what curl and influxdb3-python get
        assert r.status == 200 and r.headers["X-Influxdb-Version"].startswith("3.")
        body = r.json()
        assert body["version"] == r.headers["X-Influxdb-Version"] and body["revision"] and body["process_id"]
    # InfluxDB 1.x clients' ping() needs 1.x's 204: they are told apart by what they send.
    for headers in ({"Accept": "application/x-msgpack"}, {"User-Agent": "InfluxDBClient"}):
        r = server.request("GET", "/ping", headers=headers)
        assert r.status == 204 and r.body == b"" and r.headers["X-Influxdb-Version"].startswith("3.")
    assert server.request("HEAD", "/ping").status == 204
    r = server.request("GET", "/no/such/route")
    assert r.status == 404 and r.json() == {"error": "not found"}
    assert "cluster-uuid" in r.headers and "Request-Id" in r.headers


def test_metrics_say_where_write_time_went(server):
    """/metrics counts parse time, write latency by route, and each WAL commit's encode, store and apply
    seconds (benchmarks/ingest.py prints them under each figure)."""
    for i in range(3):
        assert server.write("db1", f"cpu,host=a usage={i} {i}").status == 204
    values: dict[str, float] = {}
    for line in server.request("GET", "/metrics").body.decode().splitlines():
        if not line.startswith("#") and " " in line:
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values["lakeflux_write_parse_seconds_total"] > 0
    assert values['lakeflux_write_duration_seconds_count{route="/api/v3/write_lp"}'] == 3
    assert values['lakeflux_write_duration_seconds_bucket{route="/api/v3/write_lp",le="+Inf"}'] == 3
    assert values['lakeflux_write_duration_seconds_sum{route="/api/v3/write_lp"}'] > 0
    assert values["lakeflux_wal_flushes_total"] >= 1
    for stage in ("encode", "store", "apply"):
        assert values[f'lakeflux_wal_flush_stage_seconds_total{{stage="{stage}"}}'] > 0


def test_configure_databases_and_tables(server):
    def dbs():
        r = server.request("GET", "/api/v3/configure/database?format=json")
        return [row["iox::database"] for row in r.json()]
    assert server.request("POST", "/api/v3/configure/database", {"db": "made"}).status == 200
    assert server.request("POST", "/api/v3/configure/database", {"db": "made"}).status == 409
    assert "made" in dbs() and "_internal" in dbs()
    r = server.request("POST", "/api/v3/configure/database", b'{"db": "x"}', {"Content-Type": "text/plain"})
    assert r.status == 415
    assert server.request("PUT", "/api/v3/configure/database", {"db": "made", "retention_period": "7d"}).status == 200
    r = server.request("POST", "/api/v3/configure/table", {"db": "made", "table": "t", "tags": ["h"],
                                                           "fields": [{"name": "v", "type": "float64"}]})
    assert r.status == 200
    assert server.query("made", "SELECT * FROM t") == []
    r = server.write("made", "t,h=a v=1i")
    assert r.status == 400 and "expected iox::column_type::field::float, got iox::column_type::field::integer" in r.body.decode()
    assert server.request("DELETE", "/api/v3/configure/table?db=made&table=t").status == 200
    assert server.request("DELETE", "/api/v3/configure/database?db=made").status == 200
    assert "made" not in dbs()
    assert server.request("DELETE", "/api/v3/configure/database?db=made").status == 404
    assert server.request("DELETE", "/api/v3/configure/database?db=_internal").status == 400
    assert server.request("GET", "/api/v3/configure/database").status == 400


def test_v1_query_create_and_show(server):
    r = server.request("POST", "/query?q=CREATE+DATABASE+telegraf")
    assert r.status == 200 and r.json() == {"results": [{"statement_id": 0}]}
    r = server.request("GET", "/query?q=SHOW+DATABASES")
    assert r.json()["results"][0]["series"][0]["values"] == [["telegraf"]]
    no_db = server.request("GET", "/query?q=SELECT+*+FROM+cpu")
    assert no_db.status == 200 and "must specify a 'db' parameter" in no_db.json()["results"][0]["error"]


def test_data_survives_restart_on_file_store(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        assert srv.write("db1", "cpu,host=a v=1 1\ncpu,host=b v=2 2").status == 204
        assert srv.write("db1", "cpu,host=c v=3,extra=1i 3").status == 204
    with InProcessServer(cfg) as srv:
        rows = srv.query("db1", "SELECT host, v, extra FROM cpu ORDER BY host")
        assert rows == [{"host": "a", "v": 1.0}, {"host": "b", "v": 2.0}, {"host": "c", "v": 3.0, "extra": 1}]


@pytest.mark.parametrize("recreate", ["write", "configure"])
def test_recreated_table_does_not_get_old_rows_back_on_replay(tmp_path, recreate):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        assert srv.write("db1", "cpu,host=old v=1 1\ncpu,host=old v=2 2").status == 204
        assert srv.request("DELETE", "/api/v3/configure/table?db=db1&table=cpu&hard_delete_at=now").status == 200
        if recreate == "configure":
            r = srv.request("POST", "/api/v3/configure/table", {"db": "db1", "table": "cpu", "tags": ["host"],
                                                                "fields": [{"name": "v", "type": "float64"}]})
            assert r.status == 200
        assert srv.write("db1", "cpu,host=new v=3 3").status == 204
        assert srv.query("db1", "SELECT host FROM cpu") == [{"host": "new"}]
    with InProcessServer(cfg) as srv:  # the old rows are still in the WAL: replay must skip them
        assert srv.query("db1", "SELECT host FROM cpu") == [{"host": "new"}]
