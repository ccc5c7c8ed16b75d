"""Raw (non-aggregate) SELECTs: the points of the fields read, per series, with arithmetic, math functions
and transformations (derivative, difference, ...) over them."""

from __future__ import annotations

import numpy as np

from . import ast as A
from .columns import Col, arithmetic, from_arrow, math_function, nulls
from .condition import Params, quote
from .functions import (
    TRANSFORMS,
)
from .plan import Plan, Source
from .results import Series
from .scan import (
    Groups,
    group_columns,
    limited,
    make_series,
    split_block,
    split_groups,
    sql_text,
    where_clauses,
)
from .timeutil import NS
from .transforms import literal, transform


def run_raw(plan: Plan, source: Source) -> list[Series]:
    params = Params()
    refs = sorted({n.name for o in plan.outputs for n in A.walk(o.expr) if isinstance(n, A.VarRef)})
    field_refs = [r for r in refs if r in source.cols.fields]
    if not field_refs:
        return []  # InfluxQL returns points of fields only
    select = [f"{g} AS __g{i}" for i, g in enumerate(group_columns(plan, source))]
    select.append("CAST(time AS BIGINT) AS __time")
    present = [r for r in refs if r in source.cols.fields or r in source.cols.tags]
    select.extend(f"{quote(r)} AS __c{i}" for i, r in enumerate(present))
    where = where_clauses(plan, source, params)
    where.append("(" + " OR ".join(f"{quote(r)} IS NOT NULL" for r in field_refs) + ")")
    direction = "DESC" if plan.stmt.descending else "ASC"
    order = [f"__g{i}" for i in range(len(plan.group_tags))] + [f"__time {direction}"]
    order += [quote(t) for t in sorted(source.cols.tags)]  # equal times: series-key order
    tail = " ORDER BY " + ", ".join(order)
    has_transform = any(isinstance(n, A.Call) and n.name in TRANSFORMS for o in plan.outputs for n in A.walk(o.expr))
    if not plan.group_tags and not has_transform and plan.stmt.limit:
        tail += f" LIMIT {int(plan.stmt.limit + plan.stmt.offset)}"
    table = source.run(sql_text(select, source, where, tail), params.values)
    groups = split_groups(table, plan.group_tags)
    times_all = table.column("__time").to_numpy()
    columns = {r: from_arrow(table.column(f"__c{i}"), "string" if r in source.cols.tags and
                             r not in source.cols.fields else None) for i, r in enumerate(present)}
    if has_transform:
        return _transformed(plan, source, groups, times_all, columns)
    # Without transformations every expression is row by row: evaluate each once over all rows, then cut
    # the (series-ordered) rows into series. A point of any field the query reads is a row, its columns
    # possibly all null.
    perm = groups.order
    times = times_all[perm]
    cols = [_eval_raw(o.expr, {k: c.take(perm) for k, c in columns.items()}, times, len(perm))
            for o in plan.outputs]
    series_of = np.repeat(np.arange(len(groups.keys)), np.diff(np.append(groups.starts, len(perm))))
    keep = np.ones(len(perm), dtype=bool)
    if plan.stmt.offset or plan.stmt.limit:
        rank = np.arange(len(perm)) - groups.starts[series_of]
        keep &= rank >= plan.stmt.offset
        if plan.stmt.limit:
            keep &= rank < plan.stmt.offset + plan.stmt.limit
    idx = np.flatnonzero(keep)
    block = make_series(plan, source.name, {}, times[idx], [c.take(idx) for c in cols])
    counts = np.bincount(series_of[idx], minlength=len(groups.keys))
    return split_block(plan, block, groups.keys, counts)


def _transformed(plan: Plan, source: Source, groups: Groups, times_all: np.ndarray,
                 columns: dict[str, Col]) -> list[Series]:
    """Transformations run over each series' points on their own; they answer only where they produce a
    value."""
    out = []
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        times = times_all[rows]
        env = {name: col.take(rows) for name, col in columns.items()}
        cols = [_eval_raw(o.expr, env, times, len(rows)) for o in plan.outputs]
        keep = np.zeros(len(rows), dtype=bool)
        for c in cols:
            keep |= c.valid
        idx = limited(plan, keep)
        if len(idx):
            out.append(make_series(plan, source.name, tags, times[idx], [c.take(idx) for c in cols]))
    return out


def _eval_raw(expr: A.Expr, env: dict[str, Col], times: np.ndarray, n: int) -> Col:
    expr = A.unparen(expr)
    if isinstance(expr, A.VarRef):
        return env.get(expr.name) or nulls(n)
    if isinstance(expr, A.Call):
        if expr.name in TRANSFORMS:
            inner = _eval_raw(expr.args[0], env, times, n)
            return transform(expr, inner, times, default_unit=NS)
        return math_function(expr.name, [_eval_raw(a, env, times, n) for a in expr.args])
    if isinstance(expr, A.Binary):
        return arithmetic(expr.op, _eval_raw(expr.lhs, env, times, n), _eval_raw(expr.rhs, env, times, n))
    return literal(expr, n)
