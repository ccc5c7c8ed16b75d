"""Planning a SELECT: wildcards and regular expressions expanded against the measurements read, output
column names, GROUP BY tags, and InfluxQL's rules on what a statement may combine (raw fields with
aggregates, transformations, selectors) — checked before any data is read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import Invalid
from . import ast as A
from .condition import Columns, TimeRange
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

SqlRunner = Callable[[str, dict[str, object]], pa.Table]


@dataclass
class Source:
    """One measurement a SELECT reads: its name, what its columns are, and how to run SQL over it."""

    name: str
    cols: Columns
    run: SqlRunner
    # Earliest and latest time of its rows when known without reading them (a range covering both needs
    # no time filter).
    bounds: Callable[[], tuple[int, int] | None] | None = None


@dataclass
class Output:
    """One output column: its (unique) name and the expression computing it, wildcards expanded."""

    name: str
    expr: A.Expr


@dataclass
class Plan:
    """A SELECT checked against the measurements it reads, with everything the runners need decided."""

    stmt: A.SelectStatement
    outputs: list[Output]
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


def make_plan(stmt: A.SelectStatement, sources: list[Source], time_range: TimeRange, rest: A.Expr | None,
              now: int, subquery: bool) -> Plan:
    """The plan of `stmt` over `sources`; Invalid when the statement breaks one of InfluxQL's rules."""
    tags = sorted({t for s in sources for t in s.cols.tags})
    fields: dict[str, str] = {}
    for s in sources:
        for name, kind in s.cols.fields.items():
            fields.setdefault(name, kind)
    group_tags = _group_tags(stmt.dimensions, tags)
    outputs = _expand_fields(stmt.fields, tags, fields, group_tags)
    td = stmt.time_dimension
    plan = Plan(stmt=stmt, outputs=outputs, group_tags=group_tags, time_range=time_range, condition=rest,
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
                   group_tags: list[str]) -> list[Output]:
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
    return [Output(n, e) for n, (e, _) in zip(names, exprs, strict=True)]


def _classify(plan: Plan, types: dict[str, str]) -> None:
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
        if len(aggregates) > 1 or len([o for o in plan.outputs if has_call(o.expr)]) > 1:
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
    raw_refs = [o for o in plan.outputs if bare_refs(o.expr)]
    selectors = [c for c in aggregates if c.name in SELECTORS]
    if raw_refs and not (len(aggregates) == 1 and selectors):
        raise Invalid("mixing aggregate and non-aggregate queries is not supported")
    for o in plan.outputs:
        _check_transform_args(o.expr, plan)
    if len(aggregates) == 1 and (selectors or aggregates[0].name == "integral") and not plan.interval:
        plan.point_time = True  # a lone selector reports its point's time; integral() reports time 0
    if plan.interval:
        plan.extra_windows = max((_extra_windows(o.expr) for o in plan.outputs), default=0)


def has_call(expr: A.Expr) -> bool:
    return any(isinstance(n, A.Call) for n in A.walk(expr))


def bare_refs(expr: A.Expr) -> bool:
    """Whether `expr` reads a column outside any aggregate."""
    expr = A.unparen(expr)
    if isinstance(expr, A.VarRef):
        return True
    if isinstance(expr, A.Call):
        return False if is_aggregate_call(expr) else any(bare_refs(a) for a in expr.args)
    if isinstance(expr, A.Binary):
        return bare_refs(expr.lhs) or bare_refs(expr.rhs)
    return False


def _check_call(c: A.Call, plan: Plan) -> None:
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


def _check_transform_args(expr: A.Expr, plan: Plan) -> None:
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
