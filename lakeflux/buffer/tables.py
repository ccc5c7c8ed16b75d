"""Committed rows held in memory per (database, table) until a snapshot persists them."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa

from .sqltypes import to_query_form

T = TypeVar("T")
# derive(chunks, previous): previous = (chunks covered, value) of an earlier call, or None.
Derive = Callable[[list[tuple[int, pa.Table]], tuple[int, T] | None], T]


@dataclass
class _TableChunks:
    chunks: list[tuple[int, pa.Table]] = field(default_factory=list)  # (WAL seq, rows in SQL types)
    rows: int = 0
    nbytes: int = 0
    version: int = 0  # changes whenever `chunks` does (unique across tables and their re-creations)
    derived: _Derived | None = None  # what a reader made of these chunks (or of a prefix of them)


@dataclass(frozen=True)
class _Derived:
    key: Hashable
    version: int  # of the chunks it was made from
    chunks: int  # how many chunks it covers (the first ones)
    value: Any


class BufferedTables:
    """Thread-safe store of committed rows; readers get immutable lists of chunks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], _TableChunks] = {}
        # One counter for every table: a dropped and re-created table never repeats an old version.
        self._versions = itertools.count(1)
        self.rows = 0
        self.nbytes = 0

    def add(self, db: str, table: str, seq: int, data: pa.Table, tags: tuple[str, ...]) -> None:
        """Hold committed rows for queries, converted to SQL types (dictionary tags, timestamp time)."""
        data = to_query_form(data, tags)
        size = data.nbytes
        with self._lock:
            t = self._tables.setdefault((db, table), _TableChunks())
            # Copy-on-write so a reader's list never changes under it.
            t.chunks = [*t.chunks, (seq, data)]
            self._changed(t, appended=True)
            t.rows += data.num_rows
            t.nbytes += size
            self.rows += data.num_rows
            self.nbytes += size

    def chunks(self, db: str, table: str) -> list[tuple[int, pa.Table]]:
        with self._lock:
            t = self._tables.get((db, table))
            return t.chunks if t is not None else []

    def derived(self, db: str, table: str, key: Hashable, derive: Derive[T]) -> T:
        """What `derive` makes of the table's chunks (e.g. rows merged for queries), kept until the chunks
        change or a caller asks with another `key`. When chunks were only appended since, `derive` gets
        the earlier value and how many chunks it covered, to extend it instead of starting over. Kept
        beside the chunks: dropping rows drops it too, so it never outlives the rows it was made from."""
        with self._lock:
            t = self._tables.get((db, table))
            previous = None
            if t is not None and t.derived is not None and t.derived.key == key:
                if t.derived.version == t.version:
                    cached: T = t.derived.value
                    return cached
                previous = (t.derived.chunks, t.derived.value)
            version, chunks = (t.version, t.chunks) if t is not None else (0, [])
        value = derive(chunks, previous)  # outside the lock: writers and other readers go on meanwhile
        with self._lock:
            if t is not None and self._tables.get((db, table)) is t and t.version == version:
                t.derived = _Derived(key, version, len(chunks), value)
        return value

    def _changed(self, t: _TableChunks, *, appended: bool) -> None:
        """Called with the lock held whenever `t.chunks` is replaced; a derived value stays usable as
        the start of the next one only when chunks were appended."""
        t.version = next(self._versions)
        if not appended:
            t.derived = None

    def chunks_upto(self, seq: int) -> dict[tuple[str, str], list[pa.Table]]:
        """Every table's chunks from WAL segments ≤ `seq` (what a snapshot at `seq` persists)."""
        with self._lock:
            out = {}
            for key, t in self._tables.items():
                parts = [data for s, data in t.chunks if s <= seq]
                if parts:
                    out[key] = parts
            return out

    def drop_upto(self, seq: int, held: Collection[tuple[str, str]] = ()) -> None:
        """Forget chunks from WAL segments ≤ `seq` (they are persisted now), except those of the (db, table)
        pairs in `held` (a snapshot could not persist them)."""
        with self._lock:
            for key in list(self._tables):
                if key in held:
                    continue
                t = self._tables[key]
                keep = [(s, d) for s, d in t.chunks if s > seq]
                dropped_rows = t.rows - sum(d.num_rows for _, d in keep)
                dropped_bytes = t.nbytes - sum(d.nbytes for _, d in keep)
                if len(keep) != len(t.chunks):
                    self._changed(t, appended=False)
                t.chunks, t.rows, t.nbytes = keep, t.rows - dropped_rows, t.nbytes - dropped_bytes
                self.rows -= dropped_rows
                self.nbytes -= dropped_bytes
                if not keep:
                    del self._tables[key]

    def drop_database(self, db: str) -> None:
        with self._lock:
            for key in [k for k in self._tables if k[0] == db]:
                t = self._tables.pop(key)
                self.rows -= t.rows
                self.nbytes -= t.nbytes

    def drop_table(self, db: str, table: str) -> None:
        with self._lock:
            t = self._tables.pop((db, table), None)
            if t is not None:
                self.rows -= t.rows
                self.nbytes -= t.nbytes
