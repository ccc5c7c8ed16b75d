"""Running SQL: one DataFusion context per query over the buffer (and, later, persisted Parquet).

A context costs well under a millisecond, so each query gets a fresh one holding only the tables
its text mentions; information_schema is lakeflux's own, so column types read exactly as
InfluxDB 3 reports them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from datafusion import SessionConfig, SessionContext, SQLOptions
from datafusion.catalog import Schema

from ..buffer import BufferedTables
from ..catalog import Catalog, TableDef
from ..errors import Invalid, NotFound
from .schema import conform, table_schema, type_name

CATALOG_NAME = "public"
SCHEMA_NAME = "iox"
SystemTables = Callable[[str], dict[str, pa.Table]]

_READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False).with_allow_statements(False)
_SHOW_TABLES = re.compile(r"^\s*show\s+tables\s*;?\s*$", re.IGNORECASE)
_SHOW_COLUMNS = re.compile(r"^\s*show\s+columns\s+from\s+(\"[^\"]+\"|'[^']+'|\S+?)\s*;?\s*$", re.IGNORECASE)
_SINGLE_QUOTED_FROM = re.compile(r"(\b(?:from|join)\s+)'([^']+)'", re.IGNORECASE)


@dataclass
class QueryResult:
    schema: pa.Schema
    batches: list[pa.RecordBatch]

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=self.schema)


class QueryEngine:
    """Executes read-only SQL against one database's committed rows."""

    def __init__(self, catalog: Catalog, buffer: BufferedTables, system_tables: SystemTables | None = None) -> None:
        self._catalog = catalog
        self._buffer = buffer
        self._system_tables = system_tables
        self._config = (
            SessionConfig()
            .with_information_schema(False)
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
        )

    def execute(self, db: str, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        """Run `sql` with `$name` parameters bound after parsing. NotFound for an unknown database,
        Invalid for SQL errors and for anything that is not a read-only query."""
        dbdef = self._catalog.state.live_db(db)
        if dbdef is None:
            raise NotFound(f"database not found: {db}")
        sql = _rewrite_show(sql)
        ctx = SessionContext(self._config)
        self._register(ctx, db, dbdef.tables, sql)
        try:
            df = ctx.sql_with_options(sql, _READ_ONLY, param_values=_param_values(params))
            batches = df.collect()
            schema = df.schema()
        except Exception as e:  # DataFusion raises plain exceptions for planning and execution errors
            raise Invalid(_clean(str(e))) from e
        return QueryResult(schema=schema, batches=batches)

    def _register(self, ctx: SessionContext, db: str, tables: dict[str, TableDef], sql: str) -> None:
        catalog = ctx.catalog(CATALOG_NAME)
        iox = catalog.schema(SCHEMA_NAME)
        lowered = sql.lower()
        scratch = SessionContext()
        for name, tdef in tables.items():
            if name.lower() not in lowered:
                continue
            iox.register_table(name, _provider(scratch, self._table_data(db, name, tdef)))
        system = self._system_tables(db) if self._system_tables and "system" in lowered else {}
        if system:
            schema = Schema.memory_schema()
            catalog.register_schema("system", schema)
            for name, data in system.items():
                schema.register_table(name, _provider(scratch, data))
        if "information_schema" in lowered:
            info = Schema.memory_schema()
            catalog.register_schema("information_schema", info)
            for name, data in _information_schema(tables, system).items():
                info.register_table(name, _provider(scratch, data))

    def _table_data(self, db: str, name: str, tdef: TableDef) -> pa.Table:
        schema = table_schema(tdef.columns)
        chunks = [conform(data, schema) for _, data in self._buffer.chunks(db, name)]
        return pa.concat_tables(chunks) if chunks else schema.empty_table()


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
    """SHOW TABLES / SHOW COLUMNS read lakeflux's own information_schema; FROM 'x' means a table."""
    if _SHOW_TABLES.match(sql):
        return ("SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables "
                "ORDER BY table_schema, table_name")
    m = _SHOW_COLUMNS.match(sql)
    if m:
        name = m.group(1).strip("\"'").replace("'", "''")
        return ("SELECT table_catalog, table_schema, table_name, column_name, data_type, is_nullable "
                f"FROM information_schema.columns WHERE table_name = '{name}'")
    # InfluxDB accepts single-quoted table names after FROM/JOIN (plugins use FROM 'cpu').
    return _SINGLE_QUOTED_FROM.sub(lambda mm: f'{mm.group(1)}"{mm.group(2)}"', sql)


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


def _clean(message: str) -> str:
    return message.strip().replace("\n", " ")
