"""WHERE clauses: the time range split off, the rest compiled to DataFusion SQL with bound parameters.

Semantics follow InfluxQL: a tag a row does not have compares as the empty string, a comparison between
values of different kinds (a string field with a number) is false, and time conditions must be joined
to the rest with AND. Every literal travels as a bound parameter; identifiers are quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Invalid
from . import ast as A
from .timeutil import MAX_TIME, MIN_TIME, parse_time_string

NUMERIC = ("float", "integer", "unsigned")
_COMPARISONS = ("=", "!=", "<>", "<", "<=", ">", ">=")


@dataclass
class TimeRange:
    lo: int = MIN_TIME
    hi: int = MAX_TIME

    @property
    def has_lo(self) -> bool:
        return self.lo != MIN_TIME

    @property
    def has_hi(self) -> bool:
        return self.hi != MAX_TIME

    def intersect(self, other: TimeRange) -> TimeRange:
        return TimeRange(max(self.lo, other.lo), min(self.hi, other.hi))


@dataclass
class Params:
    """Bound parameters of one SQL statement: `add` returns the placeholder for a value."""

    values: dict[str, object] = field(default_factory=dict)

    def add(self, value: object) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def quote(name: str) -> str:
    """A SQL identifier, double-quoted with inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


# --- time ---------------------------------------------------------------------------------------------------


def split_time(expr: A.Expr | None, now: int, tz: str | None) -> tuple[TimeRange, A.Expr | None]:
    """The time range the condition implies, and the condition without its time comparisons."""
    if expr is None:
        return TimeRange(), None
    expr = A.unparen(expr)
    if isinstance(expr, A.Binary) and expr.op == "AND":
        lrange, lrest = split_time(expr.lhs, now, tz)
        rrange, rrest = split_time(expr.rhs, now, tz)
        rest = lrest if rrest is None else rrest if lrest is None else A.Binary("AND", lrest, rrest)
        return lrange.intersect(rrange), rest
    if isinstance(expr, A.Binary) and expr.op in _COMPARISONS + ("=~", "!~"):
        lhs, rhs, op = A.unparen(expr.lhs), A.unparen(expr.rhs), expr.op
        if _is_time(rhs) and not _is_time(lhs):
            lhs, rhs, op = rhs, lhs, _flip(op)
        if _is_time(lhs):
            return _time_range(op, time_value(rhs, now, tz)), None
    if any(_is_time(n) for n in A.walk(expr)):
        raise Invalid("invalid time condition: time can only be compared with AND-ed conditions "
                      "(>, >=, <, <=, =), not inside OR or NOT")
    return TimeRange(), expr


def _is_time(expr: A.Expr) -> bool:
    return isinstance(expr, A.VarRef) and expr.name.lower() == "time" and expr.type is None


def _flip(op: str) -> str:
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)


def _time_range(op: str, t: int) -> TimeRange:
    if op == ">":
        return TimeRange(lo=t + 1)
    if op == ">=":
        return TimeRange(lo=t)
    if op == "<":
        return TimeRange(hi=t - 1)
    if op == "<=":
        return TimeRange(hi=t)
    if op == "=":
        return TimeRange(lo=t, hi=t)
    raise Invalid(f"invalid time comparison operator: {op}")


def time_value(expr: A.Expr, now: int, tz: str | None) -> int:
    """A time expression (`now() - 1h`, '2024-01-01T00:00:00Z', 1700000000000ms, 1700000000000000000) in ns."""
    expr = A.unparen(expr)
    if isinstance(expr, A.StringLit):
        return parse_time_string(expr.value, tz)
    if isinstance(expr, A.IntegerLit):
        return expr.value
    if isinstance(expr, A.NumberLit):
        return int(expr.value)
    if isinstance(expr, A.DurationLit):
        return expr.ns
    if isinstance(expr, A.Call) and expr.name == "now" and not expr.args:
        return now
    if isinstance(expr, A.Binary) and expr.op in ("+", "-"):
        lhs = time_value(expr.lhs, now, tz)
        rhs = duration_value(expr.rhs)
        return lhs + rhs if expr.op == "+" else lhs - rhs
    raise Invalid("invalid time expression: expected now(), a duration, an integer or an RFC3339 time string")


def duration_value(expr: A.Expr) -> int:
    expr = A.unparen(expr)
    if isinstance(expr, A.DurationLit):
        return expr.ns
    if isinstance(expr, A.IntegerLit):
        return expr.value
    raise Invalid("invalid time expression: only durations can be added to or subtracted from a time")


# --- the rest -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """What names mean in one measurement: tag names and field name → InfluxQL type."""

    tags: frozenset[str]
    fields: dict[str, str]

    def kind(self, ref: A.VarRef) -> str:
        """'tag', a field type, or 'unknown'."""
        if ref.type == "tag":
            return "tag" if ref.name in self.tags else "unknown"
        if ref.type is not None and ref.type != "tag":
            return self.fields.get(ref.name, "unknown")
        if ref.name in self.fields:
            return self.fields[ref.name]
        if ref.name in self.tags:
            return "tag"
        return "unknown"


@dataclass(frozen=True)
class _Typed:
    sql: str
    kind: str  # tag, float, integer, unsigned, string, boolean, regex, unknown, null


def compile_condition(expr: A.Expr, cols: Columns, params: Params) -> str:
    """SQL for a (time-free) InfluxQL condition over one measurement's columns."""
    typed = _compile(expr, cols, params)
    if typed.kind != "boolean":
        raise Invalid("invalid condition: expected a boolean expression such as host = 'a' or value > 1")
    return typed.sql


def _compile(expr: A.Expr, cols: Columns, params: Params) -> _Typed:
    if isinstance(expr, A.Paren):
        inner = _compile(expr.expr, cols, params)
        return _Typed(f"({inner.sql})", inner.kind)
    if isinstance(expr, A.VarRef):
        kind = cols.kind(expr)
        if kind == "unknown":
            return _Typed("NULL", "unknown")
        return _Typed(quote(expr.name), kind)
    if isinstance(expr, A.StringLit):
        return _Typed(params.add(expr.value), "string")
    if isinstance(expr, A.IntegerLit):
        return _Typed(params.add(expr.value), "integer")
    if isinstance(expr, A.NumberLit):
        return _Typed(params.add(expr.value), "float")
    if isinstance(expr, A.BoolLit):
        return _Typed("TRUE" if expr.value else "FALSE", "boolean")
    if isinstance(expr, A.DurationLit):
        return _Typed(params.add(expr.ns), "integer")
    if isinstance(expr, A.RegexLit):
        expr.compiled()  # validates the pattern
        return _Typed(params.add(expr.pattern), "regex")
    if isinstance(expr, A.Binary):
        if expr.op in ("AND", "OR"):
            lhs, rhs = _compile(expr.lhs, cols, params), _compile(expr.rhs, cols, params)
            if lhs.kind != "boolean" or rhs.kind != "boolean":
                raise Invalid(f"invalid condition: both sides of {expr.op} must be conditions")
            return _Typed(f"({lhs.sql} {expr.op} {rhs.sql})", "boolean")
        if expr.op in ("=~", "!~"):
            return _regex_match(expr, cols, params)
        if expr.op in _COMPARISONS:
            return _comparison(expr, cols, params)
        return _arithmetic(expr, cols, params)
    if isinstance(expr, A.Call):
        raise Invalid(f"invalid function call in condition: {expr.name}")
    if isinstance(expr, A.BoundParam):
        raise Invalid(f"Bind parameter '${expr.name}' was referenced in the InfluxQL statement but its value is "
                      "undefined")
    raise Invalid("invalid condition: unsupported expression")


def _tag_text(typed: _Typed) -> str:
    """A tag as text, a row without the tag reading as ''."""
    return f"COALESCE({typed.sql}, '')" if typed.kind == "tag" else typed.sql


def _regex_match(expr: A.Binary, cols: Columns, params: Params) -> _Typed:
    rhs = A.unparen(expr.rhs)
    if not isinstance(rhs, A.RegexLit):
        raise Invalid(f"invalid condition: {expr.op} expects a regular expression on its right")
    lhs = _compile(expr.lhs, cols, params)
    pattern = _compile(rhs, cols, params)
    if lhs.kind == "unknown":
        matches = rhs.compiled().search("") is not None
        return _Typed("TRUE" if matches == (expr.op == "=~") else "FALSE", "boolean")
    if lhs.kind not in ("tag", "string"):
        return _Typed("FALSE", "boolean")
    op = "~" if expr.op == "=~" else "!~"
    return _Typed(f"({_tag_text(lhs)} {op} {pattern.sql})", "boolean")


def _comparison(expr: A.Binary, cols: Columns, params: Params) -> _Typed:
    lhs, rhs = _compile(expr.lhs, cols, params), _compile(expr.rhs, cols, params)
    op = "!=" if expr.op == "<>" else expr.op
    kinds = {lhs.kind, rhs.kind}
    if "regex" in kinds:
        raise Invalid(f"invalid condition: a regular expression needs =~ or !~, not {expr.op}")
    if "unknown" in kinds:
        other = rhs if lhs.kind == "unknown" else lhs
        if other.kind in ("string", "tag"):  # an unknown key is a tag no row has: ''
            text = _tag_text(other)
            return _Typed(f"('' {op} {text})" if lhs.kind == "unknown" else f"({text} {op} '')", "boolean")
        return _Typed("FALSE", "boolean")
    if kinds <= {"tag", "string"}:
        if "tag" in kinds:
            return _Typed(f"({_tag_text(lhs)} {op} {_tag_text(rhs)})", "boolean")
        return _Typed(f"({lhs.sql} {op} {rhs.sql})", "boolean")
    if kinds <= set(NUMERIC):
        return _Typed(f"({_numeric(lhs)} {op} {_numeric(rhs)})", "boolean")
    if kinds == {"boolean"} and op in ("=", "!="):
        return _Typed(f"({lhs.sql} {op} {rhs.sql})", "boolean")
    return _Typed("FALSE", "boolean")  # different kinds never compare equal in InfluxQL


def _numeric(typed: _Typed) -> str:
    # Mixed integer/unsigned/float comparisons compare as floats, as InfluxQL does.
    return f"CAST({typed.sql} AS DOUBLE)" if typed.kind in ("integer", "unsigned") else typed.sql


def _arithmetic(expr: A.Binary, cols: Columns, params: Params) -> _Typed:
    lhs, rhs = _compile(expr.lhs, cols, params), _compile(expr.rhs, cols, params)
    if lhs.kind not in NUMERIC or rhs.kind not in NUMERIC:
        if "unknown" in (lhs.kind, rhs.kind):
            return _Typed("NULL", "float")
        raise Invalid(f"invalid condition: {expr.op} needs numbers on both sides")
    if "float" in (lhs.kind, rhs.kind):
        return _Typed(f"({_numeric(lhs)} {expr.op} {_numeric(rhs)})", "float")
    if expr.op in ("&", "|", "^"):
        sql_op = {"&": "&", "|": "|", "^": "#"}[expr.op]
        return _Typed(f"({lhs.sql} {sql_op} {rhs.sql})", "integer")
    # Integers stay integers in a condition: `/` truncates, as InfluxDB 1.x and 3 evaluate it.
    return _Typed(f"({lhs.sql} {expr.op} {rhs.sql})", "integer")


def references(expr: A.Expr | None) -> list[A.VarRef]:
    return [n for n in A.walk(expr) if isinstance(n, A.VarRef)]
