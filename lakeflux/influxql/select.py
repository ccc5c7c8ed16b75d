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
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import Invalid
from . import ast as A
from . import transforms
from .columns import Col, arithmetic, constant, from_arrow, kind_of, math_function, nulls
from .condition import Columns, Params, TimeRange, compile_condition, quote, split_time
from .functions import (
    AGGREGATES,
    MATH,
    SELECTORS,
    TRANSFORMS,
    UNSUPPORTED,
    accepts,
    field_name,
    is_aggregate_call,
    unique_names,
)
from .results import Series
from .timeutil import MAX_TIME, MIN_TIME, NS, window, windows, zone

MAX_WINDOWS = 1_000_000  # per statement: fill materialises every window of every series
SqlRunner = Callable[[str, dict[str, object]], pa.Table]


@dataclass
class Source:
    """One measurement a SELECT reads: its name, what its columns are, and how to run SQL over it."""

    name: str
    cols: Columns
    run: SqlRunner


@dataclass
class Context:
    now: int
    resolve: Callable[[A.Measurement], list[Source]]
    subquery_sources: Callable[[str, list[Series]], list[Source]]


@dataclass
class _Output:
    name: str
    expr: A.Expr


@dataclass
class _Plan:
    stmt: A.SelectStatement
    outputs: list[_Output]
    group_tags: list[str]
    time_range: TimeRange
    condition: A.Expr | None
    interval: int = 0
    offset: int = 0
    tz: str | None = None
    aggregate: bool = False
    extra_windows: int = 0
    fill: A.Fill = field(default_factory=A.Fill)
    point_time: bool = False  # a lone selector reports its point's time
    special: str | None = None  # "top", "bottom" or "distinct"


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
    plan = _plan(stmt, sources, time_range, rest, ctx.now, subquery)
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


# --- planning ---------------------------------------------------------------------------------------------------


def _plan(stmt: A.SelectStatement, sources: list[Source], time_range: TimeRange, rest: A.Expr | None,
          now: int, subquery: bool) -> _Plan:
    tags = sorted({t for s in sources for t in s.cols.tags})
    fields: dict[str, str] = {}
    for s in sources:
        for name, kind in s.cols.fields.items():
            fields.setdefault(name, kind)
    group_tags = _group_tags(stmt.dimensions, tags)
    outputs = _expand_fields(stmt.fields, tags, fields, group_tags)
    td = stmt.time_dimension
    plan = _Plan(stmt=stmt, outputs=outputs, group_tags=group_tags, time_range=time_range, condition=rest,
                 tz=stmt.timezone, fill=stmt.fill)
    if td is not None:
        plan.interval = td.interval
        plan.offset = (now % td.interval) if td.offset_now else td.offset % td.interval
    _classify(plan, fields)
    if plan.aggregate and subquery and plan.fill.mode == "null":
        plan.fill = A.Fill("none")  # InfluxQL: a subquery's empty windows are dropped, not nulled
    if plan.interval and not plan.time_range.has_hi:
        plan.time_range = TimeRange(plan.time_range.lo, now)
    return plan


def _group_tags(dimensions: tuple[A.Dimension, ...], tags: list[str]) -> list[str]:
    out: list[str] = []
    for d in dimensions:
        if isinstance(d, A.TagDimension):
            names = [d.name]
        elif isinstance(d, A.WildcardDimension):
            names = tags
        elif isinstance(d, A.RegexDimension):
            pattern = d.regex.compiled()
            names = [t for t in tags if pattern.search(t)]
        else:
            continue
        out.extend(n for n in names if n not in out)
    return sorted(out)


def _expand_fields(fields: tuple[A.Field, ...], tags: list[str], types: dict[str, str],
                   group_tags: list[str]) -> list[_Output]:
    exprs: list[tuple[A.Expr, str | None]] = []
    for f in fields:
        expr = A.unparen(f.expr) if isinstance(A.unparen(f.expr), A.Wildcard | A.RegexLit) else f.expr
        if isinstance(expr, A.Wildcard | A.RegexLit):
            pattern = expr.compiled() if isinstance(expr, A.RegexLit) else None
            want_fields = not (isinstance(expr, A.Wildcard) and expr.type == "tag")
            want_tags = not (isinstance(expr, A.Wildcard) and expr.type == "field")
            names = ([n for n in types if want_fields] +
                     [t for t in tags if want_tags and t not in group_tags and t not in types])
            for name in sorted(names):
                if pattern is None or pattern.search(name):
                    exprs.append((A.VarRef(name, "tag" if name not in types else None), None))
            continue
        if isinstance(expr, A.Call) and expr.args and isinstance(A.unparen(expr.args[0]), A.Wildcard | A.RegexLit):
            arg = A.unparen(expr.args[0])
            if expr.name in ("top", "bottom"):
                raise Invalid(f"invalid argument for {expr.name}(): expected a field, not a wildcard")
            pattern = arg.compiled() if isinstance(arg, A.RegexLit) else None
            for name in sorted(types):
                if (pattern is None or pattern.search(name)) and accepts(expr.name, types[name]):
                    call = A.Call(expr.name, (A.VarRef(name), *expr.args[1:]))
                    exprs.append((call, f.alias + "_" + name if f.alias else f"{expr.name}_{name}"))
            continue
        if isinstance(expr, A.Call) and expr.name in TRANSFORMS and expr.args:
            inner = A.unparen(expr.args[0])
            if isinstance(inner, A.Call) and inner.args and isinstance(A.unparen(inner.args[0]),
                                                                        A.Wildcard | A.RegexLit):
                pattern = inner.args[0].compiled() if isinstance(inner.args[0], A.RegexLit) else None
                for name in sorted(types):
                    if (pattern is None or pattern.search(name)) and accepts(inner.name, types[name]):
                        call = A.Call(expr.name, (A.Call(inner.name, (A.VarRef(name), *inner.args[1:])),
                                                  *expr.args[1:]))
                        exprs.append((call, f.alias + "_" + name if f.alias else f"{expr.name}_{name}"))
                continue
        if isinstance(A.unparen(expr), A.VarRef) and A.unparen(expr).name.lower() == "time":  # type: ignore[union-attr]
            continue  # time is always the first column
        exprs.append((f.expr, f.alias))
    names = unique_names([alias if alias is not None else field_name(e) for e, alias in exprs])
    return [_Output(n, e) for n, (e, _) in zip(names, exprs, strict=True)]


def _classify(plan: _Plan, types: dict[str, str]) -> None:
    """Decide raw vs aggregate, check InfluxQL's rules on mixing, and note what each path needs."""
    calls = [n for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.Call)]
    for c in calls:
        if c.name in UNSUPPORTED:
            raise Invalid(f"This feature is not implemented: {c.name}()")
        if c.name == "sample":
            raise Invalid("This feature is not implemented: sample selector function")
        if c.name not in AGGREGATES and c.name not in SELECTORS and c.name not in TRANSFORMS and c.name not in MATH:
            raise Invalid(f"undefined function {c.name}()")
    aggregates = [c for c in calls if is_aggregate_call(c)]
    plan.aggregate = bool(aggregates)
    if not plan.outputs:
        raise Invalid("at least 1 non-time field must be queried")
    if not plan.aggregate:
        has_transform = any(c.name in TRANSFORMS for c in calls)
        if plan.interval:
            for c in calls:
                if c.name in TRANSFORMS:
                    raise Invalid(f"aggregate function required inside the call to {c.name}")
            raise Invalid("GROUP BY requires at least one aggregate function")
        if has_transform:
            for o in plan.outputs:
                if not any(isinstance(n, A.Call) and n.name in TRANSFORMS for n in A.walk(o.expr)):
                    raise Invalid("mixing aggregate and non-aggregate queries is not supported")
        for c in calls:
            _check_call(c, plan)
        return
    for c in calls:
        _check_call(c, plan)
    names = {c.name for c in aggregates}
    if names & {"top", "bottom"}:
        if len(aggregates) > 1 or len([o for o in plan.outputs if _has_call(o.expr)]) > 1:
            fn = "top" if "top" in names else "bottom"
            raise Invalid(f"selector function {fn}() cannot be combined with other functions")
        plan.special = next(iter(names & {"top", "bottom"}))
        return
    if "distinct" in names and any(isinstance(A.unparen(o.expr), A.Call) and A.unparen(o.expr).name == "distinct"  # type: ignore[union-attr]
                                   for o in plan.outputs):
        if len(plan.outputs) > 1:
            raise Invalid("aggregate function distinct() cannot be combined with other functions or fields")
        plan.special = "distinct"
        return
    raw_refs = [o for o in plan.outputs if _bare_refs(o.expr)]
    selectors = [c for c in aggregates if c.name in SELECTORS]
    if raw_refs and not (len(aggregates) == 1 and selectors):
        raise Invalid("mixing aggregate and non-aggregate queries is not supported")
    for o in plan.outputs:
        _check_transform_args(o.expr, plan)
    if len(aggregates) == 1 and (selectors or aggregates[0].name == "integral") and not plan.interval:
        plan.point_time = True  # a lone selector reports its point's time; integral() reports time 0
    if plan.interval:
        plan.extra_windows = max((_extra_windows(o.expr) for o in plan.outputs), default=0)


def _has_call(expr: A.Expr) -> bool:
    return any(isinstance(n, A.Call) for n in A.walk(expr))


def _bare_refs(expr: A.Expr) -> bool:
    """Whether `expr` reads a column outside any aggregate."""
    expr = A.unparen(expr)
    if isinstance(expr, A.VarRef):
        return True
    if isinstance(expr, A.Call):
        return False if is_aggregate_call(expr) else any(_bare_refs(a) for a in expr.args)
    if isinstance(expr, A.Binary):
        return _bare_refs(expr.lhs) or _bare_refs(expr.rhs)
    return False


def _check_call(c: A.Call, plan: _Plan) -> None:
    name, args = c.name, c.args
    if name in MATH:
        if len(args) != MATH[name]:
            raise Invalid(f"invalid number of arguments for {name}, expected {MATH[name]}, got {len(args)}")
        return
    if name in ("top", "bottom"):
        limit = A.unparen(args[-1]) if len(args) >= 2 else None
        if not isinstance(limit, A.IntegerLit):
            raise Invalid(f"invalid number of arguments for {name}, expected at least 2, got {len(args)}")
        if limit.value <= 0:
            raise Invalid(f"limit ({limit.value}) for {name} must be greater than 0")
        for a in args[:-1]:
            if not isinstance(A.unparen(a), A.VarRef):
                raise Invalid(f"only fields or tags are allowed in {name}(), found {a}")
        return
    if name == "percentile":
        if len(args) != 2 or not isinstance(A.unparen(args[1]), A.IntegerLit | A.NumberLit):
            raise Invalid("expected float argument in percentile()")
    elif name == "moving_average":
        size = A.unparen(args[1]) if len(args) == 2 else None
        if not isinstance(size, A.IntegerLit):
            raise Invalid("moving_average expects number for second argument")
        if size.value < 1:
            raise Invalid("moving_average window must be greater than 0")
    elif name in ("derivative", "non_negative_derivative", "elapsed", "integral"):
        if not 1 <= len(args) <= 2:
            raise Invalid(f"invalid number of arguments for {name}, expected at least 1 but no more than 2, "
                          f"got {len(args)}")
        if len(args) == 2:
            unit = A.unparen(args[1])
            if not isinstance(unit, A.DurationLit) or unit.ns <= 0:
                raise Invalid(f"second argument to {name} must be a duration greater than 0, got {args[1]}")
    elif name == "count" and args and isinstance(A.unparen(args[0]), A.Call):
        inner = A.unparen(args[0])
        if inner.name != "distinct":  # type: ignore[union-attr]
            raise Invalid("expected field argument in count()")
        return
    elif len(args) != 1:
        raise Invalid(f"invalid number of arguments for {name}, expected 1, got {len(args)}")
    arg = A.unparen(args[0]) if args else None
    if name in TRANSFORMS:
        if not isinstance(arg, A.VarRef) and not (isinstance(arg, A.Call) and (is_aggregate_call(arg) or
                                                                              arg.name in TRANSFORMS)):
            raise Invalid(f"expected field argument in {name}()")
        return
    if not isinstance(arg, A.VarRef):
        raise Invalid(f"expected field argument in {name}()")


def _check_transform_args(expr: A.Expr, plan: _Plan) -> None:
    for n in A.walk(expr):
        if isinstance(n, A.Call) and n.name in TRANSFORMS:
            inner = A.unparen(n.args[0])
            if isinstance(inner, A.VarRef):
                raise Invalid(f"aggregate function required inside the call to {n.name}")
            if not plan.interval:
                raise Invalid(f"{n.name} aggregate requires a GROUP BY interval")


def _extra_windows(expr: A.Expr) -> int:
    """Windows before the requested range a transformation reads to answer its first window: one, as
    InfluxDB 1.x reads (moving_average's first answer thus needs N-1 requested windows more)."""
    best = 0
    for n in A.walk(expr):
        if isinstance(n, A.Call) and n.name in TRANSFORMS and n.name != "cumulative_sum":
            best = max(best, 1 + _extra_windows(n.args[0]))
    return best


# --- running ----------------------------------------------------------------------------------------------------


def _run(plan: _Plan, source: Source) -> list[Series]:
    if plan.special in ("top", "bottom"):
        return _run_top_bottom(plan, source)
    if plan.special == "distinct":
        return _run_distinct(plan, source)
    if plan.aggregate:
        return _run_aggregate(plan, source)
    return _run_raw(plan, source)


@dataclass
class _Windows:
    """The GROUP BY time windows of a statement: the requested ones, plus the extra ones a transformation
    reads before them (after them in descending order), and the time range the SQL must read."""

    starts: list[int] | None  # every window the SQL groups into; None without a lower time bound
    first: int  # first requested window
    last: int  # last requested window
    data_lo: int
    data_hi: int


def _windows(plan: _Plan) -> _Windows:
    tr = plan.time_range
    if not plan.interval or tr.lo == MIN_TIME:
        last = window(tr.hi, plan.interval, plan.offset, plan.tz)[0] if plan.interval else MAX_TIME
        return _Windows(None, MIN_TIME, last, tr.lo, tr.hi)
    step = (plan.interval, plan.offset, plan.tz)
    first = window(tr.lo, *step)[0]
    requested = windows(first, tr.hi, *step, MAX_WINDOWS)
    if not requested:
        return _Windows([], first, first, tr.lo, tr.hi)
    last = requested[-1]
    data_lo, data_hi = tr.lo, tr.hi
    before: list[int] = []
    after: list[int] = []
    if plan.extra_windows and not plan.stmt.descending:
        t = first
        for _ in range(plan.extra_windows):
            t = window(t - 1, *step)[0]
            before.insert(0, t)
        data_lo = before[0]
    elif plan.extra_windows:
        end = window(last, *step)[1]
        for _ in range(plan.extra_windows):
            after.append(end)
            end = window(end, *step)[1]
        data_hi = end - 1
    return _Windows(before + requested + after, first, last, data_lo, data_hi)


def _where(plan: _Plan, source: Source, params: Params, span: _Windows | None = None) -> list[str]:
    tr = plan.time_range
    lo, hi = (span.data_lo, span.data_hi) if span is not None else (tr.lo, tr.hi)
    clauses = []
    if lo != MIN_TIME:
        clauses.append(f"time >= to_timestamp_nanos({int(lo)})")
    if hi != MAX_TIME:
        clauses.append(f"time <= to_timestamp_nanos({int(hi)})")
    if plan.condition is not None:
        clauses.append(compile_condition(plan.condition, source.cols, params))
    return clauses


def _sql(select: list[str], source: Source, where: list[str], tail: str = "") -> str:
    sql = f"SELECT {', '.join(select)} FROM {quote(source.name)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + tail


def _group_columns(plan: _Plan, source: Source) -> list[str]:
    """SQL for each GROUP BY tag (NULL for tags this measurement lacks)."""
    return [quote(t) if t in source.cols.tags else "CAST(NULL AS VARCHAR)" for t in plan.group_tags]


@dataclass
class _Groups:
    """Rows of an SQL answer split into series by their GROUP BY tag values."""

    keys: list[dict[str, str]]
    starts: np.ndarray  # row index where each series starts (rows sorted by series)
    order: np.ndarray  # the permutation that sorts rows by series (stable)

    def rows(self, i: int) -> np.ndarray:
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.order)
        return self.order[self.starts[i]:end]


def _split_groups(table: pa.Table, names: list[str]) -> _Groups:
    n = table.num_rows
    if n == 0:
        return _Groups([], np.array([], dtype=np.int64), np.arange(0))
    if not names:
        return _Groups([{}], np.array([0], dtype=np.int64), np.arange(n))
    codes = np.zeros(n, dtype=np.int64)
    dictionaries = []
    for i, _ in enumerate(names):
        column = table.column(f"__g{i}").fill_null("")
        encoded = column.combine_chunks().dictionary_encode() if n else pa.array([], pa.string()).dictionary_encode()
        values = encoded.dictionary.to_pylist()
        rank = np.argsort(np.argsort(np.array(values, dtype=object))) if values else np.array([], dtype=np.int64)
        idx = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = codes * (len(values) + 1) + (rank[idx] if len(idx) else idx)
        dictionaries.append((values, rank))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_codes[1:] != sorted_codes[:-1]))) if n else np.array(
        [], dtype=np.int64)
    keys = []
    for s in starts:
        row = order[s]
        keys.append({name: (table.column(f"__g{i}")[row].as_py() or "") for i, name in enumerate(names)})
    return _Groups(keys, starts, order)


def _series(plan: _Plan, name: str, tags: dict[str, str], times: np.ndarray, cols: list[Col]) -> Series:
    arrays = [pa.array(times, pa.int64()), *(c.to_arrow() for c in cols)]
    return Series(name=name, columns=["time", *(o.name for o in plan.outputs)], arrays=arrays,
                  tags=dict(tags) if plan.group_tags else None, timezone=plan.tz)


def _limit(plan: _Plan, keep: np.ndarray) -> np.ndarray:
    """Row positions after OFFSET and LIMIT."""
    idx = np.flatnonzero(keep)
    if plan.stmt.offset:
        idx = idx[plan.stmt.offset:]
    if plan.stmt.limit:
        idx = idx[:plan.stmt.limit]
    return idx


# --- raw queries --------------------------------------------------------------------------------------------


def _run_raw(plan: _Plan, source: Source) -> list[Series]:
    params = Params()
    refs = sorted({n.name for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.VarRef)})
    field_refs = [r for r in refs if r in source.cols.fields]
    if not field_refs:
        return []  # InfluxQL returns points of fields only
    select = [f"{g} AS __g{i}" for i, g in enumerate(_group_columns(plan, source))]
    select.append("CAST(time AS BIGINT) AS __time")
    present = [r for r in refs if r in source.cols.fields or r in source.cols.tags]
    select.extend(f"{quote(r)} AS __c{i}" for i, r in enumerate(present))
    where = _where(plan, source, params)
    where.append("(" + " OR ".join(f"{quote(r)} IS NOT NULL" for r in field_refs) + ")")
    direction = "DESC" if plan.stmt.descending else "ASC"
    order = [f"__g{i}" for i in range(len(plan.group_tags))] + [f"__time {direction}"]
    order += [quote(t) for t in sorted(source.cols.tags) if t in present]
    tail = " ORDER BY " + ", ".join(order)
    has_transform = any(isinstance(n, A.Call) and n.name in TRANSFORMS for o in plan.outputs for n in A.walk(o.expr))
    if not plan.group_tags and not has_transform and plan.stmt.limit:
        tail += f" LIMIT {int(plan.stmt.limit + plan.stmt.offset)}"
    table = source.run(_sql(select, source, where, tail), params.values)
    groups = _split_groups(table, plan.group_tags)
    times_all = table.column("__time").to_numpy()
    columns = {r: from_arrow(table.column(f"__c{i}"), "string" if r in source.cols.tags and
                             r not in source.cols.fields else None) for i, r in enumerate(present)}
    out = []
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        times = times_all[rows]
        env = {name: col.take(rows) for name, col in columns.items()}
        cols = [_eval_raw(o.expr, env, times, len(rows)) for o in plan.outputs]
        # A point of any field the query reads is a row (its columns may all be null), except for
        # transformations, which answer only where they produce a value.
        keep = np.zeros(len(rows), dtype=bool) if has_transform else np.ones(len(rows), dtype=bool)
        if has_transform:
            for c in cols:
                keep |= c.valid
        idx = _limit(plan, keep)
        if len(idx):
            out.append(_series(plan, source.name, tags, times[idx], [c.take(idx) for c in cols]))
    return out


def _eval_raw(expr: A.Expr, env: dict[str, Col], times: np.ndarray, n: int) -> Col:
    expr = A.unparen(expr)
    if isinstance(expr, A.VarRef):
        return env.get(expr.name) or nulls(n)
    if isinstance(expr, A.Call):
        if expr.name in TRANSFORMS:
            inner = _eval_raw(expr.args[0], env, times, n)
            return _transform(expr, inner, times, default_unit=NS)
        return math_function(expr.name, [_eval_raw(a, env, times, n) for a in expr.args])
    if isinstance(expr, A.Binary):
        return arithmetic(expr.op, _eval_raw(expr.lhs, env, times, n), _eval_raw(expr.rhs, env, times, n))
    return _literal(expr, n)


def _literal(expr: A.Expr, n: int) -> Col:
    if isinstance(expr, A.IntegerLit | A.NumberLit | A.StringLit | A.BoolLit):
        return constant(expr.value, n)
    if isinstance(expr, A.DurationLit):
        return constant(expr.ns, n)
    if isinstance(expr, A.NullLit):
        return nulls(n)
    raise Invalid("invalid expression in field list")


def _transform(call: A.Call, inner: Col, times: np.ndarray, default_unit: int) -> Col:
    if inner.kind not in ("float", "integer", "unsigned") and not (call.name == "elapsed"):
        if inner.kind == "null":
            return inner
        raise Invalid(f"unsupported {call.name}() argument type: {inner.kind}")
    args: tuple[int, ...] = ()
    if call.name in ("derivative", "non_negative_derivative"):
        args = (A.unparen(call.args[1]).ns if len(call.args) > 1 else default_unit,)  # type: ignore[union-attr]
    elif call.name == "elapsed":
        args = (A.unparen(call.args[1]).ns if len(call.args) > 1 else 1,)  # type: ignore[union-attr]
    elif call.name == "moving_average":
        args = (int(A.unparen(call.args[1]).value),)  # type: ignore[union-attr]
    values = inner.values if inner.kind != "string" else np.zeros(len(inner.values))
    out, valid = transforms.apply(call.name, times, values, inner.valid, args)
    kind = {"i": "integer", "u": "unsigned", "f": "float", "b": "integer"}[out.dtype.kind]
    return Col(out, valid, kind)


# --- aggregates ---------------------------------------------------------------------------------------------


@dataclass
class _Leaf:
    """One aggregate or selector call, and the SQL columns that compute it."""

    call: A.Call
    field: str | None  # the field it reads (None: not a field of this measurement)
    kind: str  # the InfluxQL type of the field
    value: str = ""  # SQL column of the value (or of collected values)
    presence: str = ""  # SQL column counting input points, when the value alone cannot tell
    times: str = ""  # SQL column of collected times / the selected point's time


class _SelectList:
    def __init__(self) -> None:
        self.exprs: dict[str, str] = {}

    def add(self, sql: str) -> str:
        if sql not in self.exprs:
            self.exprs[sql] = f"__a{len(self.exprs)}"
        return self.exprs[sql]

    def sql(self) -> list[str]:
        return [f"{expr} AS {alias}" for expr, alias in self.exprs.items()]


def _leaf_sql(leaf: _Leaf, columns: _SelectList, point_time: bool) -> None:
    c = leaf.call
    f = quote(leaf.field) if leaf.field else ""
    if leaf.field is None:
        return
    nonnull = f" FILTER (WHERE {f} IS NOT NULL)"
    t = "CAST(time AS BIGINT)"
    name = c.name
    if name == "count":
        inner = A.unparen(c.args[0])
        leaf.value = columns.add(f"count(DISTINCT {f})" if isinstance(inner, A.Call) else f"count({f})")
    elif name == "sum":
        leaf.value = columns.add(f"sum({f})")
    elif name == "mean":
        leaf.value = columns.add(f"avg({f})")
    elif name == "median":
        leaf.value = columns.add(f"median({f})")
    elif name == "spread":
        leaf.value = columns.add(f"max({f}) - min({f})")
    elif name == "stddev":
        leaf.value = columns.add(f"stddev(CAST({f} AS DOUBLE))")
        leaf.presence = columns.add(f"count({f})")
    elif name in ("min", "max", "first", "last"):
        order = {"min": f"{f} ASC, time ASC", "max": f"{f} DESC, time ASC", "first": "time ASC",
                 "last": "time DESC"}[name]
        if name in ("min", "max") and leaf.kind != "boolean":
            leaf.value = columns.add(f"{name}({f})")
        else:
            leaf.value = columns.add(f"first_value({f} ORDER BY {order}){nonnull}")
        if point_time:
            leaf.times = columns.add(f"first_value({t} ORDER BY {order}){nonnull}")
    elif name in ("mode", "percentile", "integral"):
        # Plain Utf8 inside the list: the engine's view strings do not survive Arrow's take on lists.
        value = f"arrow_cast({f}, 'Utf8')" if leaf.kind == "string" else f
        leaf.value = columns.add(f"array_agg({value} ORDER BY time ASC){nonnull}")
        leaf.times = columns.add(f"array_agg({t} ORDER BY time ASC){nonnull}")
    else:
        raise Invalid(f"unsupported aggregate {name}()")


def _leaf_order(leaf: _Leaf) -> str:
    f = quote(leaf.field or "")
    return {"min": f"{f} ASC, time ASC", "max": f"{f} DESC, time ASC", "first": "time ASC",
            "last": "time DESC"}.get(leaf.call.name, "time ASC")


def _leaves(plan: _Plan, source: Source) -> list[_Leaf]:
    found: list[_Leaf] = []
    seen: set[A.Call] = set()
    for o in plan.outputs:
        nested = {a for n in A.walk(o.expr) if isinstance(n, A.Call) and n.name == "count"
                  for a in n.args if isinstance(a, A.Call)}
        for n in A.walk(o.expr):
            if isinstance(n, A.Call) and is_aggregate_call(n) and n not in seen and n not in nested:
                seen.add(n)
                arg = A.unparen(n.args[0])
                if isinstance(arg, A.Call):  # count(distinct(f))
                    arg = A.unparen(arg.args[0])
                name = arg.name if isinstance(arg, A.VarRef) else ""
                kind = source.cols.fields.get(name)
                if kind is not None and arg.type not in (None, "field", kind):  # type: ignore[union-attr]
                    kind = None
                if kind is not None and not accepts(n.name, kind):
                    raise Invalid(f"unsupported {n.name}() argument: field {name} is of type {kind}")
                found.append(_Leaf(n, name if kind is not None else None, kind or "null"))
    return found


def _run_aggregate(plan: _Plan, source: Source) -> list[Series]:
    leaves = _leaves(plan, source)
    if all(leaf.field is None for leaf in leaves):
        return []
    params = Params()
    columns = _SelectList()
    for leaf in leaves:
        _leaf_sql(leaf, columns, plan.point_time)
    aux = sorted({n.name for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.VarRef)
                  and _bare_refs(o.expr)} if plan.point_time else set())
    aux_cols: dict[str, str] = {}
    if aux:
        selector = next(leaf for leaf in leaves)
        nonnull = f" FILTER (WHERE {quote(selector.field)} IS NOT NULL)" if selector.field else ""
        for name in aux:
            if name in source.cols.fields or name in source.cols.tags:
                if selector.call.name in ("min", "max", "first", "last"):
                    aux_cols[name] = columns.add(
                        f"first_value({quote(name)} ORDER BY {_leaf_order(selector)}){nonnull}")
                else:
                    value = quote(name)
                    if name in source.cols.tags or source.cols.fields.get(name) == "string":
                        value = f"arrow_cast({value}, 'Utf8')"
                    aux_cols[name] = columns.add(f"array_agg({value} ORDER BY time ASC){nonnull}")
    group = _group_columns(plan, source)
    select = [f"{g} AS __g{i}" for i, g in enumerate(group)]
    group_by = [f"__g{i}" for i in range(len(group))]
    span = _windows(plan)
    if plan.interval:
        select.append(f"{_bucket_sql(plan, span.starts)} AS __time")
        group_by.append("__time")
    select.extend(columns.sql())
    where = _where(plan, source, params, span)
    tail = f" GROUP BY {', '.join(group_by)}" if group_by else ""
    table = source.run(_sql(select, source, where, tail), params.values)
    if table.num_rows == 0:
        return []
    if plan.interval and span.starts is None:  # no lower bound: start at the first window with data
        first = int(pa.compute.min(table.column("__time")).as_py())
        span.starts = windows(first, plan.time_range.hi, plan.interval, plan.offset, plan.tz, MAX_WINDOWS)
        span.first = first
    groups = _split_groups(table, plan.group_tags)
    window_list = span.starts
    if len(groups.keys) * max(len(window_list or ()), 1) > MAX_WINDOWS * 4:
        raise Invalid("max-select-buckets limit exceeded: too many series × windows; narrow the time range or "
                      "use a larger GROUP BY time interval")
    out = []
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        series = _aggregate_series(plan, source, leaves, aux_cols, table.take(pa.array(rows)), span)
        if series is not None:
            series.tags = dict(tags) if plan.group_tags else None
            out.append(series)
    return out


def _bucket_sql(plan: _Plan, window_list: list[int] | None) -> str:
    """SQL for the start (int ns) of the window holding each row's time."""
    interval = int(plan.interval)
    if window_list is None or len(window_list) < 2:
        origin = window(plan.time_range.hi if plan.time_range.has_hi else 0, interval, plan.offset, plan.tz)[0]
        return f"CAST(date_bin(INTERVAL '{interval} nanoseconds', time, to_timestamp_nanos({origin})) AS BIGINT)"
    # Runs of equal-length windows share one date_bin; a window whose length differs (a daylight-saving
    # change inside it) gets its own arm, so every window is exactly InfluxQL's.
    arms = []
    run_start = 0
    starts = window_list
    for k in range(1, len(starts) + 1):
        if k == len(starts) or starts[k] - starts[k - 1] != interval:
            last = k - 1
            arms.append(f"WHEN time >= to_timestamp_nanos({starts[last]}) THEN {starts[last]}")
            if last > run_start:
                arms.append(f"WHEN time >= to_timestamp_nanos({starts[run_start]}) THEN CAST(date_bin(INTERVAL "
                            f"'{interval} nanoseconds', time, to_timestamp_nanos({starts[run_start]})) AS BIGINT)")
            run_start = k
    if len(arms) == 2 and not plan.tz:
        return (f"CAST(date_bin(INTERVAL '{interval} nanoseconds', time, to_timestamp_nanos({starts[0]})) "
                "AS BIGINT)")
    return "CASE " + " ".join(reversed(arms)) + f" ELSE {starts[0]} END"


def _aggregate_series(plan: _Plan, source: Source, leaves: list[_Leaf], aux_cols: dict[str, str],
                      table: pa.Table, span: _Windows) -> Series | None:
    n_rows = table.num_rows
    window_list = span.starts if plan.interval else None
    lo = plan.time_range.lo
    if window_list is not None:
        axis = np.asarray(window_list, dtype=np.int64)
        buckets = table.column("__time").to_numpy()
        pos = np.searchsorted(axis, buckets)
        inside = (pos < len(axis)) & (axis[np.minimum(pos, len(axis) - 1)] == buckets)
        rows, pos = np.flatnonzero(inside), pos[inside]
    else:
        axis = np.asarray([lo if lo != MIN_TIME else 0], dtype=np.int64)
        rows, pos = np.arange(min(n_rows, 1)), np.zeros(min(n_rows, 1), dtype=np.int64)
    width = len(axis)
    values: dict[A.Call, Col] = {}
    point_times: np.ndarray | None = None
    any_present = np.zeros(width, dtype=bool)
    for leaf in leaves:
        col, present, ptimes = _leaf_column(leaf, table, rows, pos, width, plan, axis)
        if leaf.call.name == "count" and plan.fill.mode == "null":
            col.values[~present] = 0
            col.valid = np.ones(width, dtype=bool)
            present_for_rows = present
        else:
            present_for_rows = present
            col = _fill(col, present, plan.fill)
        any_present |= present_for_rows
        values[leaf.call] = col
        if ptimes is not None:
            point_times = ptimes
    if plan.point_time and point_times is not None:
        if not any_present.any():
            return None
        axis = np.where(any_present, point_times, axis)
    if plan.stmt.descending:
        order = np.arange(width)[::-1]
        axis = axis[order]
        any_present = any_present[order]
        values = {k: v.take(order) for k, v in values.items()}
    env_aux = {name: _aux_column(table, alias, rows, pos, width, plan, leaves[0])
               for name, alias in aux_cols.items()}
    if plan.stmt.descending:
        env_aux = {k: v.take(np.arange(width)[::-1]) for k, v in env_aux.items()}
    default_unit = plan.interval or NS
    cols, emits = [], []
    for o in plan.outputs:
        col = _eval_aggregate(o.expr, values, env_aux, axis, width, default_unit)
        cols.append(col)
        if _has_transform(o.expr):
            emits.append(col.valid)
        elif plan.fill.mode == "none" or not plan.interval:
            emits.append(any_present.copy())
        else:
            emits.append(np.ones(width, dtype=bool))
    keep = np.zeros(width, dtype=bool)
    for e in emits:
        keep |= e
    if plan.interval:
        keep &= (axis >= span.first) & (axis <= span.last)
    if not plan.interval:
        keep &= any_present
    idx = _limit(plan, keep)
    if not len(idx):
        return None
    return _series(plan, source.name, {}, axis[idx], [c.take(idx) for c in cols])


def _has_transform(expr: A.Expr) -> bool:
    return any(isinstance(n, A.Call) and n.name in TRANSFORMS for n in A.walk(expr))


def _leaf_column(leaf: _Leaf, table: pa.Table, rows: np.ndarray, pos: np.ndarray, width: int, plan: _Plan,
                 axis: np.ndarray) -> tuple[Col, np.ndarray, np.ndarray | None]:
    """The leaf's value per window (absent windows invalid), which windows had input points, and the
    selected points' times when the query reports them."""
    kind = leaf.kind
    present = np.zeros(width, dtype=bool)
    if leaf.field is None or not leaf.value:
        return nulls(width), present, None
    name = leaf.call.name
    ptimes: np.ndarray | None = None
    if name == "integral":
        return _integral_column(leaf, table, rows, pos, width, plan, axis)
    if name in ("mode", "percentile"):
        vals = table.column(leaf.value).to_pylist()
        times = table.column(leaf.times).to_pylist()
        out_kind = "float" if name == "integral" else kind
        out = np.zeros(width, dtype=object)
        valid = np.zeros(width, dtype=bool)
        ptimes = np.zeros(width, dtype=np.int64)
        for r, p in zip(rows.tolist(), pos.tolist(), strict=True):
            v, t = vals[r], times[r]
            if not v:
                continue
            value, when = _collected(leaf.call, v, t)
            if value is None:
                continue
            out[p], ptimes[p], valid[p] = value, when, True
        present = valid.copy()
        col = _typed(out, valid, out_kind)
        return col, present, ptimes if name == "percentile" else None
    arr = table.column(leaf.value)
    full = from_arrow(arr, None if name not in ("count",) else "integer").take(rows)
    if full.kind == "null":
        full = Col(np.zeros(len(rows)), np.zeros(len(rows), dtype=bool), kind if kind != "string" else "string")
    values = np.zeros(width, dtype=full.values.dtype)
    valid = np.zeros(width, dtype=bool)
    values[pos] = full.values
    valid[pos] = full.valid
    if leaf.presence:
        counts = table.column(leaf.presence).to_numpy(zero_copy_only=False)[rows]
        present[pos] = counts > 0
    elif name == "count":
        present[pos] = full.values > 0
        valid &= present
    else:
        present = valid.copy()
    if leaf.times:
        ptimes = np.zeros(width, dtype=np.int64)
        t = from_arrow(table.column(leaf.times), "integer").take(rows)
        ptimes[pos] = t.values
    return Col(values, valid, full.kind), present, ptimes


def _integral_column(leaf: _Leaf, table: pa.Table, rows: np.ndarray, pos: np.ndarray, width: int, plan: _Plan,
                     axis: np.ndarray) -> tuple[Col, np.ndarray, np.ndarray | None]:
    """integral() as InfluxDB 1.x computes it: trapezoids over the group's points in time order, each
    window's area closed by interpolating to its end from the first point of the next window; without
    GROUP BY time the answer is reported at time 0."""
    vals = table.column(leaf.value).to_pylist()
    times = table.column(leaf.times).to_pylist()
    stream_t: list[int] = []
    stream_v: list[float] = []
    for r in rows[np.argsort(pos, kind="stable")].tolist():
        if vals[r]:
            stream_t.extend(times[r])
            stream_v.extend(vals[r])
    unit = A.unparen(leaf.call.args[1]).ns if len(leaf.call.args) > 1 else NS  # type: ignore[union-attr]
    sums: dict[int, float] = {}
    if stream_t:
        def span_of(t: int) -> tuple[int, int]:
            if not plan.interval:
                return 0, MAX_TIME
            return window(t, plan.interval, plan.offset, plan.tz)

        start, end = span_of(stream_t[0])
        prev_t, prev_v, total = stream_t[0], float(stream_v[0]), 0.0
        for t, v in zip(stream_t[1:], stream_v[1:], strict=True):
            v = float(v)
            if t == prev_t:
                prev_v = v
                continue
            if t >= end:
                if prev_t != end:
                    edge = prev_v + (v - prev_v) * (end - prev_t) / (t - prev_t)
                    total += 0.5 * (edge + prev_v) * (end - prev_t) / unit
                    prev_t, prev_v = end, edge
                sums[start] = total
                start, end = span_of(t)
                total = 0.0
            total += 0.5 * (v + prev_v) * (t - prev_t) / unit
            prev_t, prev_v = t, v
        sums[start] = total
    values = np.zeros(width, dtype=np.float64)
    valid = np.zeros(width, dtype=bool)
    ptimes = np.zeros(width, dtype=np.int64)
    for start, total in sums.items():
        i = int(np.searchsorted(axis, start)) if plan.interval else 0
        if i < width and (not plan.interval or axis[i] == start):
            values[i], valid[i] = total, True
    return Col(values, valid, "float"), valid.copy(), (ptimes if not plan.interval else None)


def _typed(values: np.ndarray, valid: np.ndarray, kind: str) -> Col:
    if kind == "float":
        return Col(np.where(valid, values, 0.0).astype(np.float64), valid, kind)
    if kind in ("integer", "unsigned"):
        return Col(np.where(valid, values, 0).astype(np.int64 if kind == "integer" else np.uint64), valid, kind)
    if kind == "boolean":
        return Col(np.where(valid, values, False).astype(bool), valid, kind)
    return Col(np.where(valid, values, ""), valid, kind)


def _collected(call: A.Call, values: list, times: list) -> tuple[object, int]:
    """mode, percentile and integral over one window's points (in time order)."""
    if call.name == "mode":
        return _mode(values, times), times[0]
    if call.name == "percentile":
        pct = float(A.unparen(call.args[1]).value)  # type: ignore[union-attr]
        order = sorted(range(len(values)), key=lambda i: (values[i], times[i]))
        i = int(np.floor(len(values) * pct / 100.0 + 0.5)) - 1
        if i < 0 or i >= len(values):
            return None, 0
        return values[order[i]], times[order[i]]
    unit = A.unparen(call.args[1]).ns if len(call.args) > 1 else NS  # type: ignore[union-attr]
    total = 0.0
    for k in range(1, len(values)):
        total += (values[k] + values[k - 1]) / 2 * (times[k] - times[k - 1]) / unit
    return total, times[0]


def _mode(values: list, times: list) -> object:
    """InfluxQL's mode: walk the points sorted by value (then time); a run of equal values replaces the
    answer when it is more frequent, or as frequent and starting no later. A value seen once replaces
    only the first run, so with every value distinct the answer is the smallest (InfluxDB 1.x's rule)."""
    order = sorted(range(len(values)), key=lambda i: (values[i], times[i]))
    first = order[0]
    most_freq, curr_freq = 0, 0
    curr_mode, most_mode = values[first], values[first]
    curr_time, most_time = times[first], times[first]
    for i in order:
        v, t = values[i], times[i]
        if v != curr_mode:
            curr_freq, curr_mode, curr_time = 1, v, t
            continue
        curr_freq += 1
        if most_freq > curr_freq or (most_freq == curr_freq and curr_time > most_time):
            continue
        most_freq, most_mode, most_time = curr_freq, v, t
    return most_mode


def _aux_column(table: pa.Table, alias: str, rows: np.ndarray, pos: np.ndarray, width: int, plan: _Plan,
                selector: _Leaf) -> Col:
    arr = table.column(alias)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        # Collected selectors (percentile): the aux value of the selected point.
        values = np.zeros(width, dtype=object)
        valid = np.zeros(width, dtype=bool)
        sel_vals = table.column(selector.value).to_pylist()
        sel_times = table.column(selector.times).to_pylist()
        aux = arr.to_pylist()
        for r, p in zip(rows.tolist(), pos.tolist(), strict=True):
            if not sel_vals[r]:
                continue
            _, when = _collected(selector.call, sel_vals[r], sel_times[r])
            for v, t in zip(aux[r], sel_times[r], strict=True):
                if t == when:
                    values[p], valid[p] = v, v is not None
                    break
        return _typed(values, valid, kind_of(arr.type.value_type))
    col = from_arrow(arr).take(rows)
    values = np.zeros(width, dtype=col.values.dtype)
    valid = np.zeros(width, dtype=bool)
    values[pos], valid[pos] = col.values, col.valid
    return Col(values, valid, col.kind)


def _fill(col: Col, present: np.ndarray, fill: A.Fill) -> Col:
    mode = fill.mode
    if mode in ("null", "none"):
        return col
    values, valid = col.values.copy(), col.valid.copy()
    if mode == "value":
        missing = ~present
        kind = col.kind
        if kind == "null":
            kind = "float" if isinstance(fill.value, float) else "integer"
            values = np.zeros(len(values), dtype=np.float64 if kind == "float" else np.int64)
        if kind in ("string", "boolean"):
            return col
        # The fill value takes the column's type: an integer column gets it truncated, as InfluxQL does.
        values[missing] = fill.value if kind == "float" else int(fill.value)  # type: ignore[arg-type]
        valid = valid | missing
        return Col(values, valid, kind)
    if mode == "previous":
        idx = np.where(present, np.arange(len(values)), -1)
        np.maximum.accumulate(idx, out=idx)
        has = idx >= 0
        src = np.where(has, idx, 0)
        return Col(np.where(has, values[src], values), np.where(has, valid[src], valid), col.kind)
    if mode == "linear":
        if col.kind not in ("float", "integer", "unsigned"):
            return col
        known = np.flatnonzero(present & valid)
        if len(known) < 2:
            return col
        gaps = np.arange(known[0], known[-1] + 1)
        gaps = gaps[~(present & valid)[gaps]]
        if len(gaps):
            interp = np.interp(gaps, known, values[known].astype(np.float64))
            if col.kind != "float":
                values[gaps] = np.trunc(interp).astype(values.dtype)
            else:
                values[gaps] = interp
            valid[gaps] = True
        return Col(values, valid, col.kind)
    return col


def _eval_aggregate(expr: A.Expr, values: dict[A.Call, Col], aux: dict[str, Col], axis: np.ndarray, n: int,
                    default_unit: int) -> Col:
    expr = A.unparen(expr)
    if isinstance(expr, A.Call):
        if is_aggregate_call(expr):
            return values.get(expr) or nulls(n)
        if expr.name in TRANSFORMS:
            inner = _eval_aggregate(expr.args[0], values, aux, axis, n, default_unit)
            return _transform(expr, inner, axis, default_unit)
        return math_function(expr.name, [_eval_aggregate(a, values, aux, axis, n, default_unit) for a in expr.args])
    if isinstance(expr, A.VarRef):
        return aux.get(expr.name) or nulls(n)
    if isinstance(expr, A.Binary):
        return arithmetic(expr.op, _eval_aggregate(expr.lhs, values, aux, axis, n, default_unit),
                          _eval_aggregate(expr.rhs, values, aux, axis, n, default_unit))
    return _literal(expr, n)


# --- top / bottom / distinct ----------------------------------------------------------------------------------


def _run_top_bottom(plan: _Plan, source: Source) -> list[Series]:
    call = next(n for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.Call)
                and n.name in ("top", "bottom"))
    field_ref = A.unparen(call.args[0])
    assert isinstance(field_ref, A.VarRef)
    count = int(A.unparen(call.args[-1]).value)  # type: ignore[union-attr]
    tag_args = [A.unparen(a).name for a in call.args[1:-1]]  # type: ignore[union-attr]
    kind = source.cols.fields.get(field_ref.name)
    if kind is None:
        return []
    if kind not in ("float", "integer", "unsigned"):
        raise Invalid(f"unsupported {call.name}() argument: field {field_ref.name} is of type {kind}")
    params = Params()
    f = quote(field_ref.name)
    aux = [o for o in plan.outputs if not _has_call(o.expr)]
    aux_names = [A.unparen(o.expr).name for o in aux]  # type: ignore[union-attr]
    select = [f"{g} AS __g{i}" for i, g in enumerate(_group_columns(plan, source))]
    partition = [f"__g{i}" for i in range(len(plan.group_tags))]
    span = _windows(plan)
    if plan.interval:
        select.append(f"{_bucket_sql(plan, span.starts)} AS __w")
        partition.append("__w")
    else:
        select.append("0 AS __w")
    select.append("CAST(time AS BIGINT) AS __time")
    select.append(f"{f} AS __v")
    for i, t in enumerate(tag_args):
        select.append((quote(t) if t in source.cols.tags else "CAST(NULL AS VARCHAR)") + f" AS __t{i}")
    for i, name in enumerate(aux_names):
        known = name in source.cols.fields or name in source.cols.tags
        select.append((quote(name) if known else "NULL") + f" AS __x{i}")
    direction = "DESC" if call.name == "top" else "ASC"
    where = _where(plan, source, params)
    where.append(f"{f} IS NOT NULL")
    inner = _sql(select, source, where)
    if tag_args:
        # The best point per distinct tag combination first, then the best N of those.
        per_tag = ", ".join([*partition, *(f"__t{i}" for i in range(len(tag_args)))])
        inner = (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {per_tag} ORDER BY __v {direction}, "
                 f"__time ASC) AS __r1 FROM ({inner})) WHERE __r1 = 1")
    part = f"PARTITION BY {', '.join(partition)} " if partition else ""
    sql = (f"SELECT * FROM (SELECT *, row_number() OVER ({part}ORDER BY __v {direction}, __time ASC) AS __rn "
           f"FROM ({inner})) WHERE __rn <= {count}")
    table = source.run(sql, params.values)
    if table.num_rows == 0:
        return []
    groups = _split_groups(table, plan.group_tags)
    out = []
    vcol = from_arrow(table.column("__v"))
    times_all = table.column("__time").to_numpy()
    windows_all = table.column("__w").to_numpy()
    extra = [from_arrow(table.column(f"__t{i}"), "string") for i in range(len(tag_args))]
    auxcols = [from_arrow(table.column(f"__x{i}")) for i in range(len(aux_names))]
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        order = np.lexsort((times_all[rows], windows_all[rows]))
        if plan.stmt.descending:
            order = np.lexsort((-times_all[rows], -windows_all[rows]))
        rows = rows[order]
        idx = _limit(plan, np.ones(len(rows), dtype=bool))
        rows = rows[idx]
        if not len(rows):
            continue
        columns: list[Col] = []
        names: list[str] = []
        for o in plan.outputs:
            if _has_call(o.expr):
                columns.append(vcol.take(rows))
                names.append(o.name)
                for j, t in enumerate(tag_args):
                    columns.append(extra[j].take(rows))
                    names.append(t)
            else:
                j = aux_names.index(A.unparen(o.expr).name)  # type: ignore[union-attr]
                columns.append(auxcols[j].take(rows))
                names.append(o.name)
        arrays = [pa.array(times_all[rows], pa.int64()), *(c.to_arrow() for c in columns)]
        out.append(Series(name=source.name, columns=["time", *names], arrays=arrays,
                          tags=dict(tags) if plan.group_tags else None, timezone=plan.tz))
    return out


def _run_distinct(plan: _Plan, source: Source) -> list[Series]:
    call = A.unparen(plan.outputs[0].expr)
    assert isinstance(call, A.Call)
    ref = A.unparen(call.args[0])
    if not isinstance(ref, A.VarRef) or ref.name not in source.cols.fields:
        return []
    params = Params()
    f = quote(ref.name)
    select = [f"{g} AS __g{i}" for i, g in enumerate(_group_columns(plan, source))]
    group_by = [f"__g{i}" for i in range(len(plan.group_tags))]
    lo = plan.time_range.lo
    if plan.interval:
        select.append(f"{_bucket_sql(plan, _windows(plan).starts)} AS __w")
        group_by.append("__w")
    else:
        select.append(f"CAST({lo if lo != MIN_TIME else 0} AS BIGINT) AS __w")
    select += [f"{f} AS __v", "min(CAST(time AS BIGINT)) AS __first"]
    where = _where(plan, source, params)
    where.append(f"{f} IS NOT NULL")
    table = source.run(_sql(select, source, where, f" GROUP BY {', '.join([*group_by, f])}"), params.values)
    if table.num_rows == 0:
        return []
    groups = _split_groups(table, plan.group_tags)
    vcol = from_arrow(table.column("__v"))
    first = table.column("__first").to_numpy()
    wins = table.column("__w").to_numpy()
    out = []
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        order = np.lexsort((first[rows], -wins[rows] if plan.stmt.descending else wins[rows]))
        rows = rows[order]
        rows = rows[_limit(plan, np.ones(len(rows), dtype=bool))]
        if len(rows):
            out.append(_series(plan, source.name, tags, wins[rows], [vcol.take(rows)]))
    return out


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

