"""Masked columns and InfluxQL expression evaluation over them (arithmetic, math functions).

A `Col` is a numpy array with a validity mask and an InfluxQL kind (float, integer, unsigned, string,
boolean, null). Arithmetic follows InfluxQL: integer op integer stays integer except `/`, which always
divides as floats; a null operand makes a null result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import Invalid

NUMERIC = ("float", "integer", "unsigned")
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


@dataclass
class Col:
    values: np.ndarray
    valid: np.ndarray
    kind: str

    def __len__(self) -> int:
        return len(self.values)

    def take(self, index: np.ndarray) -> Col:
        return Col(self.values[index], self.valid[index], self.kind)

    def to_arrow(self) -> pa.Array:
        mask = ~self.valid
        if self.kind == "null":
            return pa.nulls(len(self.values))
        if self.kind in ("string", "tag"):
            values = self.values.astype(object)
            return pa.array(values, pa.string(), mask=mask)
        arrow_type = {"float": pa.float64(), "integer": pa.int64(), "unsigned": pa.uint64(),
                      "boolean": pa.bool_()}[self.kind]
        return pa.array(self.values, arrow_type, mask=mask)


def kind_of(arrow_type: pa.DataType) -> str:
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_unsigned_integer(arrow_type):
        return "unsigned"
    if pa.types.is_integer(arrow_type) or pa.types.is_timestamp(arrow_type):
        return "integer"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_null(arrow_type):
        return "null"
    return "string"


def from_arrow(array: pa.Array | pa.ChunkedArray, kind: str | None = None) -> Col:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    kind = kind or kind_of(array.type)
    valid = np.ones(len(array), dtype=bool) if array.null_count == 0 else np.asarray(array.is_valid())
    if kind == "null":
        return Col(np.zeros(len(array)), np.zeros(len(array), dtype=bool), "null")
    if pa.types.is_timestamp(array.type):
        array = array.cast(pa.int64())
    if kind in ("string", "tag"):
        values = np.asarray(array.fill_null("").to_pylist() if array.null_count else array.to_pylist(), dtype=object)
        return Col(values, valid, "string")
    if array.null_count:
        fill = False if kind == "boolean" else 0
        array = array.fill_null(fill)
    return Col(array.to_numpy(zero_copy_only=False), valid, kind)


def constant(value: object, n: int) -> Col:
    if value is None:
        return Col(np.zeros(n), np.zeros(n, dtype=bool), "null")
    if isinstance(value, bool):
        return Col(np.full(n, value, dtype=bool), np.ones(n, dtype=bool), "boolean")
    if isinstance(value, int):
        return Col(np.full(n, value, dtype=np.int64), np.ones(n, dtype=bool), "integer")
    if isinstance(value, float):
        return Col(np.full(n, value, dtype=np.float64), np.ones(n, dtype=bool), "float")
    return Col(np.full(n, value, dtype=object), np.ones(n, dtype=bool), "string")


def nulls(n: int) -> Col:
    return constant(None, n)


def arithmetic(op: str, a: Col, b: Col) -> Col:
    valid = a.valid & b.valid
    if "null" in (a.kind, b.kind):
        return nulls(len(valid))
    if a.kind == "boolean" and b.kind == "boolean" and op in ("&", "|", "^"):
        fn = {"&": np.logical_and, "|": np.logical_or, "^": np.logical_xor}[op]
        return Col(fn(a.values, b.values), valid, "boolean")
    if a.kind not in NUMERIC or b.kind not in NUMERIC:
        raise Invalid(f"invalid operation: {a.kind} {op} {b.kind}")
    both_int = a.kind != "float" and b.kind != "float"
    if op in ("&", "|", "^"):
        if not both_int:
            raise Invalid(f"invalid operation: bitwise {op} needs integers")
        x, y = a.values.astype(np.int64), b.values.astype(np.int64)
        out = np.bitwise_and(x, y) if op == "&" else np.bitwise_or(x, y) if op == "|" else np.bitwise_xor(x, y)
        return Col(out, valid, "integer")
    as_float = op == "/" or not both_int
    kind = "float" if as_float else "unsigned" if a.kind == b.kind == "unsigned" else "integer"
    dtype = {"float": np.float64, "unsigned": np.uint64, "integer": np.int64}[kind]
    x, y = a.values.astype(dtype), b.values.astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op in _ARITHMETIC:
            return Col(_ARITHMETIC[op](x, y), valid, kind)
        if as_float:
            return Col(np.fmod(x, y), valid, kind)
        zero = y == 0  # integer % 0 has no value
        return Col(np.fmod(x, np.where(zero, 1, y)), valid & ~zero, kind)


def math_function(name: str, args: list[Col]) -> Col:
    a = args[0]
    if a.kind == "null":
        return a
    if a.kind not in NUMERIC:
        raise Invalid(f"invalid argument type for {name}(): {a.kind}")
    valid = a.valid.copy()
    x = a.values.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if name in ("abs", "ceil", "floor", "round") and a.kind != "float":
            out_int = np.abs(a.values) if name == "abs" else a.values
            return Col(out_int, valid, a.kind)
        if name == "abs":
            out = np.abs(x)
        elif name == "ceil":
            out = np.ceil(x)
        elif name == "floor":
            out = np.floor(x)
        elif name == "round":
            out = np.where(x >= 0, np.floor(x + 0.5), np.ceil(x - 0.5))  # half away from zero, as Go rounds
        elif name in ("sqrt", "ln", "log2", "log10", "exp", "sin", "cos", "tan", "asin", "acos", "atan"):
            fn = {"sqrt": np.sqrt, "ln": np.log, "log2": np.log2, "log10": np.log10, "exp": np.exp, "sin": np.sin,
                  "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan}[name]
            out = fn(x)
        elif name in ("pow", "log", "atan2"):
            b = args[1]
            if b.kind not in NUMERIC:
                raise Invalid(f"invalid argument type for {name}(): {b.kind}")
            y = b.values.astype(np.float64)
            valid &= b.valid
            if name == "pow":
                out = np.power(x, y)
            elif name == "log":
                out = np.log(x) / np.log(y)
            else:
                out = np.arctan2(x, y)
        else:
            raise Invalid(f"undefined function {name}()")
    valid &= ~np.isnan(out)
    return Col(out, valid, "float")
