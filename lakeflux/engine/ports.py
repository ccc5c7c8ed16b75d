"""The only ways the engine reaches the rest of lakeflux: small Protocols the server wires up.

Every method here is blocking and is called from engine worker threads, never from the HTTP
event loop. Implementations live in server/ (which owns the wiring); tests use fakes.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


class WriteSink(Protocol):
    def write_lines(self, db: str, lines: str, *, no_sync: bool) -> None:
        """Write line protocol (ns precision, accept_partial=false, db auto-created).

        Returns after the WAL segment holding the lines is committed (no_sync=False) or after they
        are buffered (no_sync=True). Raises a lakeflux error naming the cause on any failure.
        """
        ...


@runtime_checkable
class BackgroundWriteSink(Protocol):
    def submit_lines(self, db: str, lines: str) -> Future[None]:
        """Hand line protocol to the write path without waiting (a WAL trigger's write-back).

        Returns at once with a future that resolves once the WAL segment holding the lines is
        committed, or fails with a lakeflux error naming the cause (a bad line: nothing written).
        Such writes never make a client's write wait for a commit.
        """
        ...


class QueryRunner(Protocol):
    def query(self, db: str, sql: str, params: dict[str, Any] | None) -> pa.Table:
        """Run read-only SQL against `db`, binding `$name` params; NotFound for an unknown db."""
        ...


class LogSink(Protocol):
    def log(self, db: str, trigger: str, level: str, text: str) -> None:
        """Record one plugin log row (level INFO/WARN/ERROR); durable at the next log flush."""
        ...


@dataclass(frozen=True)
class SegmentTable:
    """One table's rows of one committed WAL segment, as the WAL wrote them."""

    table: str
    data: pa.Table  # tag columns Utf8, fields typed, "time" Int64 ns; nulls = absent in that line
    tags: tuple[str, ...]


@dataclass(frozen=True)
class CommittedSegment:
    """What the engine is told after a WAL commit: the sequence and the rows per database."""

    seq: int
    databases: dict[str, list[SegmentTable]]


@dataclass(frozen=True)
class SegmentInfo:
    """A committed WAL segment as listed in the object store: sequence, size and commit time."""

    seq: int
    size: int
    committed_ns: int
