"""Arrow Flight through the one port (CONTRACT §5): tickets, Flight SQL minimum, errors, the listener."""

from __future__ import annotations

import json
import socket

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from lakeflux.server.flight import decode_command, parse_ticket, proto_fields, statement_sql
from lakeflux.server.listener import H2_PREFACE, classify
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

STATEMENT_URL = "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
SQL_INFO_URL = "type.googleapis.com/arrow.flight.protocol.sql.CommandGetSqlInfo"


def _len_field(number: int, value: bytes) -> bytes:
    out, size = bytearray([number << 3 | 2]), len(value)
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + value


def any_command(type_url: str, message: bytes) -> bytes:
    return _len_field(1, type_url.encode()) + _len_field(2, message)


@pytest.fixture
def srv(fast_config):
    with InProcessServer(fast_config.with_changes(without_auth=False), store=MemoryStore()) as server:
        assert server.write("db1", "cpu,host=a v=1.5 1700000000\ncpu,host=b v=2.5 1700000001").status == 204
        yield server


def _client(srv: InProcessServer) -> flight.FlightClient:
    return flight.connect(srv.url.replace("http://", "grpc+tcp://"))


def _options(token: str | None, **headers: str) -> flight.FlightCallOptions:
    pairs = [(k.encode(), v.encode()) for k, v in headers.items()]
    if token is not None:
        pairs.append((b"authorization", f"Bearer {token}".encode()))
    return flight.FlightCallOptions(headers=pairs)


def _ticket(**body: object) -> flight.Ticket:
    return flight.Ticket(json.dumps(body).encode())


def test_do_get_streams_the_query_with_params(srv):
    ticket = _ticket(database="db1", sql_query="SELECT host, v FROM cpu WHERE v > $min ORDER BY host",
                     query_type="sql", params={"min": 2.0})
    table = _client(srv).do_get(ticket, _options(srv.token)).read_all()
    assert table.column("host").to_pylist() == ["b"]
    assert table.column("v").to_pylist() == [2.5]


@pytest.mark.parametrize("header", ["database", "bucket", "bucket-name", "iox-namespace-name"])
def test_database_may_come_from_metadata(srv, header):
    reader = _client(srv).do_get(_ticket(sql_query="SELECT count(*) AS n FROM cpu", query_type="sql"),
                                 _options(srv.token, **{header: "db1"}))
    assert reader.read_all().column("n").to_pylist() == [2]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_flight_refuses_missing_or_bad_tokens(srv, token):
    with pytest.raises(flight.FlightUnauthenticatedError, match="not authenticated"):
        _client(srv).do_get(_ticket(database="db1", sql_query="SELECT 1"), _options(token)).read_all()


def test_flight_errors_map_to_grpc_codes(srv):
    client, opts = _client(srv), _options(srv.token)
    with pytest.raises(pa.ArrowKeyError, match="database not found"):  # NOT_FOUND
        client.do_get(_ticket(database="nope", sql_query="SELECT 1"), opts).read_all()
    with pytest.raises(pa.ArrowInvalid, match="invalid ticket"):  # INVALID_ARGUMENT
        client.do_get(flight.Ticket(b"not json"), opts).read_all()
    with pytest.raises(pa.ArrowInvalid):  # SQL errors: INVALID_ARGUMENT
        client.do_get(_ticket(database="db1", sql_query="SELECT nope FROM cpu"), opts).read_all()
    with pytest.raises(pa.ArrowInvalid, match="parsing error"):  # InfluxQL errors: INVALID_ARGUMENT
        client.do_get(_ticket(database="db1", sql_query="SHOW SERIES", query_type="influxql"), opts).read_all()
    # The server survives all of it.
    assert client.do_get(_ticket(database="db1", sql_query="SELECT 1 AS one"), opts).read_all().num_rows == 1


def test_influxql_tickets_answer_in_influxdb3_table_form(srv):
    client, opts = _client(srv), _options(srv.token)
    ticket = _ticket(database="db1", sql_query="SELECT v FROM cpu WHERE host = $h", query_type="influxql",
                     params={"h": "b"})
    table = client.do_get(ticket, opts).read_all()
    assert table.column_names == ["iox::measurement", "time", "v"]
    assert table.schema.field("iox::measurement").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("time").type == pa.timestamp("ns")
    assert table.to_pylist()[0]["v"] == 2.5 and table.column("iox::measurement").to_pylist() == ["cpu"]
    grouped = client.do_get(_ticket(database="db1", sql_query="SELECT count(v) FROM cpu GROUP BY host",
                                    query_type="influxql"), opts).read_all()
    assert grouped.column_names == ["iox::measurement", "time", "host", "count"]
    assert grouped.schema.field("host").type == pa.dictionary(pa.int32(), pa.string())
    assert [(r["host"], r["count"]) for r in grouped.to_pylist()] == [("a", 1), ("b", 1)]
    shown = client.do_get(_ticket(database="db1", sql_query="SHOW TAG KEYS", query_type="influxql"),
                          opts).read_all()
    assert shown.to_pylist() == [{"iox::measurement": "cpu", "tagKey": "host"}]


def test_flight_sql_statement_query_gives_one_endpoint_then_do_get(srv):
    client, opts = _client(srv), _options(srv.token, database="db1")
    command = any_command(STATEMENT_URL, _len_field(1, b"select 1"))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), opts)
    assert len(info.endpoints) == 1 and info.endpoints[0].locations == []
    assert (info.total_records, info.total_bytes) == (-1, -1)
    assert json.loads(info.endpoints[0].ticket.ticket)["database"] == "db1"
    table = client.do_get(info.endpoints[0].ticket, opts).read_all()
    assert table.schema == info.schema
    assert table.to_pylist() == [{"Int64(1)": 1}]


def test_flight_sql_other_commands_are_refused(srv):
    client, opts = _client(srv), _options(srv.token, database="db1")
    # GetFlightInfo errors come as Flight errors (pyarrow sends no traceback with those): UNKNOWN + the message.
    with pytest.raises(flight.FlightServerError, match="CommandGetSqlInfo is not supported"):
        client.get_flight_info(flight.FlightDescriptor.for_command(any_command(SQL_INFO_URL, b"")), opts)
    with pytest.raises(pa.ArrowNotImplementedError):
        list(client.do_action(flight.Action("CreatePreparedStatement", b""), opts))
    with pytest.raises(flight.FlightServerError, match="database"):
        command = any_command(STATEMENT_URL, _len_field(1, b"select 1"))
        client.get_flight_info(flight.FlightDescriptor.for_command(command), _options(srv.token))


def _error_text(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each call fails its own way; the text is the point
        call()
    return str(caught.value)


def _assert_no_server_internals(text: str) -> None:
    assert "lakeflux" not in text and '.py"' not in text and 'File "/' not in text, text


def test_flight_errors_carry_messages_not_tracebacks(srv):
    client, opts = _client(srv), _options(srv.token)
    sql = any_command(STATEMENT_URL, _len_field(1, b"SELECT nope FROM cpu"))
    calls = {
        "unknown database": lambda: client.do_get(_ticket(database="nope", sql_query="SELECT 1"), opts).read_all(),
        "bad ticket": lambda: client.do_get(flight.Ticket(b"not json"), opts).read_all(),
        "bad sql": lambda: client.do_get(_ticket(database="db1", sql_query="SELECT nope FROM cpu"), opts).read_all(),
        "influxql": lambda: client.do_get(_ticket(database="db1", sql_query="SHOW SERIES",
                                                  query_type="influxql"), opts).read_all(),
        "flight sql": lambda: client.get_flight_info(flight.FlightDescriptor.for_command(sql),
                                                     _options(srv.token, database="db1")),
        "action": lambda: list(client.do_action(flight.Action("CreatePreparedStatement", b""), opts)),
        "bad token": lambda: client.do_get(_ticket(database="db1", sql_query="SELECT 1"),
                                           _options("wrong")).read_all(),
    }
    for name, call in calls.items():
        text = _error_text(call)
        _assert_no_server_internals(text)
        if name != "action":  # DoAction's detail names pyarrow's own frame (no server path, no source line)
            assert "Traceback" not in text, (name, text)
    assert "No field named nope" in _error_text(calls["bad sql"])


def test_influxdb3_python_query_errors_carry_no_traceback(srv):
    influxdb_client_3 = pytest.importorskip("influxdb_client_3")
    with influxdb_client_3.InfluxDBClient3(host=srv.url, token=srv.token, database="db1") as client:
        text = _error_text(lambda: client.query("SELECT nope FROM cpu"))
    assert "No field named nope" in text and "Traceback" not in text
    _assert_no_server_internals(text)


def test_protobuf_decoding_by_hand():
    message = b"\x08\x96\x01" + _len_field(1, b"SELECT 1" * 40) + b"\x15\x01\x00\x00\x00"
    fields = proto_fields(message)
    assert fields[1] == b"SELECT 1" * 40 and fields[2] == 1
    assert decode_command(any_command(STATEMENT_URL, b"x")) == ("CommandStatementQuery", b"x")
    assert statement_sql(_len_field(1, "SELECT 'é'".encode())) == "SELECT 'é'"
    with pytest.raises(pa.ArrowInvalid):
        decode_command(b"\x0a\x10short")


def test_ticket_validation():
    assert parse_ticket(b'{"sql_query": "SELECT 1"}', "hdr").database == "hdr"
    assert parse_ticket(b'{"database": "t", "sql_query": "SELECT 1"}', "hdr").database == "t"
    for bad in (b"[]", b'{"database": "d"}', b'{"sql_query": "SELECT 1"}', b'{"database": "d", '
                b'"sql_query": "x", "params": [1]}', b'{"database": "d", "sql_query": "x", "query_type": "flux"}'):
        with pytest.raises(pa.ArrowInvalid):
            parse_ticket(bad, None)


@pytest.mark.parametrize(("prefix", "kind"), [
    (b"", None), (b"P", None), (H2_PREFACE[:23], None), (H2_PREFACE, "grpc"), (H2_PREFACE + b"\x00\x00", "grpc"),
    (b"G", "http"), (b"POST /write", "http"), (b"PUT", "http"), (b"PRI * HTTP/1.1", "http"),
])
def test_classify_decides_at_the_first_mismatch(prefix, kind):
    assert classify(prefix) == kind


def test_listener_routes_a_short_http_request_and_a_split_preface(srv):
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")  # 22 bytes: shorter than the preface
        assert sock.recv(64).startswith(b"HTTP/1.")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(H2_PREFACE[:10])
        sock.sendall(H2_PREFACE[10:])
        frame = sock.recv(9)
        assert frame[3] == 0x04  # the gRPC server answers with an HTTP/2 SETTINGS frame
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PRIME /ping HTTP/1.0\r\n\r\n")  # starts like the preface, then differs: HTTP
        assert sock.recv(64).startswith(b"HTTP/1.0 400")  # aiohttp's answer to an unknown method


def test_do_get_sends_influxdb_types_for_tags_and_time(srv):
    ticket = _ticket(database="db1", sql_query="SELECT * FROM cpu ORDER BY host", query_type="sql")
    table = _client(srv).do_get(ticket, _options(srv.token)).read_all()
    assert table.schema.field("host").type == pa.dictionary(pa.int32(), pa.string())
    assert table.schema.field("time").type == pa.timestamp("ns")
    assert table.column("host").to_pylist() == ["a", "b"]


def test_flight_sql_plans_in_get_flight_info_and_runs_once_in_do_get(srv):
    client, opts = _client(srv), _options(srv.token, database="db1")
    sql = b"SELECT host, v FROM cpu WHERE v > 2 ORDER BY host"
    info = client.get_flight_info(flight.FlightDescriptor.for_command(any_command(STATEMENT_URL, _len_field(1, sql))),
                                  opts)
    assert info.schema.field("host").type == pa.dictionary(pa.int32(), pa.string())  # tags as InfluxDB sends them
    assert sql.decode() not in _logged_queries(srv)  # planned only: nothing ran yet
    table = client.do_get(info.endpoints[0].ticket, opts).read_all()
    assert table.schema == info.schema
    assert table.to_pydict() == {"host": ["b"], "v": [2.5]}
    assert _logged_queries(srv).count(sql.decode()) == 1


def _logged_queries(srv: InProcessServer) -> list[str]:
    return srv.services.query.execute("db1", "SELECT query_text FROM system.queries").to_table().column(0).to_pylist()


class _Context:
    """The parts of a gRPC call context do_get uses (called directly: no client, so nothing is read)."""

    def get_middleware(self, key: str) -> None:
        return None

    def is_cancelled(self) -> bool:
        return False


@pytest.mark.parametrize("query", ["SELECT host, v FROM cpu", "SELECT 1 AS one"])
def test_a_stream_gRPC_never_reads_gives_its_query_slot_back(srv, query):
    """A client that goes away before gRPC asks for the first batch: the stream is dropped unread, and its
    query slot, query and deadline timer are let go all the same."""
    import gc

    from lakeflux.server.flight import FlightService

    service = FlightService(srv.services)
    try:
        slots = srv.services.query_slots
        before = slots.taken
        stream = service.do_get(_Context(), _ticket(database="db1", sql_query=query, query_type="sql"))
        assert slots.taken == before + 1
        del stream
        gc.collect()
        assert slots.taken == before
    finally:
        service.shutdown()
