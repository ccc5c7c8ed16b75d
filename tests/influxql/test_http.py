"""InfluxQL over HTTP: v1 `/query` (parameters, formats, chunking, errors, databases) and `/api/v3/query_influxql`."""

from __future__ import annotations

import base64
import io
import json
import urllib.parse

import pyarrow.parquet as pq
import pytest

from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

LP = ("cpu,host=a,region=us v=1.5,n=1i 1700000000000000000\n"
      "cpu,host=b,region=eu v=2.5,n=2i 1700000001000000000\n"
      "cpu,host=a,region=us v=3.5,n=3i 1700000002500000000\n"
      "mem,host=a free=10i 1700000000000000000\n")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from lakeflux.config import Config

    config = Config(data_dir=tmp_path_factory.mktemp("http") / "data", object_store="memory",
                    wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db1", LP, precision="ns").status == 204
        yield server


def v1(srv: InProcessServer, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
       **params: str):
    return srv.request(method, "/query?" + urllib.parse.urlencode(params), body, headers=headers)


def test_several_statements_and_epochs(srv):
    r = v1(srv, db="db1", q="SELECT v FROM cpu WHERE host = 'a'; SELECT count(v) FROM cpu GROUP BY host", epoch="ms")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["X-Influxdb-Version"]
    assert r.json() == {"results": [
        {"statement_id": 0, "series": [{"name": "cpu", "columns": ["time", "v"],
                                        "values": [[1700000000000, 1.5], [1700000002500, 3.5]]}]},
        {"statement_id": 1, "series": [
            {"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "count"], "values": [[0, 2]]},
            {"name": "cpu", "tags": {"host": "b"}, "columns": ["time", "count"], "values": [[0, 1]]}]}]}
    rfc = v1(srv, db="db1", q="SELECT v FROM cpu WHERE host = 'a'").json()["results"][0]["series"][0]["values"]
    assert rfc == [["2023-11-14T22:13:20Z", 1.5], ["2023-11-14T22:13:22.500Z", 3.5]]
    for epoch, first in [("ns", 1700000000000000000), ("u", 1700000000000000), ("µ", 1700000000000000),
                         ("s", 1700000000), ("m", 28333333), ("h", 472222)]:
        answer = v1(srv, db="db1", q="SELECT v FROM cpu", epoch=epoch).json()
        assert answer["results"][0]["series"][0]["values"][0][0] == first
    assert v1(srv, db="db1", q="SELECT v FROM cpu", epoch="fortnight").status == 400


def test_float_and_empty_answers_are_shaped_like_influxdb(srv):
    r = v1(srv, db="db1", q="SELECT sum(v) FROM cpu; SELECT v FROM cpu WHERE host = 'nope'", epoch="s").json()
    assert r["results"][0]["series"][0]["values"] == [[0, 7.5]]
    assert r["results"][1] == {"statement_id": 1}
    whole = v1(srv, db="db1", q="SELECT mean(n) FROM cpu").json()["results"][0]["series"][0]["values"][0][1]
    assert whole == 2 and isinstance(whole, int)  # 2.0 prints as 2, as InfluxDB does


def test_post_form_body_wins_over_the_url(srv):
    form = urllib.parse.urlencode({"q": "SELECT free FROM mem", "db": "db1", "epoch": "s"}).encode()
    r = srv.request("POST", "/query?db=nope", form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json()["results"][0]["series"][0]["values"] == [[1700000000, 10]]
    raw = srv.request("POST", "/query?db=db1&epoch=s", b"SELECT free FROM mem",
                      headers={"Content-Type": "application/vnd.influxql"})
    assert raw.json()["results"][0]["series"][0]["values"] == [[1700000000, 10]]


def test_bind_parameters(srv):
    params = json.dumps({"host": "b", "min": 2})
    r = v1(srv, db="db1", q="SELECT v FROM cpu WHERE host = $host AND v > $min", params=params, epoch="s")
    assert r.json()["results"][0]["series"][0]["values"] == [[1700000001, 2.5]]
    # A value never becomes query text: quotes and regex characters stay data.
    tricky = json.dumps({"host": "a' OR host = 'b"})
    r = v1(srv, db="db1", q="SELECT v FROM cpu WHERE host = $host", params=tricky)
    assert r.json() == {"results": [{"statement_id": 0}]}
    missing = v1(srv, db="db1", q="SELECT v FROM cpu WHERE host = $host").json()["results"][0]["error"]
    assert missing == ("Bind parameter '$host' was referenced in the InfluxQL statement but its value is undefined")
    assert v1(srv, db="db1", q="SELECT v FROM cpu", params="[1]").status == 400


def test_chunked_answers_one_series_piece_per_line(srv):
    r = v1(srv, db="db1", q="SELECT v FROM cpu GROUP BY host; SHOW TAG KEYS", chunked="true", chunk_size="1",
           epoch="s")
    lines = [json.loads(line) for line in r.body.decode().splitlines()]
    assert lines == [
        {"results": [{"statement_id": 0, "series": [{"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "v"],
                                                     "values": [[1700000000, 1.5]], "partial": True}],
                      "partial": True}]},
        {"results": [{"statement_id": 0, "series": [{"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "v"],
                                                     "values": [[1700000002, 3.5]]}], "partial": True}]},
        {"results": [{"statement_id": 0, "series": [{"name": "cpu", "tags": {"host": "b"}, "columns": ["time", "v"],
                                                     "values": [[1700000001, 2.5]]}]}]},
        {"results": [{"statement_id": 1, "series": [{"name": "cpu", "columns": ["tagKey"], "values": [["host"]],
                                                     "partial": True}], "partial": True}]},
        {"results": [{"statement_id": 1, "series": [{"name": "cpu", "columns": ["tagKey"], "values": [["region"]]}],
                      "partial": True}]},
        {"results": [{"statement_id": 1, "series": [{"name": "mem", "columns": ["tagKey"],
                                                     "values": [["host"]]}]}]},
    ]


def test_csv_when_asked(srv):
    r = v1(srv, headers={"Accept": "application/csv"}, db="db1",
           q="SELECT v, host FROM cpu WHERE time < 1700000002000000000 GROUP BY region; SELECT free FROM mem")
    assert r.headers["Content-Type"] == "application/csv"
    assert r.body.decode() == ("name,tags,time,v,host\n"
                               "cpu,region=eu,1700000001000000000,2.5,b\n"
                               "cpu,region=us,1700000000000000000,1.5,a\n"
                               "\n"
                               "name,tags,time,free\n"
                               "mem,,1700000000000000000,10\n")


def test_pretty_json(srv):
    r = v1(srv, db="db1", q="SHOW DATABASES", pretty="true")
    assert r.body.startswith(b'{\n  "results": [') and r.json()["results"][0]["series"][0]["values"] == [["db1"]]


def test_errors_stay_per_statement(srv):
    r = v1(srv, db="db1", q="SELECT v FROM cpu LIMIT 1; SELECT nosuch(v) FROM cpu; SELECT n FROM cpu LIMIT 1")
    results = r.json()["results"]
    assert "series" in results[0] and "series" in results[2]
    assert results[1] == {"statement_id": 1, "error": "undefined function nosuch()"}
    parse_error = v1(srv, db="db1", q="SELECT * FROM cpu; SHOW SERIES")
    assert parse_error.status == 200
    assert parse_error.json()["results"] == [{"statement_id": 0, "error": (
        "error in InfluxQL statement: parsing error: invalid SHOW statement, expected DATABASES, FIELD KEYS, "
        "MEASUREMENTS, TAG KEYS, TAG VALUES, or RETENTION POLICIES following SHOW at pos 24")}]
    assert v1(srv, db="nope", q="SELECT v FROM cpu").json()["results"][0]["error"] == "database not found: nope"
    no_query = v1(srv, db="db1")
    assert no_query.status == 400
    assert no_query.json() == {"error": "expected a query to be provided in the query string or body"}


def test_database_statements(srv):
    assert v1(srv, "POST", q="CREATE DATABASE made WITH DURATION 7d").json() == {"results": [{"statement_id": 0}]}
    assert v1(srv, "POST", q="CREATE DATABASE made").json() == {"results": [{"statement_id": 0}]}  # exists: fine
    policies = v1(srv, q="SHOW RETENTION POLICIES ON made").json()["results"][0]["series"][0]
    assert policies == {"name": "retention_policies", "columns": ["name", "duration", "default"],
                        "values": [["autogen", "168h0m0s", True]]}
    names = v1(srv, q="SHOW DATABASES").json()["results"][0]["series"][0]["values"]
    assert ["made"] in names and ["_internal"] not in names
    assert v1(srv, "POST", q="DROP DATABASE made").json() == {"results": [{"statement_id": 0}]}
    assert ["made"] not in v1(srv, q="SHOW DATABASES").json()["results"][0]["series"][0]["values"]
    refused = v1(srv, "POST", q="DROP DATABASE _internal").json()["results"][0]["error"]
    assert "cannot modify internal db" in refused
    assert "not implemented: DELETE" in v1(srv, db="db1", q="DELETE FROM cpu").json()["results"][0]["error"]


def test_retention_policy_parameter_and_qualified_names(srv):
    assert srv.write("db1/weekly", "rp v=1 1", precision="s").status == 204
    in_rp = v1(srv, db="db1", rp="weekly", q="SELECT v FROM rp", epoch="s").json()
    assert in_rp["results"][0]["series"][0]["values"] == [[1, 1]]
    qualified = v1(srv, q='SELECT v FROM "db1"."weekly"."rp"', epoch="s").json()
    assert qualified["results"][0]["series"][0]["values"] == [[1, 1]]
    default_rp = v1(srv, q='SELECT free FROM "db1"."autogen"."mem"', epoch="s").json()
    assert default_rp["results"][0]["series"][0]["values"] == [[1700000000, 10]]


# --- /api/v3/query_influxql ------------------------------------------------------------------------------


def v3(srv: InProcessServer, **params: str):
    return srv.request("GET", "/api/v3/query_influxql?" + urllib.parse.urlencode(params))


def test_v3_formats_carry_the_measurement_column(srv):
    q = "SELECT v FROM cpu WHERE host = 'a'"
    rows = v3(srv, db="db1", q=q, format="json").json()
    assert rows == [{"iox::measurement": "cpu", "time": "2023-11-14T22:13:20", "v": 1.5},
                    {"iox::measurement": "cpu", "time": "2023-11-14T22:13:22.500", "v": 3.5}]
    assert v3(srv, db="db1", q=q, format="jsonl").body.decode().splitlines()[0] == \
        '{"iox::measurement":"cpu","time":"2023-11-14T22:13:20","v":1.5}'
    assert v3(srv, db="db1", q=q, format="csv").body.decode().splitlines()[0] == "iox::measurement,time,v"
    assert "| iox::measurement |" in v3(srv, db="db1", q=q, format="pretty").body.decode()
    table = pq.read_table(io.BytesIO(v3(srv, db="db1", q=q, format="parquet").body))
    assert table.column_names == ["iox::measurement", "time", "v"] and table.num_rows == 2
    grouped = v3(srv, db="db1", q="SELECT count(v) FROM cpu GROUP BY host", format="json").json()
    assert grouped == [{"iox::measurement": "cpu", "time": "1970-01-01T00:00:00", "host": "a", "count": 2},
                       {"iox::measurement": "cpu", "time": "1970-01-01T00:00:00", "host": "b", "count": 1}]


def test_v3_show_statements(srv):
    assert v3(srv, db="db1", q="SHOW MEASUREMENTS", format="json").json() == [
        {"iox::measurement": "measurements", "name": "cpu"}, {"iox::measurement": "measurements", "name": "mem"}]
    assert v3(srv, db="db1", q="SHOW FIELD KEYS FROM cpu", format="json").json() == [
        {"iox::measurement": "cpu", "fieldKey": "n", "fieldType": "integer"},
        {"iox::measurement": "cpu", "fieldKey": "v", "fieldType": "float"}]
    dbs = v3(srv, q="SHOW DATABASES", format="json").json()
    assert {"iox::database": "_internal", "deleted": False} in dbs
    policies = v3(srv, q="SHOW RETENTION POLICIES", format="json").json()
    assert {"iox::database": "db1", "name": "autogen", "duration": "0s"} in policies


def test_v3_post_json_with_params(srv):
    r = srv.request("POST", "/api/v3/query_influxql", {"db": "db1", "q": "SELECT v FROM cpu WHERE v > $min",
                                                       "params": {"min": 3}, "format": "jsonl"})
    assert r.status == 200 and json.loads(r.body)["v"] == 3.5


def test_v3_errors(srv):
    several = v3(srv, db="db1", q="SELECT v FROM cpu; SELECT v FROM cpu")
    assert several.status == 400 and several.json()["error"] == "must provide only one InfluxQl statement per query"
    bad = v3(srv, db="db1", q="show tags")
    assert bad.status == 400 and "error in InfluxQL statement: parsing error:" in bad.json()["error"]
    assert v3(srv, db="nope", q="SELECT v FROM cpu").status == 404
    no_db = v3(srv, q="SELECT v FROM cpu")
    assert no_db.status == 400 and "must specify a 'db' parameter" in no_db.json()["error"]
    assert v3(srv, db="db1", q="CREATE DATABASE sneaky").status == 400
    assert v3(srv, db="db1").status == 400


# --- auth ---------------------------------------------------------------------------------------------------


def test_v1_auth_forms(fast_config):
    with InProcessServer(fast_config.with_changes(without_auth=False), store=MemoryStore()) as server:
        assert server.write("db1", "m v=1 1").status == 204
        token = server.token
        assert token is not None
        q = "/query?db=db1&q=" + urllib.parse.quote("SELECT v FROM m")
        basic = "Basic " + base64.b64encode(f"anyone:{token}".encode()).decode()
        for path, headers in [(q + f"&u=anyone&p={token}", {}), (q, {"Authorization": basic}),
                              (q, {"Authorization": f"Token {token}"}), (q, {"Authorization": f"Bearer {token}"})]:
            reply = server.request("GET", path, headers=headers, auth=False)
            assert reply.status == 200 and "series" in reply.json()["results"][0], (path, headers)
        assert server.request("GET", q, auth=False).status == 401
        assert server.request("GET", q + "&p=wrong", auth=False).status == 401
        v3_path = "/api/v3/query_influxql?db=db1&q=" + urllib.parse.quote("SHOW MEASUREMENTS")
        assert server.request("GET", v3_path, auth=False).status == 401
        assert server.request("GET", v3_path).status == 200


def test_system_queries_show_influxql_as_influxql(srv):
    q = "SELECT count(v) FROM cpu WHERE host = 'a'"
    assert "series" in v1(srv, db="db1", q=q).json()["results"][0]
    logged = srv.query("db1", "SELECT query_type, query_text FROM system.queries WHERE query_type = 'influxql'")
    assert {"query_type": "influxql", "query_text": q} in logged


def test_statements_of_one_request_share_its_deadline(srv, monkeypatch):
    """--query-timeout bounds a request of several statements as a whole: every SQL query its statements run
    gets the one deadline taken when the request came in, not a fresh timeout each."""
    engine = srv.services.query
    given = []
    real = engine.start

    def start(db, sql, params=None, *, deadline=None, log_as=None):
        given.append(deadline)
        return real(db, sql, params, deadline=deadline, log_as=log_as)

    monkeypatch.setattr(engine, "start", start)
    r = v1(srv, db="db1", q="SELECT v FROM cpu; SELECT free FROM mem; SELECT v FROM /c.u/")
    assert r.status == 200 and all("error" not in s for s in r.json()["results"])
    assert len(given) >= 3 and given[0] is not None and set(given) == {given[0]}
    given.clear()
    assert srv.request("GET", "/api/v3/query_influxql?" + urllib.parse.urlencode(
        {"db": "db1", "q": "SHOW TAG VALUES WITH KEY = host"})).status == 200
    assert given and given[0] is not None and set(given) == {given[0]}
