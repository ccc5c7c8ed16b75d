"""Query answers streamed to HTTP clients: produced on a query thread, written on the event loop.

A query runs on one thread of the query pool from planning to its last chunk: it plans, pulls batches
from DataFusion, formats them (query/formats.py), and hands each chunk to the event loop at most DEPTH
chunks ahead of what the client has taken, so a slow client holds the query back instead of memory
filling up, and formatting a large result never blocks the loop (`/health` and writes keep being served).

The status line is sent with the first chunk: errors found while planning or before the first rows (bad
SQL, the query timeout, the memory limit, an engine panic) get their own status and JSON body. An error
after the first bytes can only cut the response short: the connection is closed without the body's end,
so the client sees an incomplete response, never a complete-looking wrong one.

A client that goes away cancels its query: the loop watches the connection while it waits for a chunk,
and a failed write stops the producer. A client that stays but stops reading would leave the loop in a write
nobody drains and the producer waiting for room, with its query (and the view it pinned, so the files a
snapshot retired) kept for as long as the connection lasts: `--query-timeout` counts from the query's start
to the answer's last byte instead. Once the deadline passes, one timer per answer stops the query and closes
the connection (the status line is gone, so the body is cut short and the cut logged); nothing is added per
chunk or per row. The query's `--max-concurrent-queries` slot is given back by the
producer thread when it is done, so a slot is free only once its thread is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp import web

from ..errors import Invalid, LakefluxError, Unavailable
from ..query.running import RunningQuery
from .errors import stamp_headers
from .services import Services

log = logging.getLogger("lakeflux.server")

DEPTH = 2
# How often a waiting producer or the loop looks whether the other side gave up.
WATCH_INTERVAL = 0.2
CLIENT_GONE = "the client closed the connection"

_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _ClientGone(Exception):
    pass


class Cancel:
    """Where a producer's running query can be reached, from any thread, to cancel it; `deadline` (monotonic
    seconds, None: none) is the answer's, for the producer to start its query with."""

    def __init__(self, deadline: float | None = None) -> None:
        self._lock = threading.Lock()
        self._query: RunningQuery | None = None
        self.error: LakefluxError | None = None
        self.deadline = deadline

    def attach(self, query: RunningQuery) -> None:
        """The producer's query (cancelled at once if `cancel` came first)."""
        with self._lock:
            self._query = query
            error = self.error
        if error is not None:
            query.cancel(error)

    def cancel(self, error: LakefluxError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
            query = self._query
        if query is not None:
            query.cancel(self.error)


class ChunkPipe:
    """Chunks from one producer thread to the event loop, at most DEPTH ahead of the consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(DEPTH)
        self._closed = threading.Event()

    def feed(self, make: Callable[[], Iterable[bytes]]) -> None:
        """Producer side (blocking): send every chunk `make()` gives, then the end or the error that stopped
        them (`make` itself failing included). Returns early, closing the chunks, once the consumer closed
        the pipe."""
        iterator: Iterator[bytes] = iter(())
        try:
            iterator = iter(make())
            for chunk in iterator:
                if not chunk:
                    continue
                while not self._room.acquire(timeout=WATCH_INTERVAL):
                    if self._closed.is_set():
                        return
                if self._closed.is_set():
                    return
                self._send(chunk)
            self._send(_END)
        except BaseException as e:  # noqa: BLE001 - everything goes to the loop, which decides
            self._send(_Failed(e))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _send(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nobody is waiting
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)

    async def next(self) -> bytes | None:
        """Consumer side: the next chunk, None at the end; raises the producer's error."""
        item = await self._items.get()
        if item is _END:
            return None
        if isinstance(item, _Failed):
            raise item.error
        self._room.release()
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self._closed.set()


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream_answer(request: web.Request, svc: Services, content_type: str,
                        produce: Callable[[Cancel], Iterator[bytes]],
                        headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Run `produce(cancel)` on the query pool under a query slot and stream its chunks as a 200 response
    of `content_type`; errors before the first chunk are raised here (the error middleware answers them).
    The query's deadline (`cancel.deadline`, from now) holds for sending the answer too."""
    cancel = Cancel(svc.query.deadline())
    svc.query_slots.take()
    loop = asyncio.get_running_loop()
    pipe = ChunkPipe(loop)

    def work() -> None:
        try:
            pipe.feed(lambda: produce(cancel))
        finally:
            svc.query_slots.give_back()

    try:
        loop.run_in_executor(svc.query_pool, work)
    except RuntimeError:  # the pool is shut down
        svc.query_slots.give_back()
        raise Unavailable("server is shutting down") from None
    response: web.StreamResponse | None = None
    cut: asyncio.TimerHandle | None = None
    try:
        chunk = await _next_chunk(request, pipe, cancel)
        answer = web.StreamResponse(status=200, headers={**stamp_headers(request), **(headers or {}),
                                                         "Content-Type": content_type})
        cut = cut_off_at_deadline(request, answer, cancel.deadline, lambda: _stop(svc, cancel))
        response = answer
        await response.prepare(request)
        while chunk is not None:
            await response.write(chunk)
            chunk = await _next_chunk(request, pipe, cancel)
        await response.write_eof()
        return response
    except (_ClientGone, ConnectionError):
        cancel.cancel(Invalid(CLIENT_GONE))
        return response or web.Response(status=499)
    except asyncio.CancelledError:
        cancel.cancel(Unavailable("server is shutting down"))
        raise
    except Exception as e:
        cancel.cancel(e if isinstance(e, LakefluxError) else Invalid(CLIENT_GONE))
        if response is None:
            raise
        _cut_short(request, response, e.message if isinstance(e, LakefluxError) else repr(e))
        return response
    finally:
        if cut is not None:
            cut.cancel()
        pipe.close()


def cut_off_at_deadline(request: web.Request, response: web.StreamResponse, deadline: float | None,
                        stop: Callable[[], LakefluxError]) -> asyncio.TimerHandle | None:
    """Call before preparing `response`: past `deadline` (monotonic seconds), `stop()` ends the query (it
    returns the error naming the deadline), the cut is logged and the connection closed, wherever the answer
    is (a write the client does not drain, or waiting for the next chunk). Raises `stop()`'s error at once
    when the deadline passed before the status line was sent. The caller cancels the timer when the answer
    is complete. None when there is no deadline."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise stop()

    return asyncio.get_running_loop().call_later(
        left, lambda: _cut_short(request, response, stop().message, reset=True))


def _cut_short(request: web.Request, response: web.StreamResponse, why: str, *, reset: bool = False) -> None:
    """The status line is gone: all that is left is to cut the body short (the client sees it incomplete).
    `reset`: what the kernel still holds for the client is dropped too (a reset, not a close after it): a
    client that does not read would otherwise keep megabytes of the server's memory waiting for it."""
    log.warning("query answer to %s cut short after it started: %s", request.remote, why)
    response.force_close()
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket") if reset else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _stop(svc: Services, cancel: Cancel) -> LakefluxError:
    """Cancel the producer's query at its deadline; the error that names it."""
    error = svc.query.timed_out()
    cancel.cancel(error)
    return error


async def _next_chunk(request: web.Request, pipe: ChunkPipe, cancel: Cancel) -> bytes | None:
    """The pipe's next chunk; _ClientGone (the query cancelled) when the client leaves meanwhile."""
    get = asyncio.ensure_future(pipe.next())
    try:
        while True:
            done, _ = await asyncio.wait({get}, timeout=WATCH_INTERVAL)
            if done:
                return get.result()
            if client_gone(request):
                cancel.cancel(Invalid(CLIENT_GONE))
                raise _ClientGone()
    finally:
        if not get.done():
            get.cancel()
