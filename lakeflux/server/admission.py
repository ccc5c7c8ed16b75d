"""What the server lets in at once: bytes of write bodies in flight (`--max-write-bytes-in-flight`) and
queries running (`--max-concurrent-queries`).

A write holds its body's bytes from the moment the server starts reading it until it is answered
(acknowledged after the WAL commit, or refused); a write that would take the total past the limit is
refused with 503 and Retry-After instead of being read, so many large concurrent writes cannot grow the
process without bound. One write is always let in when nothing else is held (a limit below the request
size limit must not refuse every large body for ever). The write budget lives on the event loop.

A query takes a slot before it is planned and gives it back when its last byte is sent (or it failed or was
cancelled); with every slot taken a query is refused at once with 503 and Retry-After rather than queued, so
runaway queries cannot pile up behind each other. Slots are shared by HTTP and Flight (Flight calls run on
gRPC's threads), so they are thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import Unavailable

WRITE_RETRY_AFTER = 1.0
QUERY_RETRY_AFTER = 1.0


class WriteBytes:
    """The budget of write-body bytes in flight; `limit` None means unbounded."""

    def __init__(self, limit: int | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0
        self._monotonic = monotonic
        self._answering: dict[int, float] = {}  # id(holder) -> when its body was read

    def longest_wait(self) -> float:
        """Seconds the oldest write whose body is read has been waiting for its answer (0 when none)."""
        if not self._answering:
            return 0.0
        return self._monotonic() - min(self._answering.values())

    def hold(self) -> HeldBytes:
        """A holder for one request (use with `with`): grow it as bytes arrive, it gives them back on exit."""
        return HeldBytes(self)

    def families(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], Any]]]]:
        """/metrics families (server/metrics.py's collector shape)."""
        return [("lakeflux_write_bytes_in_flight", "gauge", "Bytes of write bodies read but not yet answered",
                 [({}, self.held)]),
                ("lakeflux_write_bytes_refused_total", "counter",
                 "Writes refused with 503 by --max-write-bytes-in-flight", [({}, self.refused)])]

    def _take(self, n: int, already: int) -> None:
        if self.limit is not None and n > 0 and self.held > already and self.held + n > self.limit:
            self.refused += 1
            raise Unavailable(
                f"too many bytes of writes in flight: {self.held + n} would exceed the limit of {self.limit} bytes "
                "(--max-write-bytes-in-flight); retry shortly", retry_after=WRITE_RETRY_AFTER)
        self.held += n


class HeldBytes:
    """The bytes one request holds in a `WriteBytes` budget."""

    def __init__(self, budget: WriteBytes) -> None:
        self._budget = budget
        self.bytes = 0

    def grow(self, n: int) -> None:
        """Hold `n` more bytes; Unavailable (nothing taken) when that would pass the limit."""
        self._budget._take(n, self.bytes)
        self.bytes += n

    def answering(self) -> None:
        """The body is read: from now on the write waits for the server alone (see `longest_wait`)."""
        self._budget._answering[id(self)] = self._budget._monotonic()

    def __enter__(self) -> HeldBytes:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._budget.held -= self.bytes
        self._budget._answering.pop(id(self), None)
        self.bytes = 0


class QuerySlots:
    """`limit` queries at once, across HTTP and Flight."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self.taken = 0
        self.refused = 0

    def take(self) -> None:
        """Take a slot; Unavailable (503 + Retry-After) when all are taken. Give it back with `give_back`."""
        with self._lock:
            if self.taken >= self.limit:
                self.refused += 1
                raise Unavailable(f"too many queries running: the limit is {self.limit} "
                                  "(--max-concurrent-queries); retry shortly", retry_after=QUERY_RETRY_AFTER)
            self.taken += 1

    def give_back(self) -> None:
        with self._lock:
            self.taken -= 1

    def families(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], Any]]]]:
        """/metrics families (server/metrics.py's collector shape)."""
        return [("lakeflux_queries_running", "gauge", "Queries holding a --max-concurrent-queries slot",
                 [({}, self.taken)]),
                ("lakeflux_queries_refused_total", "counter", "Queries refused with 503 by --max-concurrent-queries",
                 [({}, self.refused)])]
