"""The unmodified PyPI clients against a real `lakeflux serve` with auth on, all through the one HTTP port.

The server is started the way a user starts it (no --without-auth): it creates the admin token on
first start and saves it in the data dir, which is where these tests read it from.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from lakeflux.cli.options import read_token_file
from lakeflux.server.tokens import TOKEN_FILE_NAME
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
