"""The engine's ports implemented over the write buffer, the query engine and the WAL.

Plugins call these from engine worker threads. Writes are parsed here and handed to the write buffer
on the server's event loop with `run_coroutine_threadsafe`, so a plugin thread blocks until the commit
while the loop keeps serving (and flushing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import pyarrow as pa

from ..buffer import WriteBuffer
from ..engine.ports import CommittedSegment, SegmentInfo, SegmentTable
from ..errors import Invalid, Unavailable
from ..lineprotocol import LineError, parse
from ..model import Precision
from ..query.session import QueryEngine
from ..wal import Segment, Wal

# A plugin write that is not committed within this time is reported as failed (the store is down).
WRITE_TIMEOUT_S = 120.0


class BufferWriteSink:
    """WriteSink: line protocol from plugins into the write buffer (ns precision, all-or-nothing)."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Set (or clear, at shutdown) the event loop the write buffer runs on."""
        self._loop = loop

    def write_lines(self, db: str, lines: str, *, no_sync: bool) -> None:
        """Write `lines` to `db`; returns after the commit (or buffering with `no_sync`).

        Raises Invalid naming the first bad line, Unavailable when the server is not serving.
        """
        future = self._submit(db, lines, no_sync=no_sync)
        try:
            future.result(WRITE_TIMEOUT_S)
        except Invalid as exc:
            raise Invalid(_line_error_text(exc)) from exc
        except TimeoutError as exc:
            future.cancel()
            raise Unavailable(f"the write was not committed within {WRITE_TIMEOUT_S:.0f} s") from exc

    def submit_lines(self, db: str, lines: str) -> concurrent.futures.Future[None]:
        """Hand `lines` to the write buffer without waiting; the future resolves after their commit.

        It fails with Invalid naming the first bad line (nothing written), or Unavailable.
        """
        try:
            inner = self._submit(db, lines, no_sync=False)
        except Exception as exc:
            failed: concurrent.futures.Future[None] = concurrent.futures.Future()
            failed.set_exception(exc)
            return failed
        outer: concurrent.futures.Future[None] = concurrent.futures.Future()

        def relay(done: concurrent.futures.Future[list[LineError]]) -> None:
            exc = done.exception() if not done.cancelled() else Unavailable("the write was cancelled")
            if exc is None:
                outer.set_result(None)
            else:
                outer.set_exception(Invalid(_line_error_text(exc)) if isinstance(exc, Invalid) else exc)

        inner.add_done_callback(relay)
        return outer

    def _submit(self, db: str, lines: str, *, no_sync: bool) -> concurrent.futures.Future[list[LineError]]:
        """Parse here, then queue the write on the server's loop. Plugin writes are background writes:
        they never make a client's write wait for a commit (buffer/writebuffer.py)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            raise Unavailable("the server is not accepting writes")
        body = lines.encode("utf-8")
        parsed = parse(body, precision=Precision.NANOSECOND, default_time_ns=time.time_ns())
        return asyncio.run_coroutine_threadsafe(
            self._buffer.write(db, parsed, accept_partial=False, no_sync=no_sync, body=body, background=True), loop
        )


def _line_error_text(exc: Invalid) -> str:
    """`line protocol parsing error: line 2: <why> (<line>)` from the buffer's structured error."""
    data = exc.data
    if isinstance(data, dict):
        where = f"line {data.get('line_number')}: " if data.get("line_number") is not None else ""
        line = f" ({data['original_line']})" if data.get("original_line") else ""
        return f"{exc.message}: {where}{data.get('error_message', '')}{line}"
    return exc.message


class EngineQueryRunner:
    """QueryRunner over the server's query engine (read-only SQL, `$params` bound after parsing)."""

    def __init__(self, engine: QueryEngine) -> None:
        self._engine = engine

    def query(self, db: str, sql: str, params: dict[str, Any] | None) -> pa.Table:
        """The whole result as one Arrow table; NotFound for an unknown database, Invalid for bad SQL."""
        return self._engine.execute(db, sql, params).to_table()


def committed_segment(segment: Segment) -> CommittedSegment:
    """What the engine is told about a segment: its rows grouped per database, in segment order."""
    databases: dict[str, list[SegmentTable]] = {}
    for table in segment.tables:
        databases.setdefault(table.db, []).append(SegmentTable(table.table, table.data, table.tags))
    return CommittedSegment(seq=segment.seq, databases=databases)


class WalSegmentSource:
    """SegmentSource over the WAL: where WAL triggers catch up from after a restart."""

    def __init__(self, wal: Wal, buffer: WriteBuffer) -> None:
        self._wal = wal
        self._buffer = buffer

    def head(self) -> int:
        """The newest sequence handed to the WAL (the buffer's next one minus one)."""
        return self._buffer.next_seq - 1

    def list_after(self, seq: int) -> list[SegmentInfo]:
        """Committed segments after `seq`, with their size and commit (modification) time."""
        return [SegmentInfo(found, meta.size, meta.last_modified_ns) for found, meta in self._wal.list_segments(seq)]

    def read(self, seq: int, db: str, table: str | None) -> list[SegmentTable]:
        """`db`'s tables of segment `seq`; a `table:` trigger fetches only that table's column chunks."""
        segment = self._wal.read(seq, only={(db, table)} if table is not None else None)
        return [SegmentTable(t.table, t.data, t.tags) for t in segment.tables if t.db == db]


class EngineWalListener:
    """WalListener that tells the engine about each committed segment (enqueue only, never blocks)."""

    def __init__(self, notify: Any) -> None:
        self._notify = notify

    def segment_committed(self, segment: Segment) -> None:
        self._notify(committed_segment(segment))
