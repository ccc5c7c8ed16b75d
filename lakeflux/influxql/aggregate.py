"""Aggregate SELECTs: one SQL GROUP BY per measurement computes every aggregate and selector of the
statement per series and window; window fill, transformations over the windows, math, selectors' point
times and the aggregates SQL has no exact form for (mode, percentile, integral) are done here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    Groups,
    Windows,
    bucket_for,
    group_columns,
    make_series,
    split_block,
    split_groups,
    sql_text,
    where_clauses,
    windows_of,
)
from .timeutil import MAX_TIME, MIN_TIME, NS, steps, window
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
    aux_names = sorted({n.name for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.VarRef)
                        and bare_refs(o.expr)} if plan.point_time else set())
    aux_cols: dict[str, str] = {}
    if aux_names:
        selector = next(leaf for leaf in leaves)
        nonnull = f" FILTER (WHERE {quote(selector.field)} IS NOT NULL)" if selector.field else ""
        for name in aux_names:
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
        select.append(f"{bucket_for(plan, span, source)} AS __time")
        group_by.append("__time")
    select.extend(columns.sql())
    where = where_clauses(plan, source, params, span)
    tail = f" GROUP BY {', '.join(group_by)}" if group_by else ""
    table = source.run(sql_text(select, source, where, tail), params.values)
    if table.num_rows == 0:
        return []
    if plan.interval and span.starts is None:  # no lower bound: start at the first window with data
        first = int(pa.compute.min(table.column("__time")).as_py())
        span.starts = steps(first, span.last, plan.interval, plan.tz, MAX_WINDOWS)
        span.first = first
    groups = split_groups(table, plan.group_tags)
    grid = _grid(plan, span, table, groups)
    values: dict[A.Call, Col] = {}
    point_times: np.ndarray | None = None
    any_present = np.zeros(grid.size, dtype=bool)
    for leaf in leaves:
        col, present, ptimes = _leaf_column(leaf, table, grid, plan)
        if leaf.call.name == "count" and plan.fill.mode == "null":
            col.values[~present] = 0  # InfluxQL's count of an empty window is 0, not null
            col.valid = np.ones(grid.size, dtype=bool)
        else:
            col = _fill(col, present, plan.fill, grid)
        any_present |= present
        values[leaf.call] = col
        if ptimes is not None:
            point_times = ptimes
    axis = grid.axis
    if plan.point_time and point_times is not None:
        axis = np.where(any_present, point_times, axis)
    aux = {name: _aux_column(table, alias, grid, leaves[0]) for name, alias in aux_cols.items()}
    if plan.stmt.descending:
        flip = grid.flipped()
        axis, any_present = axis[flip], any_present[flip]
        values = {k: v.take(flip) for k, v in values.items()}
        aux = {k: v.take(flip) for k, v in aux.items()}
    unit = plan.interval or NS
    cols, keep = [], np.zeros(grid.size, dtype=bool)
    for o in plan.outputs:
        col = _eval_aggregate(o.expr, values, aux, axis, grid, unit)
        cols.append(col)
        if has_transform(o.expr):
            keep |= col.valid  # a transformation answers where it has a value
        elif plan.fill.mode == "none" or not plan.interval:
            keep |= any_present
        else:
            keep[:] = True  # every window of the range, filled
    if plan.interval:
        keep &= (axis >= span.first) & (axis <= span.last)
        if grid.real is not None:
            keep &= grid.real[grid.flipped()] if plan.stmt.descending else grid.real
    else:
        keep &= any_present
    return _emit(plan, source, groups, grid, keep, axis, cols)


@dataclass
class _Grid:
    """Series × windows, flattened row-major: every SQL answer row has a cell (or none when outside)."""

    series: int
    width: int
    rows: np.ndarray  # SQL rows with a cell
    cells: np.ndarray  # their cells
    axis: np.ndarray  # each cell's window start
    real: np.ndarray | None = None  # cells that are windows (series can have fewer than `width`)

    @property
    def size(self) -> int:
        return self.series * self.width

    def flipped(self) -> np.ndarray:
        """The permutation reversing each series' windows (descending time)."""
        return np.arange(self.size).reshape(self.series, self.width)[:, ::-1].ravel()

    def scatter(self, col: Col) -> Col:
        """A column of SQL answer rows placed into the grid (cells without a row invalid)."""
        values = np.zeros(self.size, dtype=col.values.dtype)
        valid = np.zeros(self.size, dtype=bool)
        values[self.cells] = col.values[self.rows]
        valid[self.cells] = col.valid[self.rows]
        return Col(values, valid, col.kind)


def _grid(plan: Plan, span: Windows, table: pa.Table, groups: Groups) -> _Grid:
    n_rows = table.num_rows
    n = len(groups.keys)
    series_of = np.empty(n_rows, dtype=np.int64)
    series_of[groups.order] = np.repeat(np.arange(n), np.diff(np.append(groups.starts, n_rows)))
    if plan.interval:
        starts = np.asarray(span.starts or [], dtype=np.int64)
        if n * len(starts) > MAX_WINDOWS * 4:
            raise Invalid("max-select-buckets limit exceeded: too many series × windows; narrow the time range "
                          "or use a larger GROUP BY time interval")
        buckets = table.column("__time").to_numpy()
        if not np.isin(buckets, starts).all():
            return _merged_grid(starts, buckets, series_of, n)
        pos = np.searchsorted(starts, buckets)
        rows = np.arange(n_rows)
        return _Grid(n, len(starts), rows, series_of * len(starts) + pos, np.tile(starts, n))
    lo = plan.time_range.lo
    axis = np.full(n, lo if lo != MIN_TIME else 0, dtype=np.int64)
    return _Grid(n, 1, np.arange(n_rows), series_of, axis)


def _merged_grid(starts: np.ndarray, buckets: np.ndarray, series_of: np.ndarray, n: int) -> _Grid:
    """Series whose data windows are not all among the reported windows (a daylight-saving change moved
    them): each series' windows are InfluxQL's fill walk over its own data — a data window at or before
    the next expected window is reported in its place, else the expected window is filled."""
    expected = starts.tolist()
    sequences: list[list[tuple[int, int]]] = []
    order = np.lexsort((buckets, series_of))
    bounds = np.searchsorted(series_of[order], np.arange(n + 1))
    for s in range(n):
        rows = order[bounds[s]:bounds[s + 1]].tolist()
        data = [int(buckets[r]) for r in rows]
        seq: list[tuple[int, int]] = []
        i = j = 0
        while i < len(data) or j < len(expected):
            if i < len(data) and (j >= len(expected) or data[i] <= expected[j]):
                seq.append((data[i], rows[i]))
                i += 1
            else:
                seq.append((expected[j], -1))
            j += 1
        sequences.append(seq)
    width = max((len(q) for q in sequences), default=0)
    axis = np.full(n * width, MAX_TIME, dtype=np.int64)
    real = np.zeros(n * width, dtype=bool)
    rows_out, cells_out = [], []
    for s, seq in enumerate(sequences):
        for k, (t, r) in enumerate(seq):
            axis[s * width + k] = t
            real[s * width + k] = True
            if r >= 0:
                rows_out.append(r)
                cells_out.append(s * width + k)
    return _Grid(n, width, np.asarray(rows_out, dtype=np.int64), np.asarray(cells_out, dtype=np.int64), axis, real)


def _emit(plan: Plan, source: Source, groups: Groups, grid: _Grid, keep: np.ndarray, axis: np.ndarray,
          cols: list[Col]) -> list[Series]:
    """Series from the kept cells, after OFFSET and LIMIT per series; their arrays share one buffer each."""
    kept = keep.reshape(grid.series, grid.width)
    if plan.stmt.offset or plan.stmt.limit:
        rank = np.cumsum(kept, axis=1)
        kept = kept & (rank > plan.stmt.offset)
        if plan.stmt.limit:
            kept &= rank <= plan.stmt.offset + plan.stmt.limit
    idx = np.flatnonzero(kept.ravel())
    block = make_series(plan, source.name, {}, axis[idx], [c.take(idx) for c in cols])
    return split_block(plan, block, groups.keys, kept.sum(axis=1))


def has_transform(expr: A.Expr) -> bool:
    return any(isinstance(n, A.Call) and n.name in TRANSFORMS for n in A.walk(expr))


def _leaf_column(leaf: _Leaf, table: pa.Table, grid: _Grid,
                 plan: Plan) -> tuple[Col, np.ndarray, np.ndarray | None]:
    """The leaf's value per cell (absent cells invalid), which cells had input points, and the selected
    points' times when the query reports them."""
    present = np.zeros(grid.size, dtype=bool)
    if leaf.field is None or not leaf.value:
        return nulls(grid.size), present, None
    name = leaf.call.name
    if name == "integral":
        return _integral_column(leaf, table, grid, plan)
    if name in ("mode", "percentile"):
        vals = table.column(leaf.value).to_pylist()
        times = table.column(leaf.times).to_pylist()
        out = np.zeros(grid.size, dtype=object)
        valid = np.zeros(grid.size, dtype=bool)
        ptimes: np.ndarray = np.zeros(grid.size, dtype=np.int64)
        for r, cell in zip(grid.rows.tolist(), grid.cells.tolist(), strict=True):
            if not vals[r]:
                continue
            value, when = _collected(leaf.call, vals[r], times[r])
            if value is not None:
                out[cell], ptimes[cell], valid[cell] = value, when, True
        return _typed(out, valid, leaf.kind), valid.copy(), ptimes if name == "percentile" else None
    full = from_arrow(table.column(leaf.value), "integer" if name == "count" else None)
    if full.kind == "null":
        full = Col(np.zeros(table.num_rows), np.zeros(table.num_rows, dtype=bool), leaf.kind)
    col = grid.scatter(full)
    if leaf.presence:
        counts = grid.scatter(from_arrow(table.column(leaf.presence), "integer"))
        present = counts.valid & (counts.values > 0)
    elif name == "count":
        present = col.valid & (col.values > 0)
        col.valid &= present
    else:
        present = col.valid.copy()
    if not leaf.times:
        return col, present, None
    return col, present, grid.scatter(from_arrow(table.column(leaf.times), "integer")).values


def _integral_column(leaf: _Leaf, table: pa.Table, grid: _Grid,
                     plan: Plan) -> tuple[Col, np.ndarray, np.ndarray | None]:
    """integral() as InfluxDB 1.x computes it: trapezoids over a series' points in time order, each
    window's area closed by interpolating to its end from the first point of the next window; without
    GROUP BY time the answer is reported at time 0."""
    vals = table.column(leaf.value).to_pylist()
    times = table.column(leaf.times).to_pylist()
    unit = A.unparen(leaf.call.args[1]).ns if len(leaf.call.args) > 1 else NS  # type: ignore[union-attr]
    values = np.zeros(grid.size, dtype=np.float64)
    valid = np.zeros(grid.size, dtype=bool)
    order = np.argsort(grid.cells, kind="stable")
    rows_sorted, cells_sorted = grid.rows[order], grid.cells[order]
    series_of = cells_sorted // grid.width
    for s in np.unique(series_of).tolist():
        mine = series_of == s
        stream_t: list[int] = []
        stream_v: list[float] = []
        for r in rows_sorted[mine].tolist():
            if vals[r]:
                stream_t.extend(times[r])
                stream_v.extend(vals[r])
        for start, total in _integral(stream_t, stream_v, unit, plan).items():
            base = s * grid.width
            i = int(np.searchsorted(grid.axis[base:base + grid.width], start)) if plan.interval else 0
            if i < grid.width and (not plan.interval or grid.axis[base + i] == start):
                values[base + i], valid[base + i] = total, True
    ptimes = None if plan.interval else np.zeros(grid.size, dtype=np.int64)
    return Col(values, valid, "float"), valid.copy(), ptimes


def _integral(stream_t: list[int], stream_v: list[float], unit: int, plan: Plan) -> dict[int, float]:
    """Area per window start of one series' points (time order)."""
    sums: dict[int, float] = {}
    if not stream_t:
        return sums

    def span_of(t: int) -> tuple[int, int]:
        if not plan.interval:
            return 0, MAX_TIME
        return window(t, plan.interval, plan.offset, plan.tz)

    start, end = span_of(stream_t[0])
    prev_t, prev_v, total = stream_t[0], float(stream_v[0]), 0.0
    for t, raw in zip(stream_t[1:], stream_v[1:], strict=True):
        v = float(raw)
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
    return sums


def _typed(values: np.ndarray, valid: np.ndarray, kind: str) -> Col:
    if kind == "float":
        return Col(np.where(valid, values, 0.0).astype(np.float64), valid, kind)
    if kind in ("integer", "unsigned"):
        return Col(np.where(valid, values, 0).astype(np.int64 if kind == "integer" else np.uint64), valid, kind)
    if kind == "boolean":
        return Col(np.where(valid, values, False).astype(bool), valid, kind)
    return Col(np.where(valid, values, ""), valid, kind)


def _collected(call: A.Call, values: list, times: list) -> tuple[object, int]:
    """mode and percentile over one window's points (in time order), and the point's time."""
    if call.name == "mode":
        return _mode(values, times), times[0]
    if call.name == "percentile":
        pct = float(A.unparen(call.args[1]).value)  # type: ignore[union-attr]
        order = sorted(range(len(values)), key=lambda i: (values[i], times[i]))
        i = int(np.floor(len(values) * pct / 100.0 + 0.5)) - 1
        if i < 0 or i >= len(values):
            return None, 0
        return values[order[i]], times[order[i]]
    raise Invalid(f"unsupported aggregate {call.name}()")


def _mode(values: list, times: list) -> Any:
    """The most frequent value; among several equally frequent, the smallest (InfluxDB 1.x's pick among
    them depends on an unstable sort)."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)


def _aux_column(table: pa.Table, alias: str, grid: _Grid, selector: _Leaf) -> Col:
    """A column read beside a lone selector: its value at the selected point."""
    arr = table.column(alias)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        # Collected selectors (percentile): the aux value of the point the selector picked.
        values = np.zeros(grid.size, dtype=object)
        valid = np.zeros(grid.size, dtype=bool)
        sel_vals = table.column(selector.value).to_pylist()
        sel_times = table.column(selector.times).to_pylist()
        aux = arr.to_pylist()
        for r, cell in zip(grid.rows.tolist(), grid.cells.tolist(), strict=True):
            if not sel_vals[r]:
                continue
            _, when = _collected(selector.call, sel_vals[r], sel_times[r])
            for v, t in zip(aux[r], sel_times[r], strict=True):
                if t == when:
                    values[cell], valid[cell] = v, v is not None
                    break
        return _typed(values, valid, kind_of(arr.type.value_type))
    return grid.scatter(from_arrow(arr))


def _fill(col: Col, present: np.ndarray, fill: A.Fill, grid: _Grid) -> Col:
    """`col` with the windows that had no points filled, per series."""
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
        return Col(values, valid | missing, kind)
    shape = (grid.series, grid.width)
    if mode == "previous":
        idx = np.where(present.reshape(shape), np.arange(grid.width)[None, :], -1)
        np.maximum.accumulate(idx, axis=1, out=idx)
        has = (idx >= 0).ravel()
        src = (np.maximum(idx, 0) + (np.arange(grid.series) * grid.width)[:, None]).ravel()
        return Col(np.where(has, values[src], values), np.where(has, valid[src], valid), col.kind)
    if mode == "linear" and col.kind in ("float", "integer", "unsigned"):
        known_all = (present & valid).reshape(shape)
        for s in np.flatnonzero(known_all.sum(axis=1) >= 2).tolist():
            base = s * grid.width
            known = np.flatnonzero(known_all[s])
            gaps = np.arange(known[0], known[-1] + 1)
            gaps = gaps[~known_all[s][gaps]]
            if len(gaps):
                interp = np.interp(gaps, known, values[base + known].astype(np.float64))
                values[base + gaps] = interp if col.kind == "float" else np.trunc(interp).astype(values.dtype)
                valid[base + gaps] = True
        return Col(values, valid, col.kind)
    return col


def _eval_aggregate(expr: A.Expr, values: dict[A.Call, Col], aux: dict[str, Col], axis: np.ndarray,
                    grid: _Grid, unit: int) -> Col:
    expr = A.unparen(expr)
    if isinstance(expr, A.Call):
        if is_aggregate_call(expr):
            return values.get(expr) or nulls(grid.size)
        if expr.name in TRANSFORMS:
            inner = _eval_aggregate(expr.args[0], values, aux, axis, grid, unit)
            return _per_series(expr, inner, axis, grid, unit)
        return math_function(expr.name, [_eval_aggregate(a, values, aux, axis, grid, unit) for a in expr.args])
    if isinstance(expr, A.VarRef):
        return aux.get(expr.name) or nulls(grid.size)
    if isinstance(expr, A.Binary):
        return arithmetic(expr.op, _eval_aggregate(expr.lhs, values, aux, axis, grid, unit),
                          _eval_aggregate(expr.rhs, values, aux, axis, grid, unit))
    return literal(expr, grid.size)


def _per_series(call: A.Call, inner: Col, axis: np.ndarray, grid: _Grid, unit: int) -> Col:
    """A transformation applied to each series' windows on its own."""
    parts = []
    for s in range(grid.series):
        cells = np.arange(s * grid.width, (s + 1) * grid.width)
        parts.append(transform(call, inner.take(cells), axis[cells], unit))
    if not parts:
        return nulls(0)
    return Col(np.concatenate([p.values for p in parts]), np.concatenate([p.valid for p in parts]), parts[0].kind)
