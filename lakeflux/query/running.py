"""One executing query: a DataFusion stream that can be stopped from any thread.

DataFusion runs a query on its own threads; a blocking `next()` on its stream cannot be interrupted,
so a runaway query (a recursive CTE, a huge cross join) would hold its caller and keep the cores busy
for ever. Here each batch is awaited through the stream's asynchronous interface on a small event loop
private to the calling thread; `cancel` (from any thread) or the deadline cancels that wait, and
closing the stream drops DataFusion's tasks, which stop at their next batch boundary.

Errors leave as lakeflux errors: the memory pool's "Resources exhausted" names the limit, an engine
panic (pyo3's PanicException, a BaseException) becomes Internal instead of killing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from ..errors import Internal, Invalid, LakefluxError, LimitExceeded, TimedOut
from .guards import limit_text_in

# How often a `poll` callable (a Flight call's is_cancelled) is consulted while a batch is awaited.
POLL_INTERVAL = 0.1

_local = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's private event loop (created on first use, reused for every batch)."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def is_engine_panic(exc: BaseException) -> bool:
    """True for the exception pyo3 raises when Rust code panics (it derives from BaseException)."""
    return type(exc).__name__ == "PanicException"


def engine_error(exc: BaseException, memory_limit: str | None = None) -> LakefluxError:
    """A lakeflux error for an exception DataFusion raised while planning or running a query."""
    message = " ".join(str(exc).split())
    guarded = limit_text_in(message)
    if guarded is not None:
        return LimitExceeded(f"query exceeded its memory limit: {guarded}")
    if is_engine_panic(exc):
        return Internal(f"the query engine failed on this query: {message}")
    if "resources exhausted" in message.lower():
        limit = f" ({memory_limit})" if memory_limit else ""
        return LimitExceeded(f"query exceeded its memory limit{limit}: {message}")
    return Invalid(message)


class RunningQuery:
    """A planned query's schema and its batches, pulled one at a time by one thread at a time.

    `cancel(error)` may be called from any thread: the batch being awaited (or the next one asked for)
    raises `error`. The deadline (monotonic seconds) raises TimedOut naming `timeout_text`. Always
    `close()`: it stops DataFusion's work and runs `on_close` (releasing what planning took) once.
    """

    def __init__(self, stream: Any, schema: pa.Schema, *, convert: Callable[[pa.RecordBatch], pa.RecordBatch],
                 deadline: float | None = None, timeout_text: str = "", memory_limit: str | None = None,
                 on_close: Callable[[bool], None] | None = None,
                 error_hook: Callable[[BaseException], BaseException] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.schema = schema
        self._stream: Any = stream
        self._convert = convert
        self._deadline = deadline
        self._timeout_text = timeout_text
        self._memory_limit = memory_limit
        self._on_close = on_close
        self._error_hook = error_hook
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._error: LakefluxError | None = None
        self._waiting: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]] | None = None
        self._finished = False
        self._closed = False
        self._pulling = False
        self.batches = 0
        self.rows = 0

    # --- control, from any thread --------------------------------------------------------------
    def cancel(self, error: LakefluxError) -> None:
        """Stop the query: the caller pulling batches gets `error` (the first cancel wins)."""
        with self._lock:
            if self._error is None:
                self._error = error
            waiting = self._waiting
        if waiting is not None:
            loop, future = waiting
            with contextlib.suppress(RuntimeError):  # the loop closed: the wait is over anyway
                loop.call_soon_threadsafe(future.cancel)

    @property
    def cancelled(self) -> LakefluxError | None:
        return self._error

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def expire(self) -> bool:
        """The deadline passed (call from any thread): a batch being pulled fails with TimedOut as it would
        anyway; when none is, the query is closed now, so what planning took (its view's pin) is given back
        without waiting for a pull that may never come (a caller stuck sending earlier batches to a client
        that does not read), and the next pull raises TimedOut. True when it closed the query."""
        error = TimedOut(self._timeout_text or "the query timed out")
        with self._lock:
            if self._closed or self._finished:
                return False
            if self._error is None:
                self._error = error  # set under the lock: no pull starts after this
            pulling = self._pulling
        if pulling:
            self.cancel(error)  # wakes the pull under way, which raises the first error
            return False
        self.close()
        return True

    def close(self) -> None:
        """Drop the stream (DataFusion's tasks stop) and run `on_close(completed)`; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stream = None
        if self._on_close is not None:
            self._on_close(self._finished and self._error is None)

    # --- pulling batches, from the thread that runs the query --------------------------------------
    def next_batch(self, poll: Callable[[], bool] | None = None) -> pa.RecordBatch | None:
        """The next batch (converted), or None at the end. Blocking; raises the cancel error, TimedOut
        past the deadline, or the query's own error. `poll` returning True cancels the query."""
        if self._finished:
            return None
        with self._lock:  # `expire` closes the query only while no pull is under way
            if self._error is not None:
                raise self._error
            stream = self._stream
            if stream is None:
                raise Invalid("the query was closed")
            self._pulling = True
        loop = _thread_loop()
        try:
            batch = loop.run_until_complete(self._await_next(loop, stream, poll))
        except StopAsyncIteration:
            self._finished = True
            return None
        except LakefluxError:
            raise
        except asyncio.CancelledError:
            raise self._error or Invalid("the query was cancelled") from None
        except BaseException as e:  # noqa: BLE001 - panics are BaseExceptions; they must become errors
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            if self._error_hook is not None:
                raise self._error_hook(e) from None
            raise engine_error(e, self._memory_limit) from None
        finally:
            with self._lock:
                self._pulling = False
        converted = self._convert(batch.to_pyarrow())
        self.batches += 1
        self.rows += converted.num_rows
        return converted

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while (batch := self.next_batch()) is not None:
            yield batch

    async def _await_next(self, loop: asyncio.AbstractEventLoop, stream: Any,
                          poll: Callable[[], bool] | None) -> Any:
        task = loop.create_task(_anext(stream))
        with self._lock:
            self._waiting = (loop, task)
            error = self._error
        try:
            if error is not None:
                task.cancel()
            while True:
                wait = POLL_INTERVAL if poll is not None else None
                if self._deadline is not None:
                    left = self._deadline - self._monotonic()
                    if left <= 0:
                        self.cancel(TimedOut(self._timeout_text or "the query timed out"))
                        left = POLL_INTERVAL
                    wait = left if wait is None else min(wait, left)
                done, _ = await asyncio.wait({task}, timeout=wait)
                if done:
                    break
                if poll is not None and self._error is None and poll():
                    self.cancel(Invalid("the client cancelled the query"))
            if task.cancelled():
                raise self._error or asyncio.CancelledError()
            return task.result()
        finally:
            with self._lock:
                self._waiting = None
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _anext(stream: Any) -> Any:
    return await stream.__anext__()
