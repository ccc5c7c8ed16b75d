"""Issue 18, item 4: slowloris without a token, through a real server process.

Connections that sent half a request head, or idle keep-alives, stayed open for more than 320 s, and at
~20,000 of them the server ran out of file handles and stopped accepting. Now a head must arrive within
--http-read-header-timeout (a body may not pause longer), a whole request within --http-read-timeout, an
idle keep-alive is closed after --http-idle-timeout, and past --http-max-connections the connection that
has waited longest for its client is closed to make room, so legitimate clients keep being served.

Bounds are generous: they tell "closed by the server" (seconds) from "held open" (minutes, or never).
"""

from __future__ import annotations

import os
import socket
import time
import urllib.request

import pytest

from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

CLOSED_WITHIN = 30.0
HALF_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "


def connect(srv: ServerProcess, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=CLOSED_WITHIN)
    if first:
        sock.sendall(first)
    return sock


def closed_by_server(sock: socket.socket, within: float = CLOSED_WITHIN) -> bool:
    """True once the server closes the connection (EOF or reset) within `within` seconds."""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def served(srv: ServerProcess) -> bool:
    with urllib.request.urlopen(f"{srv.url}/health", timeout=CLOSED_WITHIN) as reply:
        return reply.status == 200 and reply.read() == b"OK"


def open_fds(srv: ServerProcess) -> int:
    assert srv.proc is not None
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


@pytest.fixture
def srv(tmp_path):
    with ServerProcess(tmp_path / "data", "--without-auth", "--http-read-header-timeout", "2s",
                       "--http-read-timeout", "6s", "--http-idle-timeout", "2s") as server:
        yield server


def test_half_heads_and_silent_connections_are_closed(srv):
    socks = [connect(srv, HALF_HEAD) for _ in range(20)] + [connect(srv) for _ in range(20)]
    try:
        assert served(srv)  # meanwhile, a real client is answered
        started = time.monotonic()
        assert all(closed_by_server(s) for s in socks)
        assert time.monotonic() - started < CLOSED_WITHIN
    finally:
        for s in socks:
            s.close()


def test_idle_keep_alive_is_closed(srv):
    sock = connect(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert closed_by_server(sock)
    finally:
        sock.close()


def test_stalled_and_trickling_bodies_are_closed(srv):
    head = b"POST /api/v3/write_lp?db=db HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    stalled = connect(srv, head + b"m v=1i 1\n")
    trickle = connect(srv, head)
    try:
        deadline = time.monotonic() + CLOSED_WITHIN
        trickled_closed = False
        while time.monotonic() < deadline:  # a byte a second: never a pause, but never done either
            try:
                trickle.sendall(b"x")
            except OSError:
                trickled_closed = True
                break
            time.sleep(1)
        assert trickled_closed or closed_by_server(trickle, 1)
        assert closed_by_server(stalled)
        assert served(srv)
    finally:
        stalled.close()
        trickle.close()


def test_connection_cap_keeps_legitimate_clients_served(tmp_path):
    # Timeouts far away: only the cap protects the server here.
    with ServerProcess(tmp_path / "data", "--without-auth", "--http-read-header-timeout", "10m",
                       "--http-max-connections", "64") as srv:
        baseline = open_fds(srv)
        slow = [connect(srv, HALF_HEAD) for _ in range(300)]
        try:
            for _ in range(20):
                assert served(srv)
            assert open_fds(srv) < baseline + 64 + 16, "connections past the cap kept file handles"
            closed = sum(closed_by_server(s, 0.5) for s in slow)
            assert closed >= 300 - 64, f"only {closed} of the slow connections were closed to make room"
        finally:
            for s in slow:
                s.close()
