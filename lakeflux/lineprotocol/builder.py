"""`LineBuilder`: the line-protocol builder processing-engine plugins use (CONTRACT §1.5).

Plugins find `LineBuilder` and its exceptions in `builtins`; the engine puts them there before any
plugin code runs. A builder renders exactly one line, `measurement[,tags] fields[ time]`, with tags
and fields in the order they were first set (setting a key again replaces its value in place).
"""

from __future__ import annotations

import math
from typing import Any


class InfluxDBError(Exception):
    """Base of the errors `LineBuilder` raises."""


class InvalidMeasurementError(InfluxDBError):
    """The measurement name cannot be written (empty, or contains a space)."""


class InvalidKeyError(InfluxDBError):
    """A tag or field key cannot be written (empty, or contains a space, comma or `=`)."""


class InvalidLineError(InfluxDBError):
    """The line is incomplete: line protocol needs at least one field."""


# str.translate tables: one pass per value, cheaper than chained str.replace calls.
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_VALUE_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ "})
_STRING_FIELD_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})
_FORBIDDEN_KEY_CHARS = frozenset(" ,=")


def _check_key(key: str, kind: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"{kind} key must be a non-empty string, got {key!r}")
    if not _FORBIDDEN_KEY_CHARS.isdisjoint(key):
        raise InvalidKeyError(f"{kind} key {key!r} must not contain spaces, commas or equals signs")


def _render_float(value: float) -> str:
    value = float(value)
    if math.isfinite(value) and value.is_integer():
        # str(1e16) is "1e+16", which line protocol reads as a float but people do not expect;
        # render whole numbers as digits with ".0" so the field stays a float in every parser.
        return f"{int(value)}.0"
    return str(value)


class LineBuilder:
    """Builds one line of line protocol; every setter returns `self` so calls chain."""

    __slots__ = ("_measurement", "_tags", "_fields", "_time_ns")

    def __init__(self, measurement: str) -> None:
        if not isinstance(measurement, str) or not measurement:
            raise InvalidMeasurementError(f"measurement name must be a non-empty string, got {measurement!r}")
        if " " in measurement:
            raise InvalidMeasurementError(f"measurement name {measurement!r} must not contain spaces")
        self._measurement = measurement
        self._tags: dict[str, str] = {}
        self._fields: dict[str, str] = {}
        self._time_ns: int | None = None

    def tag(self, key: str, value: Any) -> LineBuilder:
        """Set tag `key` to `str(value)`."""
        _check_key(key, "tag")
        self._tags[key] = str(value).translate(_KEY_VALUE_ESCAPES)
        return self

    def int64_field(self, key: str, value: int) -> LineBuilder:
        """Set a signed integer field (rendered `<v>i`)."""
        _check_key(key, "field")
        self._fields[key] = f"{int(value)}i"
        return self

    def uint64_field(self, key: str, value: int) -> LineBuilder:
        """Set an unsigned integer field (rendered `<v>u`); a negative value raises ValueError."""
        _check_key(key, "field")
        number = int(value)
        if number < 0:
            raise ValueError(f"uint64 field {key!r} must not be negative, got {value!r}")
        self._fields[key] = f"{number}u"
        return self

    def float64_field(self, key: str, value: float) -> LineBuilder:
        """Set a float field: whole numbers render as `<int>.0`, others as `str(value)`."""
        _check_key(key, "field")
        self._fields[key] = _render_float(value)
        return self

    def string_field(self, key: str, value: str) -> LineBuilder:
        """Set a string field (double-quoted, `\\` and `"` escaped)."""
        _check_key(key, "field")
        self._fields[key] = '"' + str(value).translate(_STRING_FIELD_ESCAPES) + '"'
        return self

    def bool_field(self, key: str, value: bool) -> LineBuilder:
        """Set a boolean field (rendered `t` / `f`)."""
        _check_key(key, "field")
        self._fields[key] = "t" if value else "f"
        return self

    def time_ns(self, time_ns: int) -> LineBuilder:
        """Set the timestamp in nanoseconds; without one the server stamps the ingest time."""
        self._time_ns = int(time_ns)
        return self

    def build(self) -> str:
        """Render the line (no trailing newline); raises InvalidLineError when no field is set."""
        if not self._fields:
            raise InvalidLineError(f"line for measurement {self._measurement!r} has no fields")
        parts = [self._measurement.translate(_MEASUREMENT_ESCAPES)]
        for key, value in self._tags.items():
            parts.append(f",{key}={value}")
        parts.append(" ")
        parts.append(
            ",".join(f"{key.translate(_KEY_VALUE_ESCAPES)}={value}" for key, value in self._fields.items())
        )
        if self._time_ns is not None:
            parts.append(f" {self._time_ns}")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"LineBuilder({self._measurement!r}, tags={len(self._tags)}, fields={len(self._fields)})"
