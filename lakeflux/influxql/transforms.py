"""InfluxQL's transformation functions over one series, vectorised with numpy.

Each takes the series' time axis (raw point times or window starts, in output order) and a masked value
column (only present entries take part) and returns a masked column on the same axis: a result sits at the
position of the point that completes it, as InfluxQL reports it.
"""

from __future__ import annotations

import numpy as np

from ..errors import Invalid
from . import ast as A
from .columns import Col, constant, nulls

NS = 1_000_000_000


def apply(name: str, times: np.ndarray, values: np.ndarray, present: np.ndarray,
          args: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """`name`(values) with its extra arguments already resolved to ints (units, window sizes)."""
    idx = np.flatnonzero(present)
    out_values = np.zeros(len(times), dtype=_result_dtype(name, values.dtype))
    out_present = np.zeros(len(times), dtype=bool)
    if name == "cumulative_sum":
        if len(idx):
            out_values[idx] = np.cumsum(values[idx].astype(out_values.dtype))
            out_present[idx] = True
        return out_values, out_present
    if name == "moving_average":
        n = args[0]
        if len(idx) >= n:
            v = values[idx].astype(np.float64)
            sums = np.cumsum(np.concatenate(([0.0], v)))
            means = (sums[n:] - sums[:-n]) / n
            out_values[idx[n - 1:]] = means
            out_present[idx[n - 1:]] = True
        return out_values, out_present
    if len(idx) < 2:
        return out_values, out_present
    cur, prev = idx[1:], idx[:-1]
    if name in ("difference", "non_negative_difference"):
        diff = values[cur].astype(out_values.dtype) - values[prev].astype(out_values.dtype)
        keep = diff >= 0 if name == "non_negative_difference" else np.ones(len(diff), dtype=bool)
    elif name in ("derivative", "non_negative_derivative"):
        # Descending output order measures elapsed time forwards too, as InfluxQL does.
        elapsed = np.abs(times[cur] - times[prev]).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = (values[cur].astype(np.float64) - values[prev].astype(np.float64)) / (elapsed / args[0])
        keep = elapsed != 0
        if name == "non_negative_derivative":
            keep &= diff >= 0
    elif name == "elapsed":
        diff = np.abs(times[cur] - times[prev]) // args[0]
        keep = np.ones(len(diff), dtype=bool)
    else:
        raise Invalid(f"unsupported transformation {name}()")
    out_values[cur[keep]] = diff[keep]
    out_present[cur[keep]] = True
    return out_values, out_present


def _result_dtype(name: str, dtype: np.dtype) -> np.dtype:
    if name == "elapsed":
        return np.dtype(np.int64)
    if name in ("derivative", "non_negative_derivative", "moving_average"):
        return np.dtype(np.float64)
    if dtype.kind in "iub":
        return np.dtype(np.int64) if dtype.kind != "u" else np.dtype(np.uint64)
    return np.dtype(np.float64)


def literal(expr: A.Expr, n: int) -> Col:
    if isinstance(expr, A.IntegerLit | A.NumberLit | A.StringLit | A.BoolLit):
        return constant(expr.value, n)
    if isinstance(expr, A.DurationLit):
        return constant(expr.ns, n)
    if isinstance(expr, A.NullLit):
        return nulls(n)
    raise Invalid("invalid expression in field list")


def transform(call: A.Call, inner: Col, times: np.ndarray, default_unit: int) -> Col:
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
    out, valid = apply(call.name, times, values, inner.valid, args)
    kind = {"i": "integer", "u": "unsigned", "f": "float", "b": "integer"}[out.dtype.kind]
    return Col(out, valid, kind)
