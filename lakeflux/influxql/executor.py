"""Running InfluxQL text: parse, bind parameters, pick each statement's database and answer it.

SELECTs and SHOWs read through the query engine (the same tables, buffer and files SQL reads, read-only);
CREATE/DROP DATABASE go through the `DatabaseAdmin` the server provides. Each statement answers on its
own: one failing does not stop the next, as with InfluxDB.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Protocol

import pyarrow as pa

from ..catalog import INTERNAL_DB, Catalog, DatabaseDef
from ..errors import Invalid, LakefluxError, NotFound
from ..query.local import run_sql_over
from . import ast as A
from . import meta, select
from .condition import TimeRange
from .parser import ParseError, parse
from .results import Series, StatementResult

log = logging.getLogger("lakeflux.influxql")

PARSE_ERROR_PREFIX = "error in InfluxQL statement: parsing error: "
NO_DATABASE = "must specify a 'db' parameter, or provide the database in the InfluxQL query"
DEFAULT_RETENTION_POLICIES = ("", "autogen", "default")


class SqlEngine(Protocol):
    """What InfluxQL needs of the query engine: read-only SQL over one database (query/session.py)."""

    def execute(self, db: str, sql: str, params: dict[str, Any] | None = None, *,
                deadline: float | None = None, log_as: tuple[str, str] | None = None) -> Any: ...

    def time_bounds(self, db: str, table: str) -> tuple[int, int] | None: ...


class DatabaseAdmin(Protocol):
    def create_database(self, name: str, retention_ns: int | None) -> None: ...

    def drop_database(self, name: str) -> None: ...


class InfluxQLError(LakefluxError):
    """The whole request failed before any statement ran (it did not parse)."""


@dataclass
class Request:
    text: str
    database: str | None = None
    retention_policy: str | None = None
    params: dict[str, Any] | None = None
    flat: bool = False  # answering in InfluxDB 3's table form (/api/v3/query_influxql, Flight)
    # When the whole request must be over (monotonic seconds): its statements share it, so a text of several
    # statements cannot run past --query-timeout by taking a fresh timeout for each. None: each statement's own.
    deadline: float | None = None


class InfluxQL:
    """Answers InfluxQL over one server's catalog and query engine."""

    def __init__(self, catalog: Catalog, engine: SqlEngine, admin: DatabaseAdmin | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._catalog = catalog
        self._engine = engine
        self._admin = admin
        self._clock = clock

    def parse(self, text: str) -> list[A.Statement]:
        """The statements of `text`; InfluxQLError (worded like InfluxDB 3's) when it does not parse."""
        try:
            return parse(text)
        except ParseError as e:
            raise InfluxQLError(PARSE_ERROR_PREFIX + str(e)) from None

    def execute(self, request: Request, now: int | None = None) -> list[StatementResult]:
        """One result per statement (a failing statement carries its error); InfluxQLError when the text
        does not parse."""
        statements = self.parse(request.text)
        now = self._clock() if now is None else now
        results = []
        for i, stmt in enumerate(statements):
            result = StatementResult(i)
            try:
                self._answer(bind(stmt, request.params or {}), request, result, now)
            except LakefluxError as e:
                result.series, result.error = [], e.message
            except Exception:
                log.exception("unexpected error answering InfluxQL %r", request.text)
                result.series, result.error = [], "internal error"
            results.append(result)
        return results

    def execute_one(self, request: Request, now: int | None = None) -> StatementResult:
        """The answer to a text holding exactly one statement; its errors are raised, not carried."""
        statements = self.parse(request.text)
        if len(statements) != 1:
            raise Invalid("must provide only one InfluxQl statement per query")
        result = StatementResult(0)
        self._answer(bind(statements[0], request.params or {}), request, result,
                     self._clock() if now is None else now)
        return result

    # --- statements -----------------------------------------------------------------------------------------

    def _answer(self, stmt: A.Statement, request: Request, result: StatementResult, now: int) -> None:
        if isinstance(stmt, A.SelectStatement):
            db = self._database(_select_database(stmt) or request.database, _select_rp(stmt) or
                                request.retention_policy)
            result.series = select.execute(stmt, self._context(db, now, request))
            result.group_tags = sorted({k for s in result.series for k in (s.tags or {})})
        elif isinstance(stmt, A.ShowDatabases):
            self._show_databases(result)
        elif isinstance(stmt, A.ShowRetentionPolicies):
            self._show_retention_policies(stmt.database or request.database, result, request.flat)
        elif isinstance(stmt, A.ShowMeasurements | A.ShowTagKeys | A.ShowTagValues | A.ShowFieldKeys):
            db = self._database(stmt.database or request.database, request.retention_policy)
            dbdef = self._live(db)
            run = self._runner(db, request)
            if isinstance(stmt, A.ShowMeasurements):
                result.series = meta.show_measurements(stmt, dbdef, run, now)
            elif isinstance(stmt, A.ShowTagKeys):
                result.series = meta.show_tag_keys(stmt, dbdef, run, now)
            elif isinstance(stmt, A.ShowTagValues):
                result.series = meta.show_tag_values(stmt, dbdef, run, now)
            else:
                result.series = meta.show_field_keys(stmt, dbdef)
        elif isinstance(stmt, A.CreateDatabase | A.DropDatabase):
            if request.flat:  # InfluxDB 3 manages databases on /query only (and its own API)
                verb = "CREATE" if isinstance(stmt, A.CreateDatabase) else "DROP"
                raise Invalid(f"This feature is not implemented: {verb} DATABASE")
            admin = self._require_admin()
            if isinstance(stmt, A.CreateDatabase):
                admin.create_database(stmt.name, stmt.retention_ns)
            else:
                admin.drop_database(stmt.name)
        elif isinstance(stmt, A.Explain):
            raise Invalid("This feature is not implemented: EXPLAIN")
        elif isinstance(stmt, A.NotImplementedStatement):
            raise Invalid(f"This feature is not implemented: {stmt.feature}")
        else:  # pragma: no cover - the parser produces nothing else
            raise Invalid("unsupported statement")

    def _require_admin(self) -> DatabaseAdmin:
        if self._admin is None:
            raise Invalid("this endpoint does not create or drop databases: use /query")
        return self._admin

    def _database(self, db: str | None, rp: str | None) -> str:
        if not db:
            raise Invalid(NO_DATABASE)
        if rp and rp not in DEFAULT_RETENTION_POLICIES:
            return f"{db}/{rp}"
        return db

    def _live(self, db: str) -> DatabaseDef:
        dbdef = self._catalog.state.live_db(db)
        if dbdef is None:
            raise NotFound(f"database not found: {db}")
        return dbdef

    def _runner(self, db: str, request: Request) -> select.SqlRunner:
        """SQL over `db` within the request's deadline, logged in system.queries as the InfluxQL it answers."""
        def run(sql: str, params: dict[str, object]) -> pa.Table:
            return self._engine.execute(db, sql, params or None, deadline=request.deadline,  # type: ignore[no-any-return]
                                        log_as=("influxql", request.text)).to_table()
        return run

    def _context(self, db: str, now: int, request: Request) -> select.Context:
        dbdef = self._live(db)
        run = self._runner(db, request)

        def resolve(m: A.Measurement) -> list[select.Source]:
            if m.regex is not None:
                pattern = m.regex.compiled()
                names = [n for n in sorted(dbdef.tables) if pattern.search(n)]
            else:
                names = [m.name] if m.name in dbdef.tables else []  # type: ignore[list-item]
            return [select.Source(n, meta.columns_of(dbdef.tables[n]), run,
                                  bounds=lambda n=n: self._engine.time_bounds(db, n))  # type: ignore[misc]
                    for n in names]

        def from_subquery(name: str, series: list[Series]) -> list[select.Source]:
            table, cols = select.subquery_table(series)
            return [select.Source(name, cols, lambda sql, params: run_sql_over({name: table}, sql, params))]

        return select.Context(now=now, resolve=resolve, subquery_sources=from_subquery)

    def _show_databases(self, result: StatementResult) -> None:
        state = self._catalog.state
        names = sorted(d.name for d in state.databases.values() if not d.deleted)
        visible = [n for n in names if n != INTERNAL_DB]
        result.series = [Series("databases", ["name"], [pa.array(visible, pa.string())], time_column=None)]
        result.flat = pa.table({"iox::database": pa.array(names, pa.string()),
                                "deleted": pa.array([False] * len(names), pa.bool_())})

    def _show_retention_policies(self, db: str | None, result: StatementResult, flat: bool) -> None:
        state = self._catalog.state
        if db:
            dbdef = self._live(db)
            dbs = [dbdef]
        else:
            dbs = sorted((d for d in state.databases.values() if not d.deleted), key=lambda d: d.name)
        durations = [meta.go_duration(d.retention_ns) for d in dbs]
        result.flat = pa.table({"iox::database": pa.array([d.name for d in dbs], pa.string()),
                                "name": pa.array(["autogen"] * len(dbs), pa.string()),
                                "duration": pa.array(durations, pa.string())})
        if not db:
            if flat:
                return  # InfluxDB 3's table form lists every database's policy
            raise Invalid(NO_DATABASE)
        result.series = [Series("retention_policies", ["name", "duration", "default"],
                                [pa.array(["autogen"], pa.string()), pa.array(durations, pa.string()),
                                 pa.array([True], pa.bool_())], time_column=None)]


def _select_database(stmt: A.SelectStatement) -> str | None:
    dbs = {m.database for m in _measurements(stmt) if m.database}
    if len(dbs) > 1:
        raise Invalid("can only perform queries on a single database")
    return dbs.pop() if dbs else None


def _select_rp(stmt: A.SelectStatement) -> str | None:
    rps = {m.retention_policy for m in _measurements(stmt) if m.retention_policy}
    if len(rps) > 1:
        raise Invalid("can only perform queries on a single retention policy")
    return rps.pop() if rps else None


def _measurements(stmt: A.SelectStatement) -> list[A.Measurement]:
    out = []
    for src in stmt.sources:
        if isinstance(src, A.SubQuery):
            out.extend(_measurements(src.statement))
        else:
            out.append(src)
    return out


# --- bind parameters -------------------------------------------------------------------------------------------


def bind(stmt: Any, params: dict[str, Any]) -> Any:
    """`stmt` with every `$name` replaced by the literal of params[name] (JSON types)."""
    def literal(node: A.Expr) -> A.Expr:
        if not isinstance(node, A.BoundParam):
            return node
        if node.name not in params:
            raise Invalid(f"Bind parameter '${node.name}' was referenced in the InfluxQL statement but its "
                          "value is undefined")
        value = params[node.name]
        if isinstance(value, bool):
            return A.BoolLit(value)
        if isinstance(value, int):
            return A.IntegerLit(value)
        if isinstance(value, float):
            return A.NumberLit(value)
        if isinstance(value, str):
            return A.StringLit(value)
        if value is None:
            return A.NullLit()
        raise Invalid(f"Bind parameter '${node.name}': unsupported value type {type(value).__name__}")

    def visit(obj: Any) -> Any:
        if isinstance(obj, A.Call | A.Binary | A.Paren | A.BoundParam):
            return A.transform(obj, literal)
        if isinstance(obj, tuple):
            return tuple(visit(x) for x in obj)
        if is_dataclass(obj) and not isinstance(obj, type):
            changes = {f.name: visit(getattr(obj, f.name)) for f in fields(obj)}
            return replace(obj, **changes) if any(changes[k] is not getattr(obj, k) for k in changes) else obj
        return obj

    return visit(stmt)


__all__ = ["InfluxQL", "InfluxQLError", "Request", "DatabaseAdmin", "TimeRange", "bind"]
