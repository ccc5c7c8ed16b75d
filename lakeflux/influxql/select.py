"""SELECT: InfluxQL's semantics planned onto DataFusion SQL, with the InfluxQL-only work done on the
(much smaller) SQL answers.

Per measurement, one SQL statement does the heavy lifting — the scan, the WHERE filter, the GROUP BY
tags and time windows and the aggregates — over the same tables (buffer, persisted files, duplicate
merge) that SQL queries read. What SQL cannot say is done here, vectorised with numpy: window fill,
transformations (derivative, difference, ...), selectors that return a point's time, series assembly,
LIMIT/OFFSET per series and SLIMIT/SOFFSET.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from . import ast as A
from .aggregate import run_aggregate
from .columns import kind_of
from .condition import Columns, TimeRange, split_time
from .plan import Plan, Source, SqlRunner, make_plan
from .raw import run_raw
from .results import Series
from .selectors import run_distinct, run_top_bottom
from .timeutil import zone

__all__ = ["Context", "Source", "SqlRunner", "execute", "subquery_table"]


@dataclass
class Context:
    now: int
    resolve: Callable[[A.Measurement], list[Source]]
    subquery_sources: Callable[[str, list[Series]], list[Source]]


def execute(stmt: A.SelectStatement, ctx: Context, outer_range: TimeRange | None = None,
            subquery: bool = False) -> list[Series]:
    """Every series `stmt` answers with, in output order."""
    tz = stmt.timezone
    if tz:
        zone(tz)
    time_range, rest = split_time(stmt.condition, ctx.now, tz)
    if outer_range is not None:
        time_range = time_range.intersect(outer_range)
    sources: list[Source] = []
    for src in stmt.sources:
        if isinstance(src, A.SubQuery):
            inner = execute(src.statement, ctx, time_range, subquery=True)
            names = sorted({s.name for s in inner})
            for name in names:
                sources.extend(ctx.subquery_sources(name, [s for s in inner if s.name == name]))
        else:
            sources.extend(ctx.resolve(src))
    merged: dict[str, Source] = {}
    for s in sources:
        merged.setdefault(s.name, s)
    sources = [merged[n] for n in sorted(merged)]
    plan = make_plan(stmt, sources, time_range, rest, ctx.now, subquery)
    if subquery and not plan.aggregate:
        # A raw subquery's points keep every tag of their series: the outer query may group by any of them.
        plan.group_tags = sorted({t for s in sources for t in s.cols.tags} | set(plan.group_tags))
    out: list[Series] = []
    for source in sources:
        out.extend(_run(plan, source))
    out.sort(key=lambda s: (s.name, sorted((s.tags or {}).items())))
    if stmt.soffset:
        out = out[stmt.soffset:]
    if stmt.slimit:
        out = out[:stmt.slimit]
    return out


def _run(plan: Plan, source: Source) -> list[Series]:
    if plan.special in ("top", "bottom"):
        return run_top_bottom(plan, source)
    if plan.special == "distinct":
        return run_distinct(plan, source)
    if plan.aggregate:
        return run_aggregate(plan, source)
    return run_raw(plan, source)


def subquery_table(series: list[Series]) -> tuple[pa.Table, Columns]:
    """The rows of a subquery's series for one measurement as a table the outer query reads: `time`, the
    series' tags as tag columns, every other column as a field."""
    tag_names = sorted({k for s in series for k in (s.tags or {})})
    columns: dict[str, list[pa.Array]] = {"time": []}
    field_types: dict[str, pa.DataType] = {}
    for s in series:
        for c, a in zip(s.columns[1:], s.arrays[1:], strict=True):
            if c not in field_types or pa.types.is_null(field_types[c]):
                field_types[c] = a.type
    for s in series:
        n = s.num_rows
        columns["time"].append(s.arrays[0].cast(pa.int64()).cast(pa.timestamp("ns")))
        for t in tag_names:
            columns.setdefault(t, []).append(pa.array([(s.tags or {}).get(t, "")] * n, pa.string()))
        given = dict(zip(s.columns[1:], s.arrays[1:], strict=True))
        for c, typ in field_types.items():
            arr = given.get(c)
            columns.setdefault(c, []).append(pa.nulls(n, typ) if arr is None else
                                             (arr if arr.type == typ else arr.cast(typ)))
    table = pa.table({c: pa.concat_arrays(parts) for c, parts in columns.items()})
    fields = {c: kind_of(t) for c, t in field_types.items() if c not in tag_names}
    return table, Columns(frozenset(tag_names), fields)
