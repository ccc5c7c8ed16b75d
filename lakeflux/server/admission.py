"""What the server lets in at once: bytes of write bodies in flight (`--max-write-bytes-in-flight`).

A write holds its body's bytes from the moment the server starts reading it until it is answered
(acknowledged after the WAL commit, or refused); a write that would take the total past the limit is
refused with 503 and Retry-After instead of being read, so many large concurrent writes cannot grow the
process without bound. One write is always let in when nothing else is held (a limit below the request
size limit must not refuse every large body for ever). Everything here runs on the event loop.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ..errors import Unavailable

WRITE_RETRY_AFTER = 1.0


class WriteBytes:
    """The budget of write-body bytes in flight; `limit` None means unbounded."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0

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

    def __enter__(self) -> HeldBytes:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._budget.held -= self.bytes
        self.bytes = 0
