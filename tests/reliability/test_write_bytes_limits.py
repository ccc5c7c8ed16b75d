"""Issue 18, item 9: bytes of writes in flight are bounded (`--max-write-bytes-in-flight`), through a real server.

150 concurrent 9.9 MB writes used to take 2.37 GiB: every body was read and parsed at once. Now a write holds
its body's bytes from the moment the server starts reading it until it is answered, and a write that would
pass the limit is refused with 503 and Retry-After (nothing written) instead of being read.
"""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from lakeflux.testing.chaos import post, query
from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

LIMIT = 1024 * 1024


@pytest.fixture
def srv(tmp_path):
    with ServerProcess(tmp_path / "data", "--without-auth", "--wal-flush-interval", "10ms",
                       "--max-write-bytes-in-flight", "1MiB") as server:
        yield server


def body(first: int, n: int, table: str = "m") -> bytes:
    return b"".join(b"%s,pad=%s v=%di %d\n" % (table.encode(), b"p" * 60, i, i) for i in range(first, first + n))


def in_flight(srv: ServerProcess) -> int:
    with urllib.request.urlopen(f"{srv.url}/metrics", timeout=30) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("lakeflux_write_bytes_in_flight "):
                return int(line.split()[1])
    raise AssertionError("no lakeflux_write_bytes_in_flight on /metrics")


def test_writes_past_the_limit_get_503_until_bytes_are_answered(srv):
    slow = body(0, 9000)  # ~800 KB, sent all but its last line, then held open
    assert 0.6 * LIMIT < len(slow) < LIMIT
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    try:
        head = (f"POST /api/v3/write_lp?db=db HTTP/1.1\r\nHost: x\r\nContent-Length: {len(slow)}\r\n"
                "Content-Type: text/plain\r\n\r\n").encode()
        cut = slow.rindex(b"\n", 0, len(slow) - 1) + 1
        sock.sendall(head + slow[:cut])
        deadline = time.monotonic() + 60
        while in_flight(srv) < len(slow):  # the server holds the declared body before reading it
            assert time.monotonic() < deadline, "the slow write's bytes never showed as in flight"
            time.sleep(0.05)

        refused = post(f"{srv.url}/api/v3/write_lp?db=db", body(100_000, 5000, "other"))
        assert refused.status == 503, refused
        assert int(refused.headers["Retry-After"]) >= 1
        assert b"--max-write-bytes-in-flight" in refused.body

        sock.sendall(slow[cut:])
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 204"), reply
    finally:
        sock.close()
    assert in_flight(srv) == 0
    assert post(f"{srv.url}/api/v3/write_lp?db=db", body(100_000, 5000, "other")).status == 204
    assert query(srv.url, "db", "SELECT count(*) AS n FROM m") == [{"n": 9000}]
    assert query(srv.url, "db", "SELECT count(*) AS n FROM other") == [{"n": 5000}]


def test_one_write_larger_than_the_limit_is_let_in_alone(srv):
    big = body(0, 14_000)
    assert LIMIT < len(big) < 10 * 1024 * 1024
    assert post(f"{srv.url}/api/v3/write_lp?db=big", big).status == 204
    assert query(srv.url, "big", "SELECT count(*) AS n FROM m") == [{"n": 14_000}]
