"""Running SQL: one DataFusion context per query over the buffer (and, later, persisted Parquet).

A context costs well under a millisecond, so each query gets a fresh one holding only the tables
its SQL references (found by letting DataFusion resolve the statement once against recording
schemas, so quoting, case and string literals mean exactly what the SQL parser says they mean);
information_schema is lakeflux's own, so column types read exactly as InfluxDB 3 reports them.

Queries run under one DataFusion memory pool (`--exec-mem-pool-bytes`), with the functions whose result
size an argument sets checked against a query's share of it (query/guards.py), and are started with `start`, which returns a `RunningQuery`: batches are pulled one at a time and the query
can be cancelled, or times out, between them (query/running.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext, SQLOptions
from datafusion.catalog import Schema, SchemaProvider

from ..buffer import BufferedTables
from ..buffer.dedupe import Overlaps, Points, dedupe, dirty_ranges, layers_meet, time_values
from ..buffer.manifest import PersistedFile
from ..buffer.persist import Persister
from ..buffer.tablefiles import read_parquet, read_parquet_within
from ..buffer.viewlock import ViewLock
from ..catalog import Catalog, DatabaseDef, TableDef
from ..errors import Corrupt, Invalid, LakefluxError, NotFound, TimedOut
from ..store import paths
from .guards import RANGES, native_ranges, register_guards, sized_calls
from .priority import lower_engine_threads
from .running import RunningQuery, engine_error
from .schema import conform, execution_schema, plain_strings, plain_strings_schema, table_schema, type_name
from .sources import LocalSource, SwappedAway, TableSource

CATALOG_NAME = "public"
SCHEMA_NAME = "iox"
SYSTEM_SCHEMAS = ("system", "information_schema")
SystemTables = Callable[[str], dict[str, pa.Table]]

# Twice the cores: while one partition waits on reading and decompressing Parquet another computes. On the
# 2-core benchmark machine the 10M-row GROUP BYs took 5-13% less time than with one partition per core.
QUERY_PARTITIONS = 2 * (os.cpu_count() or 1)
_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
# A query node runs a query again at most this often when files it planned with were swapped away.
SWAP_RETRIES = 3
# How DataFusion's object store reports a file that is gone (local files and S3 alike).
_MISSING_OBJECT = re.compile(r"Object at location .* not found", re.IGNORECASE)
_SHOW_TABLES = re.compile(r"^\s*show\s+tables\s*;?\s*$", re.IGNORECASE)
_SHOW_COLUMNS = re.compile(r"^\s*show\s+columns\s+from\s+(\"[^\"]+\"|'[^']+'|\S+?)\s*;?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class QueryLimits:
    """What queries may take: seconds of running, each (None: no limit); bytes of DataFusion's memory pool,
    shared by every running query (None: unbounded); and bytes one batch of a size-setting function's result
    may take, a query's share of the pool (query/guards.py; None: unchecked). `memory_text` names the
    setting behind the memory limits in error messages."""

    timeout: float | None = None
    memory_bytes: int | None = None
    memory_text: str = ""
    function_bytes: int | None = None
    function_text: str = ""


@dataclass
class _LoggedQuery:
    id: int
    issue_time: int
    text: str
    started: float
    phase: str = "running"
    success: bool = False
    running: bool = True
    seconds: float | None = None
    query_type: str = "sql"

    def finish(self, *, success: bool) -> None:
        self.seconds = time.perf_counter() - self.started
        self.success, self.running, self.phase = success, False, "success" if success else "fail"

    def duration_ns(self) -> int:
        seconds = self.seconds if self.seconds is not None else time.perf_counter() - self.started
        return int(seconds * 1e9)


@dataclass
class QueryResult:
    schema: pa.Schema
    batches: list[pa.RecordBatch]

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=self.schema)


class _Recorder(SchemaProvider):
    """A schema that knows no tables but notes every name DataFusion asks it for."""

    def __init__(self, schema: str, asked: set[tuple[str, str]]) -> None:
        self._schema = schema
        self._asked = asked

    def owner_name(self) -> str | None:
        return None

    def table_names(self) -> set[str]:
        return set()

    def table(self, name: str) -> None:
        self._asked.add((self._schema, name))
        return None

    def table_exist(self, name: str) -> bool:
        return False


class QueryEngine:
    """Executes read-only SQL against one database's committed rows."""

    def __init__(self, catalog: Catalog, buffer: BufferedTables, system_tables: SystemTables | None = None,
                 *, persister: Persister | None = None, lock: ViewLock | None = None,
                 clock: Callable[[], int] = time.time_ns, query_log_size: int = 1000,
                 limits: QueryLimits | None = None,
                 remote_sources: Callable[[], list[TableSource]] | None = None,
                 remote_lock: ViewLock | None = None) -> None:
        self._catalog = catalog
        self._buffer = buffer
        self._system_tables = system_tables
        self._persister = persister
        self._local = LocalSource(buffer, persister)
        # Other nodes whose data queries read too (a query node of a cluster follows every ingest node).
        self._remote_sources = remote_sources
        # Held (reading) while a query captures the remote sources, so it sees them all as of one moment (a
        # cluster's followers and compacted files change together under it: lakeflux/cluster/view.py).
        self._remote_lock = remote_lock
        self._lock = lock or ViewLock()
        self._clock = clock
        self._log: deque[_LoggedQuery] = deque(maxlen=max(1, query_log_size))
        self._log_lock = threading.Lock()
        self._running: set[RunningQuery] = set()
        self._ids = itertools.count(1)
        self.limits = limits or QueryLimits()
        # One pool for all queries (every context built from this builder shares it), as Core's central
        # pool; nothing spills to disk (as in Core): past the pool a query fails naming the limit.
        self._runtime = (RuntimeEnvBuilder().with_disk_manager_disabled()
                         .with_greedy_memory_pool(self.limits.memory_bytes) if self.limits.memory_bytes else None)
        self._config = (
            SessionConfig()
            .with_information_schema(False)
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
            .with_target_partitions(QUERY_PARTITIONS)
        )

    def execute(self, db: str, sql: str, params: dict[str, Any] | None = None, *,
                deadline: float | None = None, log_as: tuple[str, str] | None = None) -> QueryResult:
        """Run `sql` to the end and return every batch (see `start`). Blocking."""
        running = self.start(db, sql, params, deadline=deadline, log_as=log_as)
        try:
            batches = list(running)
        finally:
            running.close()
        return QueryResult(schema=running.schema, batches=batches)

    def start(self, db: str, sql: str, params: dict[str, Any] | None = None, *,
              deadline: float | None = None, log_as: tuple[str, str] | None = None) -> RunningQuery:
        """Plan `sql` (`$name` parameters bound after parsing) and start running it; blocking while it plans.

        The caller pulls batches from the returned query and must `close()` it. NotFound for an unknown
        database, Invalid for SQL errors and for anything that is not a read-only query. The query stops
        with TimedOut at `deadline` (monotonic seconds; default: now + the timeout limit). `log_as` is the
        (query_type, text) system.queries shows instead of ("sql", `sql`): InfluxQL logs its statement."""
        dbdef = self._catalog.state.live_db(db)
        if dbdef is None:
            raise NotFound(f"database not found: {db}")
        if deadline is None and self.limits.timeout is not None:
            deadline = time.monotonic() + self.limits.timeout
        query_type, text = log_as or ("sql", sql)
        entry = _LoggedQuery(id=next(self._ids), issue_time=self._clock(), text=text, started=time.perf_counter(),
                             query_type=query_type)
        with self._log_lock:
            self._log.append(entry)
        sql = _rewrite_show(sql)
        values = _param_values(params)
        if self._remote_sources is None:
            return self._start_once(dbdef, db, sql, values, entry, deadline)
        # Another node may replace a file this query reads (its snapshot compacted it away) after this node
        # planned with the manifest naming it: the query is run again on the newer manifest. Its first batch
        # is pulled here, so a retry never follows a batch the caller has seen.
        for attempt in range(SWAP_RETRIES):
            query: _Query | None = None
            try:
                query = self._start_once(dbdef, db, sql, values, entry, deadline)
                query.prefetch()
                return query
            except SwappedAway:
                if query is not None:
                    query.close()
                if attempt == SWAP_RETRIES - 1:
                    raise
                for source in self._sources():
                    source.refresh()
        raise AssertionError("unreachable")

    def _start_once(self, dbdef: DatabaseDef, db: str, sql: str, values: dict[str, Any] | None,
                    entry: _LoggedQuery, deadline: float | None) -> _Query:
        """Plan and start one attempt of a query (see `start`)."""
        # Buffered rows and the persisted file list are captured, and files listed by planning, under the
        # view lock's read side: a snapshot swapping files in cannot make a row appear twice or vanish. The
        # query then pins that view until it closes, instead of holding the lock: DataFusion reads the files
        # lazily, as the stream is consumed, and a file a compaction or retention retires is deleted only
        # once no query pinned before it runs any more, while later swaps and queries go on meanwhile.
        refs: set[tuple[str, str]] = set()
        try:
            with self._lock.read():
                refs = self._references(sql, values)
                named: list[_Named] = []
                with self._remote_view():  # every source captured as of one moment (cluster/view.py)
                    df = self._plan(dbdef, db, sql, values, refs, named)
                schema = plain_strings_schema(df.schema())
                stream = df.execute_stream()  # lists the files of every table it scans
                _check_still_there(named)
                lower_engine_threads()  # DataFusion's threads yield the CPU to writes (query/priority.py)
                release = self._lock.pin()
        except BaseException as e:
            entry.finish(success=False)
            raise self._query_error(e, db, refs) from None

        running: list[RunningQuery] = []

        def on_close(completed: bool) -> None:
            release()
            entry.finish(success=completed)
            with self._log_lock:
                self._running.difference_update(running)

        query = _Query(stream, schema, convert=plain_strings, deadline=deadline, on_close=on_close,
                             timeout_text=self.timed_out().message,
                             memory_limit=self.limits.memory_text or None,
                             error_hook=lambda e: self._query_error(e, db, refs))
        running.append(query)
        with self._log_lock:
            self._running.add(query)
        return query

    def deadline(self) -> float | None:
        """When a query starting now must be over (monotonic seconds): now + the timeout limit, None without
        one. A caller that sends the answer on takes it once, passes it to `start` and holds its sending to
        it as well (a client that stops reading must not keep a query, and the view it pinned, for ever)."""
        return None if self.limits.timeout is None else time.monotonic() + self.limits.timeout

    def timed_out(self) -> TimedOut:
        """The error of a query stopped at its deadline (naming --query-timeout)."""
        timeout = self.limits.timeout
        if timeout is None:
            return TimedOut("query exceeded its deadline")
        return TimedOut(f"query exceeded the query timeout of {_seconds_text(timeout)} (--query-timeout)")

    def cancel_all(self, error: LakefluxError) -> int:
        """Cancel every query started and not yet closed (shutdown); each stops at its next batch boundary
        with `error`. Returns how many were running."""
        with self._log_lock:
            running = list(self._running)
        for query in running:
            query.cancel(error)
        return len(running)

    def result_schema(self, db: str, sql: str, params: dict[str, Any] | None = None) -> pa.Schema:
        """The schema `execute` would answer with, from planning alone: the query is not run (Flight
        SQL's GetFlightInfo needs the schema before DoGet runs the query)."""
        dbdef = self._catalog.state.live_db(db)
        if dbdef is None:
            raise NotFound(f"database not found: {db}")
        sql = _rewrite_show(sql)
        values = _param_values(params)
        try:
            with self._lock.read(), self._remote_view():
                refs = self._references(sql, values)
                return plain_strings_schema(self._plan(dbdef, db, sql, values, refs).schema())
        except BaseException as e:
            raise self._query_error(e, db, set()) from None

    def _query_error(self, e: BaseException, db: str, refs: set[tuple[str, str]]) -> BaseException:
        """What to raise for an exception from planning or running a query on `db`."""
        if isinstance(e, LakefluxError | KeyboardInterrupt | SystemExit):
            return e
        error = engine_error(e, self.limits.memory_text or None)
        if self._remote_sources is not None and _MISSING_OBJECT.search(error.message):
            return SwappedAway(f"a persisted file of another node was replaced while the query read it: "
                               f"{error.message}")
        if "parquet" in error.message.lower() and self._persister is not None:
            broken = self._broken_files(db, {name for schema, name in refs if schema == SCHEMA_NAME})
            if broken is not None:
                return broken
        return error

    def _references(self, sql: str, values: dict[str, Any] | None) -> set[tuple[str, str]]:
        """(schema, table) of every table `sql` references, as DataFusion's parser resolves them."""
        asked: set[tuple[str, str]] = set()
        ctx = SessionContext(self._config)
        catalog = ctx.catalog(CATALOG_NAME)
        for schema in (SCHEMA_NAME, *SYSTEM_SCHEMAS):
            catalog.register_schema(schema, _Recorder(schema, asked))
        with contextlib.suppress(Exception):  # nothing resolves here; the real planning reports errors
            ctx.sql_with_options(sql, _READ_ONLY, param_values=values)
        return asked

    def _plan(self, dbdef: DatabaseDef, db: str, sql: str, values: dict[str, Any] | None,
              refs: set[tuple[str, str]], named: list[_Named] | None = None) -> Any:
        """A DataFusion DataFrame for `sql` over the tables it references; call under the view lock."""
        cutoff = self._clock() - dbdef.retention_ns if dbdef.retention_ns else None
        ctx = SessionContext(self._config, self._runtime) if self._runtime is not None else SessionContext(
            self._config)
        guarded, calls = sized_calls(sql) if self.limits.function_bytes is not None else (sql, {})
        if self.limits.function_bytes is not None:
            register_guards(ctx, self.limits.function_bytes, self.limits.function_text or "the query memory limit",
                            calls)
        self._register(ctx, db, dbdef.tables, refs, cutoff, [] if named is None else named)
        try:
            return ctx.sql_with_options(guarded, _READ_ONLY, param_values=values)
        except Exception as e:
            if not any(f"call to '{name}'" in str(e) for name in calls if name in RANGES):
                raise
        # A range over dates or timestamps: DataFusion's own function (query/guards.py: not checked).
        native_ranges(ctx)
        return ctx.sql_with_options(sql, _READ_ONLY, param_values=values)

    def _broken_files(self, db: str, tables: set[str]) -> Corrupt | None:
        """A Parquet read failed: the error naming which persisted files of `tables` are broken, if any."""
        assert self._persister is not None
        files = [f for f in self._persister.manifest.files if f.db == db and f.table in tables]
        broken = self._persister.broken_files(files)
        if broken:
            return _unreadable(db, "; ".join(f"{key}: {why}" for key, why in broken))
        return None

    def _register(self, ctx: SessionContext, db: str, tables: dict[str, TableDef], refs: set[tuple[str, str]],
                  cutoff: int | None, named: list[_Named]) -> None:
        catalog = ctx.catalog(CATALOG_NAME)
        iox = catalog.schema(SCHEMA_NAME)
        scratch = SessionContext()
        for schema_name, name in sorted(refs):
            tdef = tables.get(name) if schema_name == SCHEMA_NAME else None
            if tdef is not None:
                iox.register_table(name, self._table_provider(ctx, scratch, db, name, tdef, cutoff, named))
        system: dict[str, pa.Table] = {}
        if any(schema_name == "system" for schema_name, _ in refs):
            system = {**(self._system_tables(db) if self._system_tables else {}), "queries": self._queries()}
        if system:
            schema = Schema.memory_schema()
            catalog.register_schema("system", schema)
            for name, data in system.items():
                schema.register_table(name, _provider(scratch, data))
        if any(schema_name == "information_schema" for schema_name, _ in refs):
            info = Schema.memory_schema()
            catalog.register_schema("information_schema", info)
            for name, data in _information_schema(tables, system).items():
                info.register_table(name, _provider(scratch, data))

    def _queries(self) -> pa.Table:
        """`system.queries`: the newest queries of this server (all databases), in memory only."""
        with self._log_lock:
            entries = list(self._log)
        return pa.table({
            "id": pa.array([str(e.id) for e in entries], pa.string()),
            "phase": pa.array([e.phase for e in entries], pa.string()),
            "issue_time": pa.array([e.issue_time for e in entries], pa.timestamp("ns")),
            "query_type": pa.array([e.query_type for e in entries], pa.string()),
            "query_text": pa.array([e.text for e in entries], pa.string()),
            "end2end_duration": pa.array([e.duration_ns() for e in entries], pa.duration("ns")),
            "success": pa.array([e.success for e in entries], pa.bool_()),
            "running": pa.array([e.running for e in entries], pa.bool_()),
        })

    def time_bounds(self, db: str, table: str) -> tuple[int, int] | None:
        """Earliest and latest time (ns) of a table's rows, buffered and persisted, from what is already known
        (file metadata, the merged buffer): no data is read. None when it holds no rows. A query whose time
        range covers these bounds need not filter on time."""
        dbdef = self._catalog.state.live_db(db)
        tdef = dbdef.tables.get(table) if dbdef is not None else None
        if tdef is None:
            return None
        plain = table_schema(tdef.columns)
        tags = tdef.tags
        lows: list[int] = []
        highs: list[int] = []
        with self._lock.read(), self._remote_view():
            for source in self._sources():
                files, buffered = source.capture(db, table, _buffered(db, table, plain, tags))
                lows += [f.min_time for f in files] + ([int(buffered.sorted_times[0])] if len(buffered.sorted_times)
                                                       else [])
                highs += [f.max_time for f in files] + ([int(buffered.sorted_times[-1])]
                                                        if len(buffered.sorted_times) else [])
        return (min(lows), max(highs)) if lows else None

    def _sources(self) -> list[TableSource]:
        """This node's rows, then each followed node's (and a cluster's compacted files)."""
        return [self._local, *(self._remote_sources() if self._remote_sources is not None else [])]

    def _remote_view(self) -> contextlib.AbstractContextManager[None]:
        return self._remote_lock.read() if self._remote_lock is not None else contextlib.nullcontext()

    def _table_provider(self, ctx: SessionContext, scratch: SessionContext, db: str, name: str, tdef: TableDef,
                        cutoff: int | None, named: list[_Named]) -> Any:
        """Buffered rows UNION ALL persisted files, duplicate points merged (CONTRACT.md §7: last write
        wins per field), filtered by the database's retention period.

        Each file is duplicate-free (snapshots merge before writing) and the buffered rows are merged among
        themselves once per buffer change (kept beside the chunks). A duplicate can then only sit where
        two sources meet in time: the dirty ranges where file intervals intersect each other or hold
        buffered rows. Rows in those ranges are read into memory and merged, files in snapshot order and
        then the buffer (later writes win); everything else stays in DataFusion's native scan, with the
        dirty ranges cut out.
        """
        schema = execution_schema(tdef.columns)
        plain = table_schema(tdef.columns)  # merging runs on plain strings: pyarrow cannot take Utf8View
        tags = tdef.tags
        sources = self._sources()
        captured = [(source, *source.capture(db, name, _buffered(db, name, plain, tags))) for source in sources]
        if len(sources) == 1 and not captured[0][1] and cutoff is None:
            return _provider(scratch, conform(captured[0][2].rows, schema))
        # One scratch context serves every table of the query: each part needs its own name there.
        parts: list[_Part] = []
        meet = _where_layers_meet(captured)
        met: list[tuple[bool, str, pa.Table]] = []
        for source, files, buffered in captured:
            parts += self._source_parts(ctx, scratch, source, db, name, schema, plain, tags, files, buffered, named,
                                        meet, met)
        if met:
            # Compacted rows first, then each node's (in node-id order): newer rows win each point's fields.
            ordered = [rows for _, _, rows in sorted(met, key=lambda m: (not m[0], m[1]))]
            merged = dedupe(pa.concat_tables(ordered), tags)
            parts.append(_Part(_register_batches(scratch, _scratch_name("m"), conform(merged, schema))))
        if not parts:
            parts = [_Part(_register_batches(scratch, _scratch_name("b"), schema.empty_table()))]
        if len(parts) == 1 and cutoff is None and not parts[0].where:
            return scratch.table_provider(parts[0].name)  # no union or filter to plan through
        union = " UNION ALL ".join(p.sql() for p in parts)
        where = f" WHERE time >= {_timestamp(cutoff)}" if cutoff is not None else ""
        return scratch.sql(f"SELECT * FROM ({union}){where}").into_view()

    def _source_parts(self, ctx: SessionContext, scratch: SessionContext, source: TableSource, db: str, name: str,
                      schema: pa.Schema, plain: pa.Schema, tags: list[str], files: list[PersistedFile],
                      buffered: Points, named: list[_Named], meet: Overlaps | None = None,
                      met: list[tuple[bool, str, pa.Table]] | None = None) -> list[_Part]:
        """One node's rows of the table: its buffered rows and files, duplicate points merged (each node's
        rows are merged among themselves, as on a single node). Its rows in the ranges of `meet` (where the
        compacted files meet the nodes' rows), merged among themselves, go to `met` instead, to be merged
        with the other sources' there."""
        mins, maxs = [f.min_time for f in files], [f.max_time for f in files]
        overlaps = dirty_ranges(mins, maxs, buffered.sorted_times)
        if meet is not None:
            overlaps = overlaps.widened(meet, mins, maxs)
        inside, outside = overlaps.split(buffered)
        dirty = overlaps.dirty.tolist()
        parts: list[_Part] = []
        if outside.num_rows:
            parts.append(_Part(_register_batches(scratch, _scratch_name("b"), conform(outside, schema))))
        if files:
            parts += self._register_files(ctx, scratch, source, db, name, schema, files, overlaps, named)
        overlapping = sorted((f for f, d in zip(files, dirty, strict=True) if d), key=lambda f: f.wal_seq)
        if overlapping or inside.num_rows:
            in_range = [overlaps.rows_inside(t) for t in self._read_files(source, db, plain, overlapping, overlaps)]
            merged = dedupe(pa.concat_tables([*in_range, inside]), tags)
            if meet is not None and met is not None:
                at = meet.contains(time_values(merged))
                met.append((getattr(source, "base", False), source.node, merged.filter(pa.array(at))))
                merged = merged.filter(pa.array(~at))
            parts.append(_Part(_register_batches(scratch, _scratch_name("d"), conform(merged, schema))))
        return parts

    def _register_files(self, ctx: SessionContext, scratch: SessionContext, source: TableSource, db: str,
                        name: str, schema: pa.Schema, files: list[PersistedFile], overlaps: Overlaps,
                        named: list[_Named]) -> list[_Part]:
        """The rows of `files` outside the dirty time ranges: the native listing table of the whole table
        prefix with those ranges cut out (DataFusion skips files and row groups wholly inside them by their
        statistics), where DataFusion can reach the store; for another node's files, one native listing per
        named file (its prefix may already hold files of a manifest this node has not seen)."""
        store = source.store
        assert store is not None
        url_for = getattr(store, "url_for", None)
        if url_for is not None and not url_for("").startswith("memory://"):
            native = store.datafusion_store() if hasattr(store, "datafusion_store") else None
            if native is not None:
                bucket = getattr(store, "bucket", None)
                for c in (scratch, ctx):
                    c.register_object_store("s3://", native, bucket)
            outside = " AND ".join(f"(time < {_timestamp(lo)} OR time > {_timestamp(hi)})"
                                   for lo, hi in zip(overlaps.lo.tolist(), overlaps.hi.tolist(), strict=True))
            prefix = paths.table_prefix(source.node, db, name)
            # This node's prefix holds exactly its manifest's files, except files a newer manifest retired
            # while a query planned before it still reads them: then this table's files are read by name.
            listing = source.listing and not (source is self._local and self._persister is not None
                                              and prefix in self._persister.retiring_roots())
            urls = [url_for(prefix)] if listing else [url_for(f.key) for f in files]
            if not source.listing:
                # A listing of one missing file is empty, not an error: checked once the scan listed them.
                for root in sorted({paths.table_root_of(f.key) for f in files}):  # the prefix they lie under
                    named.append(_Named(store, source.node, root, frozenset(
                        f.key for f in files if paths.table_root_of(f.key) == root)))
            parts = []
            for url in urls:
                listing = _scratch_name("p")
                scratch.register_listing_table(listing, url, schema=schema, file_extension=".parquet")
                parts.append(_Part(listing, outside))
            return parts
        # Stores DataFusion cannot reach (memory): read the manifest's files through the store.
        plain = plain_strings_schema(schema)  # pyarrow filters plain strings, not Utf8View
        data = pa.concat_tables([conform(overlaps.rows_outside(t), schema)
                                 for t in self._read_files(source, db, plain, files)])
        return [_Part(_register_batches(scratch, _scratch_name("p"), data))]

    def _read_files(self, source: TableSource, db: str, schema: pa.Schema, files: list[PersistedFile],
                    within: Overlaps | None = None) -> list[pa.Table]:
        """Persisted files read through the store, in the order given, as `schema`'s columns (only the row
        groups meeting the dirty ranges of `within`, when given); Corrupt naming the object when one is
        missing or not Parquet (as for DataFusion's reads); SwappedAway for another node's missing file."""
        store = source.store
        assert store is not None
        out = []
        for f in files:
            try:
                data = store.get(f.key)
                rows = read_parquet(data) if within is None else read_parquet_within(data, within.lo, within.hi)
                out.append(conform(rows, schema))
            except NotFound as e:
                if not source.listing:
                    raise SwappedAway(f"persisted file {f.key} of node {source.node!r} is gone: its node "
                                      "replaced it since") from e
                raise _unreadable(db, f"{f.key}: missing") from e
            except LakefluxError:
                raise  # the store is unavailable: not the file's fault
            except Exception as e:  # pyarrow raises several kinds for garbled files
                raise _unreadable(db, f"{f.key}: {e}") from e
        return out


def _where_layers_meet(captured: list[tuple[TableSource, list[PersistedFile], Points]]) -> Overlaps | None:
    """Where a base source's files (a cluster's compacted files) meet the other sources' rows: there the
    sources' rows are merged together, elsewhere each source's rows are its own. None without base files."""
    base = [f for source, files, _ in captured if getattr(source, "base", False) for f in files]
    if not base:
        return None
    above = [f for source, files, _ in captured if not getattr(source, "base", False) for f in files]
    times = [b.sorted_times for source, _, b in captured if not getattr(source, "base", False) and len(b.sorted_times)]
    meet = layers_meet([f.min_time for f in base], [f.max_time for f in base], [f.min_time for f in above],
                       [f.max_time for f in above], np.sort(np.concatenate(times)) if times else np.zeros(0, np.int64))
    return meet if len(meet.lo) else None


@dataclass(frozen=True)
class _Named:
    """Files of another node a query reads one by one: where to list them and their keys."""

    store: Any
    node: str
    prefix: str
    keys: frozenset[str]


def _check_still_there(named: list[_Named]) -> None:
    """After DataFusion listed the files it scans: raise SwappedAway if one of another node's files named by
    the query was already gone then (one listing per table prefix; files never come back once gone, so
    present now means present when the scan listed it)."""
    for entry in named:
        present = {meta.key for meta in entry.store.list(entry.prefix)}
        gone = sorted(entry.keys - present)
        if gone:
            raise SwappedAway(f"persisted file {gone[0]} of node {entry.node!r} is gone: its node replaced it since")


class _Query(RunningQuery):
    """A RunningQuery whose first batch can be pulled ahead (`prefetch`) and is then returned first."""

    _held: tuple[pa.RecordBatch | None] | None = None

    def prefetch(self) -> None:
        """Pull the first batch now (blocking); raises what pulling it raises."""
        self._held = (super().next_batch(),)

    def next_batch(self, poll: Callable[[], bool] | None = None) -> pa.RecordBatch | None:
        held, self._held = self._held, None
        if held is not None:
            return held[0]
        return super().next_batch(poll)


def _buffered(db: str, table: str, plain: pa.Schema, tags: list[str]) -> Callable[[BufferedTables], Points]:
    """A table's buffered rows with duplicate points merged, from one node's buffer (kept beside its chunks)."""
    return lambda tables: tables.derived(db, table, plain, lambda chunks, previous: _merged_buffer(
        chunks, previous, plain, tags))


def _merged_buffer(chunks: list[tuple[int, pa.Table]], previous: tuple[int, Points] | None, plain: pa.Schema,
                   tags: list[str]) -> Points:
    """A table's buffered rows with duplicate points merged (chunks are in commit order = write order),
    extending the merge of the first chunks when there is one."""
    done, points = previous if previous is not None else (0, None)
    fresh = [conform(data, plain) for _, data in chunks[done:]]
    if points is None:
        return Points.merged(pa.concat_tables(fresh) if fresh else plain.empty_table(), tags)
    return points.extended(pa.concat_tables(fresh), tags) if fresh else points


def _unreadable(db: str, detail: str) -> Corrupt:
    """The error for broken persisted files; `detail` names each object and what is wrong with it."""
    return Corrupt(f"persisted Parquet file(s) of database {db!r} are unreadable: {detail}")


@dataclass(frozen=True)
class _Part:
    """One source of a table's rows: a name registered in the scratch context, and a filter on it."""

    name: str
    where: str = ""

    def sql(self) -> str:
        return f"SELECT * FROM {self.name}" + (f" WHERE {self.where}" if self.where else "")


def _timestamp(ns: int) -> str:
    return f"to_timestamp_nanos({int(ns)})"


_SCRATCH_IDS = itertools.count()


def _scratch_name(prefix: str) -> str:
    """A name no other part of this (or any) query's scratch context uses."""
    return f"{prefix}{next(_SCRATCH_IDS)}"


def _register_batches(scratch: SessionContext, name: str, data: pa.Table) -> str:
    batches = data.to_batches() or [pa.RecordBatch.from_pylist([], schema=data.schema)]
    scratch.register_record_batches(name, [batches])
    return name


def _provider(scratch: SessionContext, data: pa.Table) -> Any:
    name = f"t{id(data)}"
    batches = data.to_batches() or [pa.RecordBatch.from_pylist([], schema=data.schema)]
    scratch.register_record_batches(name, [batches])
    provider = scratch.table_provider(name)
    scratch.deregister_table(name)
    return provider


def _param_values(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    out = {}
    for k, v in params.items():
        if not isinstance(v, str | int | float | bool) or v is None:
            raise Invalid(f"query parameter {k!r} must be a string, number or boolean, got {type(v).__name__}")
        out[k.lstrip("$")] = v
    return out


def _rewrite_show(sql: str) -> str:
    """SHOW TABLES / SHOW COLUMNS read lakeflux's own information_schema. (DataFusion itself reads a
    single-quoted name after FROM as a table name, as InfluxDB does: plugins use FROM 'cpu'.)"""
    if _SHOW_TABLES.match(sql):
        return ("SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables "
                "ORDER BY table_schema, table_name")
    m = _SHOW_COLUMNS.match(sql)
    if m:
        name = m.group(1).strip("\"'").replace("'", "''")
        return ("SELECT table_catalog, table_schema, table_name, column_name, data_type, is_nullable "
                f"FROM information_schema.columns WHERE table_name = '{name}'")
    return sql


def _seconds_text(seconds: float | None) -> str:
    return f"{seconds:g} s" if seconds is not None else "none"


def _information_schema(tables: dict[str, TableDef], system: dict[str, pa.Table]) -> dict[str, pa.Table]:
    trows: list[tuple[str, str, str, str]] = []
    crows: list[tuple[str, str, str, str, int, str, str]] = []
    for name, tdef in sorted(tables.items()):
        trows.append((CATALOG_NAME, SCHEMA_NAME, name, "BASE TABLE"))
        for pos, (col, kind) in enumerate(sorted(tdef.columns.items()), start=1):
            crows.append((CATALOG_NAME, SCHEMA_NAME, name, col, pos, type_name(kind), "NO" if col == "time" else "YES"))
    for name, data in sorted(system.items()):
        trows.append((CATALOG_NAME, "system", name, "BASE TABLE"))
        for pos, f in enumerate(data.schema, start=1):
            crows.append((CATALOG_NAME, "system", name, f.name, pos, _arrow_name(f.type), "YES"))
    for view in ("tables", "columns", "schemata"):
        trows.append((CATALOG_NAME, "information_schema", view, "VIEW"))
    tcols = ["table_catalog", "table_schema", "table_name", "table_type"]
    ccols = ["table_catalog", "table_schema", "table_name", "column_name", "ordinal_position", "data_type",
             "is_nullable"]
    schemata = [(CATALOG_NAME, s) for s in (SCHEMA_NAME, "system", "information_schema")]
    return {
        "tables": pa.table(list(zip(*trows, strict=True)) if trows else [[]] * 4, names=tcols),
        "columns": _rows_table(crows, ccols),
        "schemata": pa.table(list(zip(*schemata, strict=True)), names=["catalog_name", "schema_name"]),
    }


def _rows_table(rows: list[tuple[Any, ...]], names: list[str]) -> pa.Table:
    if not rows:
        types = [pa.string()] * len(names)
        types[names.index("ordinal_position")] = pa.int64()
        return pa.schema(list(zip(names, types, strict=True))).empty_table()
    return pa.table(list(zip(*rows, strict=True)), names=names)


_ARROW_NAMES = {
    pa.int64(): "Int64", pa.uint64(): "UInt64", pa.float64(): "Float64", pa.string(): "Utf8",
    pa.bool_(): "Boolean", pa.int32(): "Int32", pa.timestamp("ns"): "Timestamp(Nanosecond, None)",
    pa.duration("ns"): "Duration(Nanosecond)",
}


def _arrow_name(t: pa.DataType) -> str:
    return _ARROW_NAMES.get(t, str(t))
