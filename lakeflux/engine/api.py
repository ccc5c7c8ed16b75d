"""The `influxdb3_local` object handed to every plugin call (CONTRACT §1.4, §1.6).

One `PluginApi` is made per call. Its public attributes are exactly the nine plugins rely on
(`info, warn, error, query, write, write_to_db, write_sync, write_sync_to_db, cache`); everything
else is private (`__slots__`), and the runtime drives the buffered writes through the module
functions `flush_writes(api)` and `discard_writes(api)` so `dir(influxdb3_local)` stays exact.

Opt-in beyond InfluxDB: `query(..., arrow=True)` returns the `pyarrow.Table` instead of rows, and
`query` binds `int`/`float`/`bool` parameters as well as `str`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pyarrow as pa

from lakeflux.catalog.names import INTERNAL_DB, check_db_name, check_writable
from lakeflux.errors import Invalid

from .ports import LogSink, QueryRunner, WriteSink

logger = logging.getLogger("lakeflux.engine")

PluginKind = Literal["wal", "schedule", "request"]
RowsConverter = Callable[[pa.Table], list[dict[str, Any]]]

_PARAM_TYPES = (str, int, float, bool)


class QueryError(Exception):
    """A plugin query failed; the message names the database and the query."""


class Cache(Protocol):
    """What `influxdb3_local.cache` offers (CONTRACT §1.7); engine/cache.py implements it."""

    def get(self, key: str, default: Any = None, use_global: bool | None = None) -> Any: ...

    def put(self, key: str, value: Any, ttl: float | None = None, use_global: bool | None = None) -> None: ...

    def delete(self, key: str, use_global: bool | None = None) -> bool: ...


@dataclass
class DryRunCapture:
    """What a dry run records instead of writing and logging (CONTRACT §4.6)."""

    log_lines: list[str] = field(default_factory=list)
    database_writes: dict[str, list[str]] = field(default_factory=dict)

    def add_lines(self, db: str, lines: list[str]) -> None:
        self.database_writes.setdefault(db, []).extend(lines)


def database_name_problem(db: object) -> str | None:
    """Why a plugin cannot write to `db` (bad name, `_internal`), or None when it can."""
    if not isinstance(db, str):
        return f"invalid database name: {db!r}"
    try:
        check_writable(db)
    except Invalid as exc:
        return exc.message
    try:
        check_db_name(db)
    except Invalid as exc:
        return f"invalid database name: {db}: {exc.message}"  # Core's text, then which rule
    return None


def _valid_query_db(db: object) -> bool:
    if db == INTERNAL_DB:  # reserved for writes only; its system tables are readable
        return True
    try:
        return isinstance(db, str) and check_db_name(db) == db
    except Invalid:
        return False


def _build_lines(obj: Any) -> list[str]:
    """Call `obj.build()` and split its text into non-blank lines."""
    text = obj.build()
    if not isinstance(text, str):
        raise TypeError(f"build() must return a str of line protocol, got {type(text).__name__}")
    return [line for line in text.split("\n") if line.strip()]


def _check_params(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise TypeError(f"query args must be a dict of parameter name to value, got {type(params).__name__}")
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"query parameter names must be str, got {key!r}")
        if not isinstance(value, _PARAM_TYPES):
            raise TypeError(
                f"query parameter {key!r} must be str, int, float or bool, got {type(value).__name__}"
            )
    return dict(params)


def _default_rows(table: pa.Table) -> list[dict[str, Any]]:
    # Imported on first use: the query layer pulls in DataFusion, which a process that never
    # runs a plugin query should not pay for.
    from lakeflux.query.convert import table_to_rows

    return table_to_rows(table)


class PluginApi:
    """The `influxdb3_local` object: logging, queries, write-back and the trigger's cache."""

    __slots__ = (
        "_database",
        "_trigger",
        "_kind",
        "_writer",
        "_queries",
        "_logs",
        "_cache",
        "_dry_run",
        "_to_rows",
        "_pending",
    )

    def __init__(
        self,
        *,
        database: str,
        trigger_name: str,
        kind: PluginKind,
        writer: WriteSink,
        queries: QueryRunner,
        logs: LogSink,
        cache: Cache,
        dry_run: DryRunCapture | None = None,
        to_rows: RowsConverter | None = None,
    ) -> None:
        self._database = database
        self._trigger = trigger_name
        self._kind = kind
        self._writer = writer
        self._queries = queries
        self._logs = logs
        self._cache = cache
        self._dry_run = dry_run
        self._to_rows = to_rows or _default_rows
        self._pending: dict[str, list[str]] = {}

    # -- logging -----------------------------------------------------------------------------

    def info(self, *args: object) -> None:
        """Log at INFO: each argument `str()`-ed, space-joined."""
        self._log("INFO", args)

    def warn(self, *args: object) -> None:
        """Log at WARN: each argument `str()`-ed, space-joined."""
        self._log("WARN", args)

    def error(self, *args: object) -> None:
        """Log at ERROR: each argument `str()`-ed, space-joined."""
        self._log("ERROR", args)

    def _log(self, level: str, args: tuple[object, ...]) -> None:
        _record(self, level, " ".join(str(arg) for arg in args))

    # -- writes ------------------------------------------------------------------------------

    def write(self, obj: Any) -> None:
        """Queue `obj.build()`'s lines for the trigger's database; sent after a normal return."""
        self._queue(self._database, obj)

    def write_to_db(self, db: str, obj: Any) -> None:
        """Queue `obj.build()`'s lines for database `db` (name checked when the writes are sent)."""
        self._queue(db, obj)

    def _queue(self, db: str, obj: Any) -> None:
        lines = _build_lines(obj)
        if lines:
            self._pending.setdefault(db, []).extend(lines)

    def write_sync(self, obj: Any, no_sync: bool = False) -> None:
        """Write `obj.build()` to the trigger's database now.

        Returns after the WAL segment holding the lines is committed (`no_sync=False`) or once
        they are buffered (`no_sync=True`). Raises `Exception("error writing line protocol to
        <db>: <cause>")` on failure.
        """
        self._write_now(self._database, obj, no_sync)

    def write_sync_to_db(self, db: str, obj: Any, no_sync: bool = False) -> None:
        """Write `obj.build()` to database `db` now; returns and fails like `write_sync`."""
        self._write_now(db, obj, no_sync)

    def _write_now(self, db: str, obj: Any, no_sync: bool) -> None:
        lines = _build_lines(obj)
        problem = database_name_problem(db)
        if problem is not None:
            raise Exception(f"error writing line protocol to {db}: {problem}")
        if not lines:
            return
        if self._dry_run is not None:
            self._dry_run.add_lines(db, lines)
            return
        try:
            self._writer.write_lines(db, "\n".join(lines), no_sync=bool(no_sync))
        except Exception as exc:
            raise Exception(f"error writing line protocol to {db}: {exc}") from exc

    # -- queries -----------------------------------------------------------------------------

    def query(
        self,
        query: str,
        args: Mapping[str, Any] | None = None,
        database: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        arrow: bool = False,
    ) -> list[dict[str, Any]] | pa.Table:
        """Run read-only SQL, binding `$name` parameters from `args` (or its alias `params`).

        `database` defaults to the trigger's database. Returns a list of row dicts (timestamps as
        int ns), or the `pyarrow.Table` itself when `arrow=True`. Raises QueryError on failure,
        TypeError for parameter values other than str, int, float or bool.
        """
        if args is not None and params is not None:
            raise TypeError("pass query parameters as args or params, not both")
        bound = _check_params(args if args is not None else params)
        db = self._database if database is None else database
        if not _valid_query_db(db):
            raise QueryError(f"invalid database name provided: {db}")
        try:
            table = self._queries.query(db, query, bound)
        except Exception as exc:
            raise QueryError(f"error: {exc} executing query on {db}: {query}") from exc
        if arrow:
            return table
        return self._to_rows(table)

    # -- cache -------------------------------------------------------------------------------

    @property
    def cache(self) -> Cache:
        """The trigger's cache: `get`, `put`, `delete` (CONTRACT §1.7)."""
        return self._cache

    def __repr__(self) -> str:
        return f"<influxdb3_local trigger={self._trigger!r} database={self._database!r}>"


def _record(api: PluginApi, level: str, text: str) -> None:
    """One plugin log entry: server log always; a logs row, or a dry-run line instead."""
    logger.log(_LOG_LEVELS[level], "processing engine: %s", text)
    if api._dry_run is not None:
        api._dry_run.log_lines.append(f"{level}: {text}")
        return
    try:
        api._logs.log(api._database, api._trigger, level, text)
    except Exception:
        # A failing log store must not turn into a plugin failure; the server log has the text.
        logger.exception("could not record plugin log row for trigger %s", api._trigger)


_LOG_LEVELS = {"INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


def pending_writes(api: PluginApi) -> dict[str, list[str]]:
    """The lines `write`/`write_to_db` queued so far, per database (a copy)."""
    return {db: list(lines) for db, lines in api._pending.items()}


def discard_writes(api: PluginApi) -> None:
    """Drop the queued writes: the runtime calls this when the plugin function raised."""
    api._pending.clear()


def flush_writes(api: PluginApi) -> None:
    """Send the queued writes: one payload per database, in first-write order.

    Called by the runtime after the plugin function returned normally. Each payload is written
    with `no_sync=False`, so this returns after the WAL segments holding them are committed.
    Failures never raise: each becomes an ERROR log "error running <kind> plugin: error writing
    back lines to <db>: <cause>". In a dry run the lines are captured instead.
    """
    pending = list(api._pending.items())
    api._pending.clear()
    for db, lines in pending:
        _flush_one(api, db, lines)


def take_writes(api: PluginApi) -> dict[str, list[str]]:
    """The queued writes per database, in first-write order, leaving none queued.

    A WAL trigger takes them after a normal return and sends them itself without waiting for
    their commit (see engine/waltrigger.py); other calls use `flush_writes`.
    """
    pending = dict(api._pending)
    api._pending.clear()
    return pending


def write_back_failure(kind: PluginKind, db: str, cause: object) -> str:
    """The ERROR log text of a failed write-back (CONTRACT §1.4)."""
    return f"error running {kind} plugin: error writing back lines to {db}: {cause}"


def _flush_one(api: PluginApi, db: str, lines: list[str]) -> None:
    problem = database_name_problem(db)
    if problem is None and api._dry_run is not None:
        api._dry_run.add_lines(db, lines)
        return
    try:
        if problem is not None:
            raise ValueError(problem)
        api._writer.write_lines(db, "\n".join(lines), no_sync=False)
    except Exception as exc:
        _record(api, "ERROR", write_back_failure(api._kind, db, exc))
