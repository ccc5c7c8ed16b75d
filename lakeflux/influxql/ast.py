"""The InfluxQL syntax tree: statements, clauses and expressions, as immutable values.

The parser builds these; the planner reads them. Bound parameters (`$name`) stay `BoundParam` nodes
until `bind()` replaces them with literals, so a value never travels through query text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

# --- expressions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VarRef:
    """A column (field or tag) by name, with an optional `::type` cast (`field`, `tag`, `float`, ...)."""

    name: str
    type: str | None = None


@dataclass(frozen=True)
class Wildcard:
    """`*`, `*::field` or `*::tag`."""

    type: str | None = None


@dataclass(frozen=True)
class RegexLit:
    pattern: str

    def compiled(self) -> re.Pattern[str]:
        return _compile(self.pattern)


@dataclass(frozen=True)
class StringLit:
    value: str


@dataclass(frozen=True)
class IntegerLit:
    value: int


@dataclass(frozen=True)
class NumberLit:
    value: float


@dataclass(frozen=True)
class BoolLit:
    value: bool


@dataclass(frozen=True)
class DurationLit:
    ns: int
    text: str = ""


@dataclass(frozen=True)
class BoundParam:
    name: str


@dataclass(frozen=True)
class NullLit:
    pass


@dataclass(frozen=True)
class Call:
    name: str  # lower case
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / % & | ^ = != <> < <= > >= =~ !~ AND OR
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class Paren:
    expr: Expr


Expr = (VarRef | Wildcard | RegexLit | StringLit | IntegerLit | NumberLit | BoolLit | DurationLit | BoundParam
        | NullLit | Call | Binary | Paren)
Literal = StringLit | IntegerLit | NumberLit | BoolLit | DurationLit | RegexLit | NullLit


# --- SELECT ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    expr: Expr
    alias: str | None = None


@dataclass(frozen=True)
class Measurement:
    """A FROM source: a name or a regex, optionally qualified by database and retention policy."""

    name: str | None = None
    regex: RegexLit | None = None
    database: str | None = None
    retention_policy: str | None = None


@dataclass(frozen=True)
class SubQuery:
    statement: SelectStatement


Source = Measurement | SubQuery


@dataclass(frozen=True)
class TimeDimension:
    """GROUP BY time(interval[, offset]); the offset may be `now()` (resolved when planning)."""

    interval: int
    offset: int = 0
    offset_now: bool = False


@dataclass(frozen=True)
class TagDimension:
    name: str


@dataclass(frozen=True)
class RegexDimension:
    regex: RegexLit


@dataclass(frozen=True)
class WildcardDimension:
    pass


Dimension = TimeDimension | TagDimension | RegexDimension | WildcardDimension


@dataclass(frozen=True)
class Fill:
    """fill(null|none|previous|linear|<number>): `mode` is one of those words or "value"."""

    mode: str = "null"
    value: int | float | None = None


@dataclass(frozen=True)
class SelectStatement:
    fields: tuple[Field, ...]
    sources: tuple[Source, ...]
    condition: Expr | None = None
    dimensions: tuple[Dimension, ...] = ()
    fill: Fill = field(default_factory=Fill)
    fill_given: bool = False
    descending: bool = False
    limit: int = 0
    offset: int = 0
    slimit: int = 0
    soffset: int = 0
    timezone: str | None = None

    @property
    def time_dimension(self) -> TimeDimension | None:
        return next((d for d in self.dimensions if isinstance(d, TimeDimension)), None)


# --- other statements -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowDatabases:
    pass


@dataclass(frozen=True)
class ShowRetentionPolicies:
    database: str | None = None


@dataclass(frozen=True)
class ShowMeasurements:
    database: str | None = None
    name: Measurement | None = None  # WITH MEASUREMENT = name | =~ /re/
    name_op: str = "="
    condition: Expr | None = None
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class ShowTagKeys:
    database: str | None = None
    sources: tuple[Measurement, ...] = ()
    condition: Expr | None = None
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class ShowTagValues:
    database: str | None = None
    sources: tuple[Measurement, ...] = ()
    key_op: str = "="  # = != =~ !~ IN
    keys: tuple[str, ...] = ()
    key_regex: RegexLit | None = None
    condition: Expr | None = None
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class ShowFieldKeys:
    database: str | None = None
    sources: tuple[Measurement, ...] = ()
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class CreateDatabase:
    name: str
    retention_ns: int | None = None


@dataclass(frozen=True)
class DropDatabase:
    name: str


@dataclass(frozen=True)
class Explain:
    statement: SelectStatement
    analyze: bool = False


@dataclass(frozen=True)
class NotImplementedStatement:
    """A statement InfluxDB 3 parses but does not run (DELETE, DROP MEASUREMENT): `feature` names it."""

    feature: str


Statement = (SelectStatement | ShowDatabases | ShowRetentionPolicies | ShowMeasurements | ShowTagKeys | ShowTagValues
             | ShowFieldKeys | CreateDatabase | DropDatabase | Explain | NotImplementedStatement)


# --- helpers ----------------------------------------------------------------------------------------------

_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    """InfluxQL regexes are Go RE2 syntax; the common subset means the same in Python's `re`."""
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        from ..errors import Invalid

        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise Invalid(f"invalid regular expression /{pattern}/: {e}") from None
        if len(_REGEX_CACHE) > 1000:
            _REGEX_CACHE.clear()
        _REGEX_CACHE[pattern] = compiled
    return compiled


def walk(expr: Expr | None) -> list[Expr]:
    """Every node of `expr`, parents before children."""
    out: list[Expr] = []
    stack: list[Expr] = [expr] if expr is not None else []
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, Binary):
            stack.extend((node.rhs, node.lhs))
        elif isinstance(node, Paren):
            stack.append(node.expr)
    return out


def transform(expr: Expr, fn: Any) -> Expr:
    """`expr` rebuilt bottom-up with `fn(node)` applied to every node (fn returns the replacement)."""
    if isinstance(expr, Call):
        expr = replace(expr, args=tuple(transform(a, fn) for a in expr.args))
    elif isinstance(expr, Binary):
        expr = replace(expr, lhs=transform(expr.lhs, fn), rhs=transform(expr.rhs, fn))
    elif isinstance(expr, Paren):
        expr = replace(expr, expr=transform(expr.expr, fn))
    return fn(expr)  # type: ignore[no-any-return]


def unparen(expr: Expr) -> Expr:
    while isinstance(expr, Paren):
        expr = expr.expr
    return expr
