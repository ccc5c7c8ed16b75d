"""Every connection the one-port listener accepted, with deadlines on slow clients and a cap on their number.

A client that opens connections and sends nothing, half a request head, or a body that never finishes
(slowloris) used to keep each connection for as long as it liked, until the process ran out of file
handles. aiohttp has an idle keep-alive timeout (`--http-idle-timeout`, passed to it) but nothing for a
request that is still arriving, so this module watches the bytes as they arrive, beneath aiohttp:

- a request head must be complete within `--http-read-header-timeout` of its first byte (of the
  connection, for the first request: a client that sends nothing at all is dropped as soon);
- a request body may not pause longer than that either, and a request (head and body) must be complete
  within `--http-read-timeout`;
- at most `--http-max-connections` connections are open: one more closes the connection that has been
  waiting longest for a client that sends nothing useful (an idle keep-alive, a head still arriving, first
  bytes not yet seen), so legitimate clients keep being served while a slowloris holds connections; when
  every connection is busy with a request the new one is closed instead.

Connections in a request's handler with its body read (a query running, a response being sent) have no
deadline here: queries have their own timeout. gRPC connections count against the cap but have no
deadlines (Flight keeps connections open between calls by design).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import Handler

log = logging.getLogger("lakeflux.connections")

SWEEP_INTERVAL = 0.5


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    read_timeout: float = 300.0
    max_connections: int = 4096


class Connection:
    """One accepted connection: what it is, which phase it is in and since when."""

    __slots__ = ("kind", "phase", "since", "started", "last_byte", "request", "close", "transport")

    def __init__(self, close: Callable[[], None], now: float) -> None:
        self.kind = "new"  # new (first bytes not seen) | http | grpc
        self.phase = "waiting"  # http: waiting (for a request) | head | body | handling
        self.since = now  # when the current phase began
        self.started = now  # when the current request's first byte came
        self.last_byte = now
        self.request: web.BaseRequest | None = None
        self.close = close
        self.transport: Any = None

    def evictable(self) -> bool:
        return self.kind == "new" or (self.kind == "http" and self.phase in ("waiting", "head"))


class Connections:
    """The registry: the listener adds and removes connections, the HTTP protocol wrapper reports bytes,
    the middleware reports requests; a sweep closes connections past their deadlines."""

    def __init__(self, limits: ConnectionLimits, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._open: dict[Connection, None] = {}  # insertion-ordered set
        self._by_transport: dict[Any, Connection] = {}
        self.closed: dict[str, int] = {"header_timeout": 0, "read_timeout": 0, "evicted": 0, "refused": 0}
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    # --- the listener ------------------------------------------------------------------------------
    def accepted(self, close: Callable[[], None]) -> Connection | None:
        """Register a new connection (`close` drops it); at the cap, first close the connection waiting
        longest for its client. None: no room (the caller closes the new connection)."""
        if len(self._open) >= self.limits.max_connections:
            oldest = min((c for c in self._open if c.evictable()), key=lambda c: c.since, default=None)
            if oldest is None:
                self.closed["refused"] += 1
                return None
            self._drop(oldest, "evicted")
        conn = Connection(close, self._monotonic())
        self._open[conn] = None
        return conn

    def routed(self, conn: Connection, kind: str) -> None:
        conn.kind = kind
        conn.phase, conn.since = "waiting", self._monotonic()

    def gone(self, conn: Connection) -> None:
        self._open.pop(conn, None)
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)

    def http_protocol(self, conn: Connection, inner: asyncio.Protocol) -> asyncio.Protocol:
        return _Guarded(self, conn, inner)

    # --- the HTTP protocol wrapper and the middleware ------------------------------------------------
    def _bytes(self, conn: Connection) -> None:
        now = self._monotonic()
        conn.last_byte = now
        if conn.phase == "waiting":
            conn.phase, conn.since, conn.started = "head", now, now

    def request_started(self, request: web.BaseRequest) -> None:
        conn = self._by_transport.get(request.transport)
        if conn is None:
            return
        conn.request = request
        conn.phase, conn.since = "body", self._monotonic()

    def request_finished(self, request: web.BaseRequest) -> None:
        conn = self._by_transport.get(request.transport)
        if conn is None or conn.request is not request:
            return
        conn.request = None
        conn.phase, conn.since = "waiting", self._monotonic()

    # --- deadlines ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                self.sweep()
            except Exception:  # never let one odd connection stop the sweeps
                log.exception("connection sweep failed")

    def sweep(self) -> None:
        """Close every connection past a deadline."""
        now = self._monotonic()
        header, whole = self.limits.header_timeout, self.limits.read_timeout
        for conn in list(self._open):
            if conn.kind == "new" or conn.phase == "head":
                if now - conn.since > header:
                    self._drop(conn, "header_timeout")
            elif conn.phase == "body":
                request = conn.request
                if request is None or request.content.is_eof():
                    conn.phase, conn.since = "handling", now
                elif now - conn.last_byte > header or now - conn.started > whole:
                    self._drop(conn, "read_timeout")

    def _drop(self, conn: Connection, reason: str) -> None:
        self.closed[reason] += 1
        self._open.pop(conn, None)
        conn.close()

    def families(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], Any]]]]:
        """/metrics families (server/metrics.py's collector shape)."""
        return [("lakeflux_connections_open", "gauge", "Connections open (HTTP and gRPC)", [({}, len(self._open))]),
                ("lakeflux_connections_closed_total", "counter",
                 "Connections closed by the server for a slow or idle client, or refused at the cap",
                 [({"reason": reason}, n) for reason, n in sorted(self.closed.items())])]


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with every byte reported to the registry first."""

    def __init__(self, registry: Connections, conn: Connection, inner: asyncio.Protocol) -> None:
        self._registry = registry
        self._conn = conn
        self._inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._conn.transport = transport
        self._conn.close = transport.close
        self._registry._by_transport[transport] = self._conn
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._registry._bytes(self._conn)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.gone(self._conn)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def connection_middleware(registry: Connections) -> Handler:
    """The outermost middleware: tells the registry when a request's handler starts and ends."""

    @web.middleware
    async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
        registry.request_started(request)
        try:
            return await handler(request)
        finally:
            registry.request_finished(request)

    return track  # type: ignore[return-value]
