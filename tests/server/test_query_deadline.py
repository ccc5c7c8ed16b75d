"""--query-timeout counts the time spent sending the answer too, through a real server process.

A query whose client stops reading used to keep going for as long as the connection stayed open: the
server sat in a write nobody drained, the query kept its view pinned (so the Parquet files a snapshot
retired stayed in the lake) and the deadline was only looked at when the next batch was pulled, which
never came. Now the deadline cuts the answer off wherever the query is: the connection is closed, the
query stops and its pin goes, and the retired files are deleted.

Waits here are generous polls: they tell "stuck" (never) from "done"; no test checks how long anything took.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pyarrow.flight as flight
import pytest

from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9
# An answer far larger than every socket buffer between the server and a client that never reads.
ENDLESS = "SELECT cpu.usage, r.value FROM cpu CROSS JOIN range(1000000000) AS r"
STUCK_S = 120
# A v1 answer of this many rows is several times what the kernel buffers for a client that does not read.
V1_ROWS = 200_000


def call(srv: ServerProcess, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(srv.url + path, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=STUCK_S) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def write(srv: ServerProcess, first: int, n: int, value: float) -> None:
    lines = "\n".join(f"cpu,host=h0 usage={value + i} {T0 + i * HOUR}" for i in range(first, first + n))
    assert call(srv, "/api/v3/write_lp?db=lake", lines.encode())[0] == 204


def persist(srv: ServerProcess) -> None:
    status, body = call(srv, "/api/v3/persist", b"")
    assert status == 200, body


def sql(srv: ServerProcess, text: str) -> list[dict]:
    status, body = call(srv, "/api/v3/query_sql?" + urllib.parse.urlencode({"db": "lake", "q": text}))
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def table_files(data: Path) -> set[Path]:
    return set(data.glob("*/tables/lake/cpu/date=*/*.parquet"))


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STUCK_S
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def stalled_query(srv: ServerProcess, path: str) -> socket.socket:
    """A client that sends a query, reads the status line and then never reads again."""
    client = socket.create_connection(("127.0.0.1", srv.port), timeout=STUCK_S)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = client.recv(64)
    assert head.startswith(b"HTTP/1.1 200"), head
    return client


def drained(client: socket.socket) -> bytes:
    """What the server sent until it closed the connection (a reset is a close too)."""
    got = bytearray()
    try:
        while chunk := client.recv(1 << 20):
            got += chunk
    except ConnectionResetError:
        pass
    return bytes(got)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_client_that_stops_reading_loses_its_answer_at_the_deadline_and_its_pin_with_it(tmp_path, fmt):
    data = tmp_path / "data"
    with ServerProcess(data, "--without-auth", "--wal-flush-interval", "10ms", "--query-timeout", "3s") as srv:
        write(srv, 0, 10, 0.0)
        persist(srv)
        (old,) = table_files(data)
        write(srv, 5, 10, 100.0)  # buffered rows overlapping the file: the next snapshot compacts it away

        client = stalled_query(srv, "/api/v3/query_sql?" + urllib.parse.urlencode(
            {"db": "lake", "q": ENDLESS, "format": fmt}))
        try:
            persist(srv)  # retires the file the stalled query planned with
            # The client still holds its connection open and reads nothing: only the deadline can end it.
            wait_for("the retired file to be deleted", lambda: not old.exists())
            assert sql(srv, "SELECT count(*) AS n FROM cpu") == [{"n": 15}]
            assert call(srv, "/health") == (200, b"OK")
            assert not [q for q in sql(srv, "SELECT query_text, running FROM system.queries")
                        if q["query_text"] == ENDLESS and q["running"]]
            body = drained(client)
        finally:
            client.close()
        assert not body.endswith(b"\r\n0\r\n\r\n")  # cut short: never the chunked body's end
        assert "cut short after it started: query exceeded the query timeout of 3 s (--query-timeout)" in srv.log()


def test_a_v1_client_that_stops_reading_is_cut_off_at_the_deadline(tmp_path):
    """InfluxQL's /query answers are built whole before they are sent; sending them is bounded all the same."""
    with ServerProcess(tmp_path / "data", "--without-auth", "--query-timeout", "8s") as srv:
        for first in range(0, V1_ROWS, V1_ROWS // 2):  # each write under --max-http-request-size
            write(srv, first, V1_ROWS // 2, 0.5)
        client = stalled_query(srv, "/query?" + urllib.parse.urlencode(
            {"db": "lake", "q": "SELECT usage, host FROM cpu", "chunked": "true", "chunk_size": "10000"}))
        try:
            wait_for("the answer to be cut off", lambda: "cut short after it started" in srv.log())
            assert call(srv, "/health") == (200, b"OK")
            assert sql(srv, "SELECT count(*) AS n FROM cpu") == [{"n": V1_ROWS}]
            body = drained(client)  # closed by the server: returns
        finally:
            client.close()
        assert not body.endswith(b"\r\n0\r\n\r\n")


def test_a_flight_client_that_stops_reading_lets_go_of_its_view_at_the_deadline(tmp_path):
    """gRPC cannot be cut from the server's side, but the query behind the stalled call stops and unpins."""
    data = tmp_path / "data"
    with ServerProcess(data, "--without-auth", "--wal-flush-interval", "10ms", "--query-timeout", "3s") as srv:
        write(srv, 0, 10, 0.0)
        persist(srv)
        (old,) = table_files(data)
        write(srv, 5, 10, 100.0)
        client = flight.FlightClient(f"grpc+tcp://127.0.0.1:{srv.port}")
        try:
            ticket = flight.Ticket(json.dumps({"database": "lake", "sql_query": ENDLESS, "query_type": "sql"}).encode())
            reader = client.do_get(ticket)
            reader.read_chunk()  # the answer started; nothing more is read
            persist(srv)
            wait_for("the retired file to be deleted", lambda: not old.exists())
            assert sql(srv, "SELECT count(*) AS n FROM cpu") == [{"n": 15}]
            assert call(srv, "/health") == (200, b"OK")
            with pytest.raises(flight.FlightError, match="--query-timeout"):  # reading on: what gRPC held, then
                while True:
                    reader.read_chunk()
        finally:
            client.close()
