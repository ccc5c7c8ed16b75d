"""One port for HTTP and gRPC (CONTRACT §5.3): route each connection by its first bytes.

Clients such as influxdb3-python and Grafana dial Flight on the HTTP host:port. The listener accepts
every connection itself and peeks (MSG_PEEK, nothing consumed) at the first bytes: a full HTTP/2
client preface goes to the Flight gRPC server on its internal loopback port, byte for byte through
a small proxy; the first byte that differs from the preface hands the untouched socket to aiohttp.
Deciding at the first mismatch matters: an HTTP/1.1 request can be shorter than the 24-byte preface.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from ..errors import Conflict
from .connections import Connection, Connections

log = logging.getLogger("lakeflux.listener")

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A client that has sent part of the preface gets this long to send the rest, and a client that
# sent nothing at all this long to start; then the connection is dropped.
FIRST_BYTES_TIMEOUT = 30.0
PARTIAL_POLL = 0.002
PROXY_CHUNK = 1 << 16


def classify(prefix: bytes) -> str | None:
    """'grpc' for a full HTTP/2 preface, 'http' once a byte differs from it, None while undecided."""
    n = min(len(prefix), len(H2_PREFACE))
    if prefix[:n] != H2_PREFACE[:n]:
        return "http"
    return "grpc" if n == len(H2_PREFACE) else None


class OnePortListener:
    """Accepts on `host:port`; HTTP connections go to `http_factory` (aiohttp's `runner.server`), HTTP/2
    ones are proxied to `grpc_port` on 127.0.0.1."""

    def __init__(self, host: str, port: int, http_factory: Callable[[], asyncio.BaseProtocol],
                 grpc_port: int, sock: socket.socket | None = None,
                 connections: Connections | None = None) -> None:
        self.host = host
        self.port = port
        self._http_factory = http_factory
        self._grpc_port = grpc_port
        self._sock: socket.socket | None = sock
        # Deadlines and the cap on connections (server/connections.py); None: neither.
        self._connections = connections
        self._first_bytes_timeout = connections.limits.header_timeout if connections else FIRST_BYTES_TIMEOUT
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen (port 0 picks a free port, then `self.port` is the real one) and start accepting;
        a socket given to the constructor (`listen_on`) is used as it is."""
        if self._sock is None:
            self._sock = listen_on(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def stop(self) -> None:
        """Stop accepting and end the gRPC proxies; HTTP connections belong to aiohttp (runner.cleanup)."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn, _addr = await loop.sock_accept(self._sock)
            except OSError as e:  # e.g. EMFILE: keep serving the connections we have
                log.warning("accept failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            entry = self._connections.accepted(conn.close) if self._connections is not None else None
            if self._connections is not None and entry is None:
                conn.close()  # every connection is busy with a request: no room for one more
                continue
            task = loop.create_task(self._route(conn, entry))
            if entry is not None:
                entry.close = task.cancel
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _route(self, conn: socket.socket, entry: Connection | None) -> None:
        try:
            try:
                kind = await asyncio.wait_for(_sniff(conn), self._first_bytes_timeout)
            except (TimeoutError, OSError):
                kind = None
            if kind == "http":
                await self._to_http(conn, entry)
                return  # from here on the connection is aiohttp's (and reports its own end)
            if kind == "grpc":
                if entry is not None and self._connections is not None:
                    self._connections.routed(entry, "grpc")
                await self._to_grpc(conn)
            else:
                conn.close()
        except asyncio.CancelledError:
            conn.close()
            raise
        finally:
            if entry is not None and self._connections is not None and entry.kind != "http":
                self._connections.gone(entry)

    async def _to_http(self, conn: socket.socket, entry: Connection | None) -> None:
        registry = self._connections
        if entry is not None and registry is not None:
            registry.routed(entry, "http")
            factory: Callable[[], asyncio.BaseProtocol] = lambda: registry.http_protocol(  # noqa: E731
                entry, self._http_factory())  # type: ignore[arg-type]
        else:
            factory = self._http_factory
        try:
            await asyncio.get_running_loop().connect_accepted_socket(factory, conn)
        except OSError:
            conn.close()
            if entry is not None and registry is not None:
                registry.gone(entry)

    async def _to_grpc(self, conn: socket.socket) -> None:
        try:
            client_r, client_w = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._grpc_port)
        except OSError as e:
            log.error("Flight server unreachable on port %d: %s", self._grpc_port, e)
            client_w.close()
            return
        await _splice(client_r, client_w, server_r, server_w)


def listen_on(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket on host:port; Conflict naming the address when it cannot be had
    (another process listens there, the host is not this machine's, ...)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except OSError as e:
        raise Conflict(f"cannot listen on {where}: {e.strerror or e}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise Conflict(f"cannot listen on {where}: the address is already in use (another server is "
                           "listening there; stop it or choose another --http-bind)") from None
        raise Conflict(f"cannot listen on {where}: {e.strerror or e}") from None
    return sock


async def _sniff(conn: socket.socket) -> str | None:
    """Peek until the first bytes decide; None if the client closed before sending anything decisive."""
    loop = asyncio.get_running_loop()
    await _readable(loop, conn)
    while True:
        try:
            prefix = conn.recv(len(H2_PREFACE), socket.MSG_PEEK)
        except BlockingIOError:  # a spurious wake-up: nothing to read after all
            await _readable(loop, conn)
            continue
        if not prefix:
            return None
        kind = classify(prefix)
        if kind is not None:
            return kind
        # A strict prefix of the preface is sitting unread, so the socket stays readable: wait for more
        # by polling briefly instead of spinning on readiness.
        await asyncio.sleep(PARTIAL_POLL)


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _splice(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                  server_r: asyncio.StreamReader, server_w: asyncio.StreamWriter) -> None:
    """Copy both directions until either side closes, then close both."""
    pumps = [asyncio.ensure_future(_pump(client_r, server_w)), asyncio.ensure_future(_pump(server_r, client_w))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for writer in (client_w, server_w):
            writer.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while True:
            data = await reader.read(PROXY_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
