"""The unmodified PyPI clients against a real `lakeflux serve` with auth on, all through the one HTTP port.

The server is started the way a user starts it (no --without-auth): it creates the admin token on
first start and saves it in the data dir, which is where these tests read it from.

influxdb3-python's own integration suite matches on InfluxDB 3 Core's exact texts and answers; each one it
relies on has a test here, through the same client calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from lakeflux.localstate import TOKEN_FILE_NAME, read_token_file
from lakeflux.server.auth import MALFORMED_AUTHORIZATION
from lakeflux.testing.process import ServerProcess

influxdb_client_3 = pytest.importorskip("influxdb_client_3")


@pytest.fixture(scope="module")
def lakeflux(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data_dir = tmp_path_factory.mktemp("clients") / "data"
    with ServerProcess(data_dir, "--wal-flush-interval", "10ms") as srv:
        token = read_token_file(data_dir / TOKEN_FILE_NAME)
        assert token is not None, srv.log()
        yield srv, token


def _sql(srv: ServerProcess, token: str, db: str, sql: str) -> bytes:
    req = urllib.request.Request(f"{srv.url}/api/v3/query_sql?db={db}&format=csv&q={urllib.request.quote(sql)}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return bytes(resp.read())


def test_first_start_printed_the_token_once(lakeflux):
    srv, token = lakeflux
    assert srv.log().count(token) == 1


def test_influxdb3_python_write_defaults_then_flight_query(lakeflux):
    srv, token = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="v3db") as client:
        client.write("home,room=kitchen temp=21.5,hum=40i 1700000000000000000")
        client.write("home,room=living temp=19.0,hum=45i 1700000001000000000")
        table = client.query("SELECT room, temp FROM home ORDER BY room")
        assert table.to_pylist() == [{"room": "kitchen", "temp": 21.5}, {"room": "living", "temp": 19.0}]
        filtered = client.query("SELECT room FROM home WHERE temp > $t AND room = $r",
                                query_parameters={"t": 20, "r": "kitchen"})
        assert filtered.column("room").to_pylist() == ["kitchen"]
        assert client.query("select 1").num_rows == 1


def test_influxdb3_python_with_a_bad_token_is_refused(lakeflux):
    srv, _ = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token="apiv3_wrong", database="v3db") as client:
        with pytest.raises(Exception, match="not authenticated"):
            client.query("SELECT 1")
        with pytest.raises(Exception, match="401|not authenticated"):
            client.write("home,room=x temp=1")


def test_influxdb_client_v2_write(lakeflux):
    influxdb_client = pytest.importorskip("influxdb_client")
    from influxdb_client.client.write_api import SYNCHRONOUS

    srv, token = lakeflux
    with influxdb_client.InfluxDBClient(url=srv.url, token=token, org="ignored") as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        write_api.write(bucket="v2db", record="mem,host=h1 used=42i 1700000000", write_precision="s")
        point = influxdb_client.Point("mem").tag("host", "h2").field("used", 7)
        write_api.write(bucket="v2db", record=point)
    assert _sql(srv, token, "v2db", "SELECT host, used FROM mem ORDER BY host") == b"host,used\nh1,42\nh2,7\n"


def test_influxdb_v1_ping_create_database_write(lakeflux):
    influxdb = pytest.importorskip("influxdb")
    srv, token = lakeflux
    port = int(srv.url.rsplit(":", 1)[1])
    client = influxdb.InfluxDBClient(host="127.0.0.1", port=port, username="any", password=token, database="v1db")
    assert client.ping()
    client.create_database("v1db")
    assert {"name": "v1db"} in client.get_list_database()
    assert client.write_points([{"measurement": "cpu", "tags": {"host": "a"}, "fields": {"load": 0.5},
                                 "time": 1700000000000000000}])
    assert _sql(srv, token, "v1db", "SELECT host, load FROM cpu") == b"host,load\na,0.5\n"
    unauthenticated = influxdb.InfluxDBClient(host="127.0.0.1", port=port, database="v1db")
    with pytest.raises(influxdb.exceptions.InfluxDBClientError, match="401|not authenticated"):
        unauthenticated.write_points([{"measurement": "cpu", "fields": {"load": 1.0}}])


def test_adbc_flight_sql_query(lakeflux):
    fsql = pytest.importorskip("adbc_driver_flightsql.dbapi")
    from adbc_driver_flightsql import DatabaseOptions

    srv, token = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="adbcdb") as client:
        client.write("disk,dev=sda free=10i 1700000000000000000")
    options = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}",
               "adbc.flight.sql.rpc.call_header.database": "adbcdb"}
    with fsql.connect(srv.url.replace("http://", "grpc://"), db_kwargs=options, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("select 1")  # Grafana's health check
            assert cur.fetchall() == [(1,)]
            cur.execute("SELECT dev, free FROM disk")
            assert cur.fetch_arrow_table().to_pylist() == [{"dev": "sda", "free": 10}]
    bad = {**options, DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"}
    with fsql.connect(srv.url.replace("http://", "grpc://"), db_kwargs=bad, autocommit=True) as conn:
        with conn.cursor() as cur, pytest.raises(Exception, match="(?i)unauthenticated|not authenticated"):
            cur.execute("select 1")


# --- InfluxQL ---------------------------------------------------------------------------------------------------


def _v1_client(srv: ServerProcess, token: str, database: str):  # type: ignore[no-untyped-def]
    influxdb = pytest.importorskip("influxdb")
    port = int(srv.url.rsplit(":", 1)[1])
    return influxdb.InfluxDBClient(host="127.0.0.1", port=port, username="any", password=token, database=database)


def test_influxdb_v1_query_reads_back_what_it_wrote(lakeflux):
    srv, token = lakeflux
    client = _v1_client(srv, token, "v1read")
    client.create_database("v1read")
    points = [{"measurement": "cpu", "tags": {"host": h}, "fields": {"load": load}, "time": t}
              for h, load, t in [("a", 0.5, 1700000000000000000), ("b", 1.25, 1700000001000000000),
                                 ("a", 0.75, 1700000060000000000)]]
    assert client.write_points(points)
    result = client.query('SELECT "load" FROM "cpu" WHERE "host" = $host', bind_params={"host": "a"})
    assert list(result.get_points()) == [{"time": "2023-11-14T22:13:20Z", "load": 0.5},
                                         {"time": "2023-11-14T22:14:20Z", "load": 0.75}]
    grouped = client.query("SELECT mean(load) FROM cpu WHERE time >= 1700000000s AND time < 1700000120s "
                           "GROUP BY time(1m), host fill(none)", epoch="s")
    assert list(grouped.get_points(tags={"host": "a"})) == [{"time": 1699999980, "mean": 0.5},
                                                            {"time": 1700000040, "mean": 0.75}]
    assert list(grouped.get_points(tags={"host": "b"})) == [{"time": 1699999980, "mean": 1.25}]
    # SHOW TAG VALUES looks back 24 hours unless told otherwise (as InfluxDB 3 does): these points are older.
    several = client.query("SHOW MEASUREMENTS; SHOW TAG VALUES WITH KEY = host; "
                           "SHOW TAG VALUES WITH KEY = host WHERE time > 0")
    assert list(several[0].get_points()) == [{"name": "cpu"}]
    assert list(several[1].get_points()) == []
    assert [p["value"] for p in several[2].get_points()] == ["a", "b"]
    influxdb = pytest.importorskip("influxdb")
    with pytest.raises(influxdb.exceptions.InfluxDBClientError, match="undefined function"):
        client.query("SELECT nosuch(load) FROM cpu")


def test_influxdb_v1_chunked_query(lakeflux):
    srv, token = lakeflux
    client = _v1_client(srv, token, "v1chunks")
    client.create_database("v1chunks")
    assert client.write_points([{"measurement": "m", "fields": {"v": i}, "time": 1700000000000000000 + i}
                                for i in range(5)])
    chunks = list(client.query("SELECT v FROM m", epoch="ns", chunked=True, chunk_size=2))
    assert [[p["v"] for p in chunk.get_points()] for chunk in chunks] == [[0, 1], [2, 3], [4]]


def test_v1_query_chunked_over_http(lakeflux):
    srv, token = lakeflux
    _v1_client(srv, token, "httpchunks").create_database("httpchunks")
    write = urllib.request.Request(f"{srv.url}/write?db=httpchunks&p={token}", method="POST",
                                   data=b"m,k=x v=1 1\nm,k=x v=2 2\nm,k=y v=3 3\n")
    with urllib.request.urlopen(write, timeout=30) as resp:
        assert resp.status == 204
    query = urllib.parse.urlencode({"db": "httpchunks", "q": "SELECT v FROM m GROUP BY k", "chunked": "true",
                                    "chunk_size": "1", "epoch": "ns"})
    req = urllib.request.Request(f"{srv.url}/query?{query}", headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        lines = [json.loads(line) for line in resp.read().decode().splitlines()]
    values = [(r["series"][0]["tags"]["k"], r["series"][0]["values"], r.get("partial", False))
              for line in lines for r in line["results"]]
    assert values == [("x", [[1, 1]], True), ("x", [[2, 2]], True), ("y", [[3, 3]], False)]


def test_influxdb3_python_influxql(lakeflux):
    srv, token = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="v3ql") as client:
        client.write("weather,city=oslo temp=-3.5 1700000000000000000")
        client.write("weather,city=rome temp=14.0 1700000000000000000")
        table = client.query("SELECT temp FROM weather WHERE city = 'rome'", language="influxql")
        assert table.column_names == ["iox::measurement", "time", "temp"]
        assert table.to_pylist()[0]["iox::measurement"] == "weather" and table.column("temp").to_pylist() == [14.0]
        grouped = client.query("SELECT max(temp) FROM weather GROUP BY city", language="influxql")
        assert [(r["city"], r["max"]) for r in grouped.to_pylist()] == [("oslo", -3.5), ("rome", 14.0)]
        keys = client.query("SHOW TAG KEYS FROM weather", language="influxql")
        assert keys.to_pylist() == [{"iox::measurement": "weather", "tagKey": "city"}]


TYPE_CONFLICT_LP = "home,room=Sunroom temp=96 1735545600\nhome,room=Sunroom temp=\"hi\" 1735549200"
TEMP_CONFLICT = ("invalid column type for column 'temp', expected iox::column_type::field::float, "
                 "got iox::column_type::field::string")


def _sync_client(srv: ServerProcess, token: str, **write_options: object):  # type: ignore[no-untyped-def]
    from influxdb_client_3 import WriteOptions, WriteType, write_client_options

    options = WriteOptions(write_type=WriteType.synchronous, **write_options)
    return influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="errs",
                                             write_client_options=write_client_options(write_options=options))


@pytest.mark.parametrize(("token", "scheme"), [("fake token", None), (None, "Any")])
def test_influxdb3_python_malformed_authorization_gets_cores_text(lakeflux, token, scheme):
    from influxdb_client_3.exceptions import InfluxDBError

    srv, real = lakeflux
    kwargs = {"auth_scheme": scheme} if scheme else {}
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token or real, database="errs", **kwargs) as client:
        with pytest.raises(InfluxDBError) as caught:
            client.write("integration,type=used value=123.0")
    assert caught.value.message == MALFORMED_AUTHORIZATION


def test_influxdb3_python_v3_line_errors_use_cores_texts(lakeflux):
    from influxdb_client_3.exceptions import InfluxDBPartialWriteError
    from influxdb_client_3.write_client.write_exceptions import ApiException

    srv, token = lakeflux
    with _sync_client(srv, token, use_v2_api=False, accept_partial=True) as client:
        with pytest.raises(InfluxDBPartialWriteError) as partial:
            client.write(TYPE_CONFLICT_LP)
    (line_error,) = partial.value.line_errors
    assert (line_error.line_number, line_error.error_message) == (2, TEMP_CONFLICT)
    assert "home,room=Sunroom" in line_error.original_line
    with _sync_client(srv, token, use_v2_api=False, accept_partial=False) as client:
        with pytest.raises(ApiException) as rejected:
            client.write(TYPE_CONFLICT_LP)
    assert (rejected.value.status, rejected.value.message) == (400, "line protocol parsing error")
    body = json.loads(rejected.value.body)
    assert body["error"] == "line protocol parsing error"
    assert (body["data"]["line_number"], body["data"]["error_message"]) == (2, TEMP_CONFLICT)


def test_influxdb3_python_v2_write_errors_use_cores_texts(lakeflux):
    from influxdb_client_3.exceptions import InfluxDBPartialWriteError
    from influxdb_client_3.write_client.write_exceptions import ApiException

    srv, token = lakeflux
    for accept_partial in (True, False):
        with _sync_client(srv, token, use_v2_api=True, accept_partial=accept_partial) as client:
            with pytest.raises(ApiException) as caught:
                client.write(TYPE_CONFLICT_LP.replace("home", "home2"))
        assert caught.value.status == 400 and not isinstance(caught.value, InfluxDBPartialWriteError)
        body = json.loads(caught.value.body)
        assert body == {"code": "invalid", "message": f"write buffer error: line protocol parse failed: "
                                                      f"{TEMP_CONFLICT}"}


def test_ping_answers_each_client_in_its_own_form(lakeflux):
    srv, token = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="errs") as client:
        assert client.get_server_version() == "3.10.0"
    request = urllib.request.Request(f"{srv.url}/ping", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as reply:  # curl, Core's scripts: 200 and JSON
        assert reply.status == 200
        body = json.loads(reply.read())
    assert body["version"] == "3.10.0" and body["revision"]
    influxdb = pytest.importorskip("influxdb")  # the v1 client's ping() insists on 204
    port = int(srv.url.rsplit(":", 1)[1])
    v1 = influxdb.InfluxDBClient(host="127.0.0.1", port=port, username="any", password=token)
    assert v1.ping() == "3.10.0"


def test_cli_query_in_influxql(lakeflux):
    srv, token = lakeflux
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=token, database="cliql") as client:
        client.write("disk,dev=sda free=10i 1700000000000000000")
    out = subprocess.run([sys.executable, "-m", "lakeflux", "query", "-H", srv.url, "--token", token, "-d", "cliql",
                          "-l", "influxql", "--format", "jsonl", "SELECT free FROM disk"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"iox::measurement": "disk", "time": "2023-11-14T22:13:20", "free": 10}
