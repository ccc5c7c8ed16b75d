"""InfluxQL's function catalogue (what kind each function is, which field types it takes) and the rule
for naming output columns."""

from __future__ import annotations

from . import ast as A

AGGREGATES = frozenset({"count", "distinct", "integral", "mean", "median", "mode", "spread", "stddev", "sum"})
SELECTORS = frozenset({"bottom", "first", "last", "max", "min", "percentile", "sample", "top"})
TRANSFORMS = frozenset({"derivative", "non_negative_derivative", "difference", "non_negative_difference",
                        "moving_average", "cumulative_sum", "elapsed"})
# Functions InfluxQL knows but InfluxDB 3 (and lakeflux) does not answer.
UNSUPPORTED = frozenset({"holt_winters", "holt_winters_with_fit", "histogram", "chande_momentum_oscillator",
                         "exponential_moving_average", "double_exponential_moving_average",
                         "triple_exponential_moving_average", "triple_exponential_derivative",
                         "relative_strength_index", "kaufmans_efficiency_ratio", "kaufmans_adaptive_moving_average"})
MATH = {"abs": 1, "acos": 1, "asin": 1, "atan": 1, "atan2": 2, "ceil": 1, "cos": 1, "exp": 1, "floor": 1,
        "ln": 1, "log": 2, "log2": 1, "log10": 1, "pow": 2, "round": 1, "sin": 1, "sqrt": 1, "tan": 1}

NUMERIC_TYPES = ("float", "integer", "unsigned")
# Field types each aggregate or selector accepts when expanding `fn(*)` or `fn(/re/)`.
ACCEPTS = {
    "count": None, "distinct": None, "first": None, "last": None, "mode": None, "sample": None,
    "max": NUMERIC_TYPES + ("boolean",), "min": NUMERIC_TYPES + ("boolean",),
}


def accepts(name: str, field_type: str) -> bool:
    allowed = ACCEPTS.get(name, NUMERIC_TYPES)
    return allowed is None or field_type in allowed


def is_aggregate_call(expr: A.Expr) -> bool:
    return isinstance(expr, A.Call) and (expr.name in AGGREGATES or expr.name in SELECTORS)


def field_name(expr: A.Expr) -> str:
    """The default output column name of a field expression (InfluxQL's rule): a call's name, a column's
    name, or the names in an arithmetic expression joined by `_`."""
    expr = A.unparen(expr)
    if isinstance(expr, A.Call):
        return expr.name
    if isinstance(expr, A.VarRef):
        return expr.name
    if isinstance(expr, A.Binary):
        names = []
        stack: list[A.Expr] = [expr]
        while stack:
            node = A.unparen(stack.pop())
            if isinstance(node, A.Binary):
                stack.extend((node.rhs, node.lhs))
            elif isinstance(node, A.Call):
                names.append(node.name)
            elif isinstance(node, A.VarRef):
                names.append(node.name)
        return "_".join(names)
    return ""


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique the way InfluxQL does: a repeated name gets `_1`, `_2`, ..."""
    seen: dict[str, int] = {"time": 0}
    out = []
    for name in names:
        if name not in seen:
            seen[name] = 0
            out.append(name)
            continue
        while True:
            seen[name] += 1
            candidate = f"{name}_{seen[name]}"
            if candidate not in seen:
                seen[candidate] = 0
                out.append(candidate)
                break
    return out
