"""Aggregate SELECTs: one SQL GROUP BY per measurement computes every aggregate and selector of the
statement per series and window; window fill, transformations over the windows, math, selectors' point
times and the aggregates SQL has no exact form for (mode, percentile, integral) are done here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import Invalid
from . import ast as A
from .columns import Col, arithmetic, from_arrow, kind_of, math_function, nulls
from .condition import Params, quote
from .functions import (
    TRANSFORMS,
    accepts,
    is_aggregate_call,
)
from .plan import Plan, Source, bare_refs
from .results import Series
from .scan import (
    MAX_WINDOWS,
    Windows,
    bucket_sql,
    group_columns,
    limited,
    make_series,
    split_groups,
    sql_text,
    where_clauses,
    windows_of,
)
from .timeutil import MAX_TIME, MIN_TIME, NS, window, windows
from .transforms import literal, transform


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


def _leaves(plan: Plan, source: Source) -> list[_Leaf]:
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


def run_aggregate(plan: Plan, source: Source) -> list[Series]:
    leaves = _leaves(plan, source)
    if all(leaf.field is None for leaf in leaves):
        return []
    params = Params()
    columns = _SelectList()
    for leaf in leaves:
        _leaf_sql(leaf, columns, plan.point_time)
    aux = sorted({n.name for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.VarRef)
                  and bare_refs(o.expr)} if plan.point_time else set())
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
    group = group_columns(plan, source)
    select = [f"{g} AS __g{i}" for i, g in enumerate(group)]
    group_by = [f"__g{i}" for i in range(len(group))]
    span = windows_of(plan)
    if plan.interval:
        select.append(f"{bucket_sql(plan, span.starts)} AS __time")
        group_by.append("__time")
    select.extend(columns.sql())
    where = where_clauses(plan, source, params, span)
    tail = f" GROUP BY {', '.join(group_by)}" if group_by else ""
    table = source.run(sql_text(select, source, where, tail), params.values)
    if table.num_rows == 0:
        return []
    if plan.interval and span.starts is None:  # no lower bound: start at the first window with data
        first = int(pa.compute.min(table.column("__time")).as_py())
        span.starts = windows(first, plan.time_range.hi, plan.interval, plan.offset, plan.tz, MAX_WINDOWS)
        span.first = first
    groups = split_groups(table, plan.group_tags)
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


def _aggregate_series(plan: Plan, source: Source, leaves: list[_Leaf], aux_cols: dict[str, str],
                      table: pa.Table, span: Windows) -> Series | None:
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
        if has_transform(o.expr):
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
    idx = limited(plan, keep)
    if not len(idx):
        return None
    return make_series(plan, source.name, {}, axis[idx], [c.take(idx) for c in cols])


def has_transform(expr: A.Expr) -> bool:
    return any(isinstance(n, A.Call) and n.name in TRANSFORMS for n in A.walk(expr))


def _leaf_column(leaf: _Leaf, table: pa.Table, rows: np.ndarray, pos: np.ndarray, width: int, plan: Plan,
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


def _integral_column(leaf: _Leaf, table: pa.Table, rows: np.ndarray, pos: np.ndarray, width: int, plan: Plan,
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


def _aux_column(table: pa.Table, alias: str, rows: np.ndarray, pos: np.ndarray, width: int, plan: Plan,
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
            return transform(expr, inner, axis, default_unit)
        return math_function(expr.name, [_eval_aggregate(a, values, aux, axis, n, default_unit) for a in expr.args])
    if isinstance(expr, A.VarRef):
        return aux.get(expr.name) or nulls(n)
    if isinstance(expr, A.Binary):
        return arithmetic(expr.op, _eval_aggregate(expr.lhs, values, aux, axis, n, default_unit),
                          _eval_aggregate(expr.rhs, values, aux, axis, n, default_unit))
    return literal(expr, n)
