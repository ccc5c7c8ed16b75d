"""Selectors that answer several rows per window: top(), bottom() and distinct()."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import Invalid
from . import ast as A
from .columns import Col, from_arrow
from .condition import Params, quote
from .plan import Plan, Source, has_call
from .results import Series
from .scan import (
    bucket_for,
    group_columns,
    limited,
    make_series,
    split_groups,
    sql_text,
    where_clauses,
    windows_of,
)
from .timeutil import MIN_TIME


def run_top_bottom(plan: Plan, source: Source) -> list[Series]:
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
    aux = [o for o in plan.outputs if not has_call(o.expr)]
    aux_names = [A.unparen(o.expr).name for o in aux]  # type: ignore[union-attr]
    select = [f"{g} AS __g{i}" for i, g in enumerate(group_columns(plan, source))]
    partition = [f"__g{i}" for i in range(len(plan.group_tags))]
    span = windows_of(plan)
    if plan.interval:
        select.append(f"{bucket_for(plan, span, source)} AS __w")
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
    where = where_clauses(plan, source, params)
    where.append(f"{f} IS NOT NULL")
    inner = sql_text(select, source, where)
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
    groups = split_groups(table, plan.group_tags)
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
        idx = limited(plan, np.ones(len(rows), dtype=bool))
        rows = rows[idx]
        if not len(rows):
            continue
        columns: list[Col] = []
        names: list[str] = []
        for o in plan.outputs:
            if has_call(o.expr):
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


def run_distinct(plan: Plan, source: Source) -> list[Series]:
    call = A.unparen(plan.outputs[0].expr)
    assert isinstance(call, A.Call)
    ref = A.unparen(call.args[0])
    if not isinstance(ref, A.VarRef) or ref.name not in source.cols.fields:
        return []
    params = Params()
    f = quote(ref.name)
    select = [f"{g} AS __g{i}" for i, g in enumerate(group_columns(plan, source))]
    group_by = [f"__g{i}" for i in range(len(plan.group_tags))]
    lo = plan.time_range.lo
    if plan.interval:
        select.append(f"{bucket_for(plan, windows_of(plan), source)} AS __w")
        group_by.append("__w")
    else:
        select.append(f"CAST({lo if lo != MIN_TIME else 0} AS BIGINT) AS __w")
    select += [f"{f} AS __v", "min(CAST(time AS BIGINT)) AS __first"]
    where = where_clauses(plan, source, params)
    where.append(f"{f} IS NOT NULL")
    table = source.run(sql_text(select, source, where, f" GROUP BY {', '.join([*group_by, f])}"), params.values)
    if table.num_rows == 0:
        return []
    groups = split_groups(table, plan.group_tags)
    vcol = from_arrow(table.column("__v"))
    first = table.column("__first").to_numpy()
    wins = table.column("__w").to_numpy()
    out = []
    for i, tags in enumerate(groups.keys):
        rows = groups.rows(i)
        order = np.lexsort((first[rows], -wins[rows] if plan.stmt.descending else wins[rows]))
        rows = rows[order]
        rows = rows[limited(plan, np.ones(len(rows), dtype=bool))]
        if len(rows):
            out.append(make_series(plan, source.name, tags, wins[rows], [vcol.take(rows)]))
    return out
