"""Plugin log rows: `system.processing_engine_logs`, kept per database and persisted (CONTRACT §3 Δ).

Rows live in memory, newest `KEEP_PER_DB` per database, and are persisted to the object store:
`flush()` writes the rows added since the last flush as one Parquet object per database
(`store/paths.plugin_logs`, sequence-numbered). When a database has more than `COMPACT_AFTER`
objects, a flush writes all retained rows as one object that names the sequence it replaces in its
metadata, then deletes the older ones; a crash between the two steps only leaves objects a load
skips. `load(db)` reads them back at boot.
"""

from __future__ import annotations

import collections
import io
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LakefluxError
from ..model import SYSTEM_CLOCK, Clock
from ..store import paths
from ..store.base import ObjectStore

log = logging.getLogger("lakeflux.engine")

KEEP_PER_DB = 10_000
COMPACT_AFTER = 16
LEVELS = ("INFO", "WARN", "ERROR")
_REPLACES_KEY = b"lakeflux.replaces_through"

LOG_SCHEMA = pa.schema([
    pa.field("event_time", pa.timestamp("ns"), nullable=False),
    pa.field("trigger_name", pa.string(), nullable=False),
    pa.field("log_level", pa.string(), nullable=False),
    pa.field("log_text", pa.string(), nullable=False),
])


@dataclass(frozen=True)
class LogRow:
    event_time_ns: int
    trigger_name: str
    log_level: str
    log_text: str


class _DbLogs:
    def __init__(self) -> None:
        self.rows: collections.deque[LogRow] = collections.deque(maxlen=KEEP_PER_DB)
        self.unflushed: list[LogRow] = []
        self.objects: list[int] = []  # sequence numbers of this database's stored objects
        self.next_seq = 0


def rows_to_table(rows: Iterable[LogRow]) -> pa.Table:
    """The rows as a table with the columns of `system.processing_engine_logs`."""
    rows = list(rows)
    return pa.table(
        [
            pa.array([r.event_time_ns for r in rows], pa.int64()).cast(pa.timestamp("ns")),
            pa.array([r.trigger_name for r in rows], pa.string()),
            pa.array([r.log_level for r in rows], pa.string()),
            pa.array([r.log_text for r in rows], pa.string()),
        ],
        schema=LOG_SCHEMA,
    )


def _table_to_rows(table: pa.Table) -> list[LogRow]:
    times = table.column("event_time").cast(pa.int64()).to_pylist()
    triggers = table.column("trigger_name").to_pylist()
    levels = table.column("log_level").to_pylist()
    texts = table.column("log_text").to_pylist()
    return [LogRow(*values) for values in zip(times, triggers, levels, texts, strict=True)]


def _encode(rows: list[LogRow], replaces_through: int | None) -> bytes:
    table = rows_to_table(rows)
    if replaces_through is not None:
        table = table.replace_schema_metadata({_REPLACES_KEY: str(replaces_through).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class PluginLogs:
    """The engine's LogSink: records rows, serves them per database, persists them."""

    def __init__(self, store: ObjectStore | None, node: str, clock: Clock = SYSTEM_CLOCK) -> None:
        """`store` None keeps logs in memory only (dry runs, unit tests)."""
        self._store = store
        self._node = node
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._dbs: dict[str, _DbLogs] = {}

    # -- LogSink ---------------------------------------------------------------------------------

    def log(self, db: str, trigger: str, level: str, text: str) -> None:
        """Record one row (level INFO/WARN/ERROR); durable at the next `flush()`."""
        row = LogRow(self._clock.now_ns(), trigger, level, text)
        with self._lock:
            logs = self._dbs.setdefault(db, _DbLogs())
            logs.rows.append(row)
            logs.unflushed.append(row)
            # A database that logs faster than flushes run keeps only what can be retained anyway.
            if len(logs.unflushed) > KEEP_PER_DB:
                del logs.unflushed[: len(logs.unflushed) - KEEP_PER_DB]

    # -- reading ---------------------------------------------------------------------------------

    def rows(self, db: str) -> list[LogRow]:
        """The retained rows of `db`, oldest first."""
        with self._lock:
            logs = self._dbs.get(db)
            return list(logs.rows) if logs else []

    def table(self, db: str) -> pa.Table:
        """`system.processing_engine_logs` of `db`."""
        return rows_to_table(self.rows(db))

    def databases(self) -> list[str]:
        """Databases with retained rows."""
        with self._lock:
            return [db for db, logs in self._dbs.items() if logs.rows]

    # -- persistence -----------------------------------------------------------------------------

    def load(self, db: str) -> int:
        """Read `db`'s persisted rows (boot); returns how many are retained. Unreadable objects are skipped."""
        if self._store is None:
            return 0
        objects: list[tuple[int, pa.Table]] = []
        for meta in self._store.list(paths.plugin_logs_prefix(self._node, db)):
            seq = paths.parse_seq(meta.key)
            if seq is None:
                continue
            try:
                objects.append((seq, pq.read_table(io.BytesIO(self._store.get(meta.key)))))
            except (LakefluxError, pa.ArrowException, OSError) as exc:
                log.warning("skipping unreadable plugin log object %s: %s", meta.key, exc)
        # The newest compacting object holds every row of the objects before it.
        base = max((seq for seq, table in objects if _REPLACES_KEY in (table.schema.metadata or {})), default=-1)
        loaded: list[LogRow] = []
        for seq, table in objects:
            if seq >= base:
                loaded.extend(_table_to_rows(table.select(LOG_SCHEMA.names)))
        with self._lock:
            logs = self._dbs.setdefault(db, _DbLogs())
            earlier = list(logs.rows)
            logs.rows.clear()
            logs.rows.extend(loaded + earlier)
            logs.objects = sorted(seq for seq, _ in objects)
            logs.next_seq = max([logs.next_seq, *[seq + 1 for seq, _ in objects]])
            return len(logs.rows)

    def flush(self) -> int:
        """Persist rows added since the last flush; returns once they are durable (how many rows)."""
        if self._store is None:
            return 0
        written = 0
        with self._flush_lock:
            for db in list(self._dbs):
                written += self._flush_db(db)
        return written

    def _flush_db(self, db: str) -> int:
        assert self._store is not None
        with self._lock:
            logs = self._dbs.get(db)
            if logs is None or not logs.unflushed:
                return 0
            pending, logs.unflushed = logs.unflushed, []
            compact = len(logs.objects) >= COMPACT_AFTER
            rows = list(logs.rows) if compact else pending
            seq = logs.next_seq
            logs.next_seq += 1
            replaces = logs.objects[-1] if compact and logs.objects else None
        try:
            self._store.put(paths.plugin_logs(self._node, db, seq), _encode(rows, replaces))
        except LakefluxError as exc:
            log.warning("could not persist plugin logs of %s: %s", db, exc)
            with self._lock:
                logs.unflushed[:0] = pending  # try again at the next flush
            return 0
        with self._lock:
            doomed = [old for old in logs.objects if replaces is not None and old <= replaces]
            logs.objects = [old for old in logs.objects if old not in doomed] + [seq]
        for old in doomed:
            try:
                self._store.delete(paths.plugin_logs(self._node, db, old))
            except LakefluxError as exc:
                log.warning("could not delete replaced plugin log object of %s: %s", db, exc)
        return len(pending)

    def drop_database(self, db: str) -> None:
        """Forget `db`'s rows in memory and in the store (the database was deleted)."""
        with self._lock:
            logs = self._dbs.pop(db, None)
        if logs is None or self._store is None:
            return
        for seq in logs.objects:
            try:
                self._store.delete(paths.plugin_logs(self._node, db, seq))
            except LakefluxError as exc:
                log.warning("could not delete plugin logs of %s: %s", db, exc)
