"""SHOW statements: measurements, tag keys, tag values and field keys of one database, as InfluxDB 3 has them.

Names and types come from the catalog. A WHERE clause (and SHOW TAG VALUES always) reads the data, and,
as InfluxDB 3 does, only the last `METADATA_CUTOFF` of it unless the clause bounds time itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from ..catalog import DatabaseDef, TableDef
from ..model import ColumnKind
from . import ast as A
from .condition import Columns, Params, compile_condition, quote, split_time
from .results import Series

METADATA_CUTOFF_NS = 24 * 3600 * 1_000_000_000
FIELD_TYPES = {ColumnKind.FLOAT64: "float", ColumnKind.INT64: "integer", ColumnKind.UINT64: "unsigned",
               ColumnKind.STRING: "string", ColumnKind.BOOL: "boolean"}
SqlRunner = Callable[[str, dict[str, object]], pa.Table]


def columns_of(tdef: TableDef) -> Columns:
    return Columns(frozenset(tdef.tags),
                   {name: FIELD_TYPES[kind] for name, kind in tdef.columns.items() if kind in FIELD_TYPES})


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _matching(dbdef: DatabaseDef, sources: tuple[A.Measurement, ...]) -> list[str]:
    names = sorted(dbdef.tables)
    if not sources:
        return names
    out: set[str] = set()
    for src in sources:
        if src.regex is not None:
            pattern = src.regex.compiled()
            out.update(n for n in names if pattern.search(n))
        elif src.name in dbdef.tables:
            out.add(src.name)  # type: ignore[arg-type]
    return sorted(out)


def _where(condition: A.Expr | None, cols: Columns, now: int, params: Params) -> list[str]:
    """SQL conditions for a SHOW statement's WHERE clause, with InfluxDB 3's look-back when it has no time."""
    time_range, rest = split_time(condition, now, None)
    lo = time_range.lo if time_range.has_lo else now - METADATA_CUTOFF_NS
    clauses = [f"time >= to_timestamp_nanos({int(lo)})"]
    if time_range.has_hi:
        clauses.append(f"time <= to_timestamp_nanos({int(time_range.hi)})")
    if rest is not None:
        clauses.append(compile_condition(rest, cols, params))
    return clauses


def _limit(values: list, limit: int, offset: int) -> list:
    values = values[offset:] if offset else values
    return values[:limit] if limit else values


def show_measurements(stmt: A.ShowMeasurements, dbdef: DatabaseDef, run: SqlRunner, now: int) -> list[Series]:
    names = sorted(dbdef.tables)
    if stmt.name is not None:
        if stmt.name.regex is not None:
            pattern = stmt.name.regex.compiled()
            names = [n for n in names if pattern.search(n)]
        else:
            names = [n for n in names if n == stmt.name.name]
    if stmt.condition is not None:
        kept = []
        for name in names:
            params = Params()
            where = _where(stmt.condition, columns_of(dbdef.tables[name]), now, params)
            sql = f"SELECT 1 AS one FROM {quote(name)} WHERE {' AND '.join(where)} LIMIT 1"
            if run(sql, params.values).num_rows:
                kept.append(name)
        names = kept
    names = _limit(names, stmt.limit, stmt.offset)
    if not names:
        return []
    return [Series("measurements", ["name"], [_strings(names)], time_column=None)]


def show_tag_keys(stmt: A.ShowTagKeys, dbdef: DatabaseDef, run: SqlRunner, now: int) -> list[Series]:
    out = []
    for name in _matching(dbdef, stmt.sources):
        tdef = dbdef.tables[name]
        keys = sorted(tdef.tags)
        if stmt.condition is not None and keys:
            params = Params()
            where = _where(stmt.condition, columns_of(tdef), now, params)
            counts = ", ".join(f"count({quote(k)}) AS c{i}" for i, k in enumerate(keys))
            table = run(f"SELECT {counts} FROM {quote(name)} WHERE {' AND '.join(where)}", params.values)
            row = table.to_pylist()[0] if table.num_rows else {}
            keys = [k for i, k in enumerate(keys) if row.get(f"c{i}")]
        keys = _limit(keys, stmt.limit, stmt.offset)
        if keys:
            out.append(Series(name, ["tagKey"], [_strings(keys)], time_column=None))
    return out


def show_field_keys(stmt: A.ShowFieldKeys, dbdef: DatabaseDef) -> list[Series]:
    out = []
    for name in _matching(dbdef, stmt.sources):
        fields = sorted(columns_of(dbdef.tables[name]).fields.items())
        fields = _limit(fields, stmt.limit, stmt.offset)
        if fields:
            out.append(Series(name, ["fieldKey", "fieldType"], [_strings([f for f, _ in fields]),
                                                                 _strings([t for _, t in fields])],
                              time_column=None))
    return out


def show_tag_values(stmt: A.ShowTagValues, dbdef: DatabaseDef, run: SqlRunner, now: int) -> list[Series]:
    out = []
    for name in _matching(dbdef, stmt.sources):
        tdef = dbdef.tables[name]
        keys = [k for k in sorted(tdef.tags) if _key_matches(stmt, k)]
        if not keys:
            continue
        pairs: list[tuple[str, str]] = []
        for k in keys:
            params = Params()
            where = _where(stmt.condition, columns_of(tdef), now, params)
            sql = (f"SELECT DISTINCT {quote(k)} AS value FROM {quote(name)} WHERE {' AND '.join(where)} "
                   f"AND {quote(k)} IS NOT NULL")
            pairs.extend((k, v) for v in sorted(run(sql, params.values).column("value").to_pylist()))
        if stmt.limit or stmt.offset:
            limited: list[tuple[str, str]] = []
            for k in keys:
                limited.extend(_limit([p for p in pairs if p[0] == k], stmt.limit, stmt.offset))
            pairs = limited
        if pairs:
            out.append(Series(name, ["key", "value"], [_strings([k for k, _ in pairs]),
                                                       _strings([v for _, v in pairs])], time_column=None))
    return out


def _key_matches(stmt: A.ShowTagValues, key: str) -> bool:
    if stmt.key_op == "=":
        return key in stmt.keys
    if stmt.key_op == "!=":
        return key not in stmt.keys
    if stmt.key_op == "IN":
        return key in stmt.keys
    assert stmt.key_regex is not None
    found = stmt.key_regex.compiled().search(key) is not None
    return found if stmt.key_op == "=~" else not found


def go_duration(ns: int | None) -> str:
    """A duration as Go prints it (`0s`, `720h0m0s`), the form SHOW RETENTION POLICIES uses."""
    if not ns:
        return "0s"
    seconds, frac = divmod(ns, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs}" + (f".{frac:09d}".rstrip("0") if frac else "")
    if hours:
        return f"{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{minutes}m{sec_text}s"
    return f"{sec_text}s"
