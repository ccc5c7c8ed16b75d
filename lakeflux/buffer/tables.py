"""Committed rows held in memory per (database, table) until a snapshot persists them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

TAG_TYPE = pa.dictionary(pa.int32(), pa.string())
TIME_TYPE = pa.timestamp("ns")


@dataclass
class _TableChunks:
    chunks: list[tuple[int, pa.Table]] = field(default_factory=list)  # (WAL seq, rows as committed)
    rows: int = 0


class BufferedTables:
    """Thread-safe store of committed rows; readers get an immutable list of chunks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], _TableChunks] = {}
        self.rows = 0

    def add(self, db: str, table: str, seq: int, data: pa.Table, tags: tuple[str, ...]) -> None:
        """Hold committed rows for queries, converted to SQL types (dictionary tags, timestamp time)."""
        data = to_query_form(data, tags)
        with self._lock:
            t = self._tables.setdefault((db, table), _TableChunks())
            # Copy-on-write so a reader's list never changes under it.
            t.chunks = [*t.chunks, (seq, data)]
            t.rows += data.num_rows
            self.rows += data.num_rows

    def chunks(self, db: str, table: str) -> list[tuple[int, pa.Table]]:
        with self._lock:
            t = self._tables.get((db, table))
            return t.chunks if t is not None else []

    def drop_database(self, db: str) -> None:
        with self._lock:
            for key in [k for k in self._tables if k[0] == db]:
                self.rows -= self._tables.pop(key).rows

    def drop_table(self, db: str, table: str) -> None:
        with self._lock:
            t = self._tables.pop((db, table), None)
            if t is not None:
                self.rows -= t.rows

    def tables_of(self, db: str) -> list[str]:
        with self._lock:
            return [t for d, t in self._tables if d == db]


def to_query_form(data: pa.Table, tags: tuple[str, ...] | list[str]) -> pa.Table:
    """Committed WAL rows (Utf8 tags, Int64 time) → SQL types (dictionary tags, timestamp time)."""
    cols = []
    fields = []
    for f, col in zip(data.schema, data.columns, strict=True):
        if f.name in tags:
            col = pc.dictionary_encode(col)
            if col.type != TAG_TYPE:
                col = col.cast(TAG_TYPE)
        elif f.name == "time":
            col = col.cast(TIME_TYPE)
        cols.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))
