"""The exact line-protocol parser: one record at a time, in Python.

It is the oracle the fast path is tested against, the fallback for records the fast path does not
handle (escapes, quoted strings, odd spacing, anything invalid) and the only source of line error
messages. Where InfluxDB 3 has a message for an error, the message text is InfluxDB's.

Grammar (InfluxDB's, with the choices noted):
    measurement[,tag=value...] field=value[,field=value...] [timestamp]
- measurement: `\\,` `\\ ` `\\\\` are escapes; tag keys, tag values and field keys also `\\=`.
  A backslash before any other byte is a literal backslash. `=` may appear unescaped in a
  measurement or tag value; unlike InfluxDB, an unescaped `,` ends a tag or field key (so
  `m,host f=1` is "tag has no value" rather than a key named `host,...`).
- sections are separated by one or more spaces or tabs; leading blanks and trailing blanks after
  the last section are ignored; a trailing `\\r` is dropped.
- field values: float `-?d+[.d+][(e|E)[+-]d+]` (finite), `<int>i` (int64), `<digits>u` (uint64),
  t/T/true/True/TRUE/f/F/false/False/FALSE, or a double-quoted string (`\\"` and `\\\\` escapes,
  raw newlines allowed, at most 64 KiB).
- timestamp: an integer in the request's precision; absent → the default (ingest) time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ..model import ColumnKind, Precision
from .assemble import Assembler
from .records import check_utf8, split_records
from .timestamps import INT64_MAX, INT64_MIN, to_nanoseconds
from .types import ParsedLine, ParseResult

STRING_LIMIT = 65536

_MEASUREMENT = re.compile(r"(?:\\[ ,\\]|\\|[^\\ \t\n,])+")
_KEY = re.compile(r"(?:\\[ ,=\\]|\\|[^\\ \t\n,=])+")
_TAG_VALUE = re.compile(r"(?:\\[ ,=\\]|\\|[^\\ \t\n,])+")
_STRING = re.compile(r'"((?:\\.|[^"\\])*)"', re.S)
_BARE_VALUE = re.compile(r"[^ \t\n,]*")
_BLANKS = re.compile(r"[ \t]*")
_TIMESTAMP_TOKEN = re.compile(r"[^ \t]*")
_INTEGER = re.compile(r"-?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# The whole-line pattern of `_parse_regular`: escapes only before escapable bytes, no lone backslash,
# strings without raw newlines, bare values without quotes, a plain integer timestamp. Possessive
# quantifiers: every token ends at a byte its class excludes, and they keep failure linear.
_R_MEASUREMENT = r"(?:[^\\ \t\n,#]|\\[ ,\\])(?:[^\\ \t\n,]++|\\[ ,\\])*+"
_R_KEY = r"(?:[^\\ \t\n,=]++|\\[ ,=\\])++"
_R_TAG_VALUE = r"(?:[^\\ \t\n,]++|\\[ ,=\\])++"
_R_STRING = r'"(?:[^"\\\n]++|\\[^\n])*+"'
_R_BARE = r'[^ \t\n,"]++'
_R_FIELD = rf"{_R_KEY}=(?:{_R_STRING}|{_R_BARE})"
_REGULAR_LINE = re.compile(
    rf"[ \t]*({_R_MEASUREMENT})((?:,{_R_KEY}={_R_TAG_VALUE})*)[ \t]+"
    rf"((?:{_R_FIELD})(?:,{_R_FIELD})*)(?:[ \t]+(-?[0-9]+))?[ \t]*\Z"
)
_REGULAR_TAG = re.compile(rf",({_R_KEY})=({_R_TAG_VALUE})")
_REGULAR_FIELD = re.compile(rf"({_R_KEY})=(?:({_R_STRING})|({_R_BARE}))")
_MEASUREMENT_ESCAPE = re.compile(r"\\([ ,\\])")
_KEY_ESCAPE = re.compile(r"\\([ ,=\\])")
_STRING_ESCAPE = re.compile(r'\\(["\\])')

_BOOLEANS = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_BACKSLASH_END = "Measurements, tag keys and values, and field keys may not end with a backslash"


class LineSyntaxError(Exception):
    """A record is not valid line protocol; the message is what the client sees."""


def _unescape(text: str, pattern: re.Pattern[str]) -> str:
    if "\\" not in text:
        return text
    value = pattern.sub(r"\1", text)
    if value.endswith("\\"):
        raise LineSyntaxError(_BACKSLASH_END)
    return value


def unescape_measurement(text: str) -> str:
    """A measurement's raw text without its escapes (`\\,` `\\ ` `\\\\`)."""
    return _unescape(text, _MEASUREMENT_ESCAPE)


def unescape_key(text: str) -> str:
    """A tag key's, tag value's or field key's raw text without its escapes (also `\\=`)."""
    return _unescape(text, _KEY_ESCAPE)


def _trailing(text: str) -> str:
    shown = text if len(text) <= 10 else text[:10] + "..."
    return f"Could not parse entire line. Found trailing content: `{shown}`"


class _Cursor:
    """A record and a position in it; each method consumes one grammar element."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at(self, chars: str) -> bool:
        return self.pos < len(self.text) and self.text[self.pos] in chars

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def take(self, pattern: re.Pattern[str]) -> str:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return ""
        self.pos = match.end()
        return match.group()

    def skip_blanks(self) -> bool:
        """Skip spaces and tabs; True if there were any."""
        start = self.pos
        match = _BLANKS.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()
        return self.pos > start


def _measurement(cursor: _Cursor) -> str:
    raw = cursor.take(_MEASUREMENT)
    if not raw:
        raise LineSyntaxError("Invalid measurement was provided")
    return _unescape(raw, _MEASUREMENT_ESCAPE)


def _tags(cursor: _Cursor) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    while cursor.at(","):
        cursor.pos += 1
        raw_key = cursor.take(_KEY)
        if not raw_key:
            if cursor.at("="):
                raise LineSyntaxError("Tag set malformed: a tag key is empty")
            raise LineSyntaxError("Tag set malformed")
        key = _unescape(raw_key, _KEY_ESCAPE)
        if not cursor.at("="):
            raise LineSyntaxError(f"Tag set malformed: tag `{key}` has no value (expected `=`)")
        cursor.pos += 1
        raw_value = cursor.take(_TAG_VALUE)
        if not raw_value:
            raise LineSyntaxError(f"Tag set malformed: tag `{key}` has an empty value")
        _accept_tag(key, raw_value, seen, tags)
    return tags


def _accept_tag(key: str, raw_value: str, seen: set[str], tags: list[tuple[str, str]]) -> None:
    if key in seen:
        raise LineSyntaxError(f"Must not contain duplicate tags, but `{key}` was repeated")
    if key == "time":
        raise LineSyntaxError("Invalid tag key `time`: the name is reserved for the timestamp column")
    seen.add(key)
    tags.append((key, _unescape(raw_value, _KEY_ESCAPE)))


def bare_value(token: str, key: str) -> tuple[ColumnKind, object]:
    """Type and value of an unquoted field value, or LineSyntaxError naming the field."""
    last = token[-1]
    if last == "i":
        digits = token[:-1]
        if _INTEGER.fullmatch(digits) and INT64_MIN <= int(digits) <= INT64_MAX:
            return ColumnKind.INT64, int(digits)
        raise LineSyntaxError(f"Unable to parse integer value `{token}` for field `{key}`")
    if last == "u":
        digits = token[:-1]
        if _DIGITS.fullmatch(digits) and int(digits) < 2**64:
            return ColumnKind.UINT64, int(digits)
        raise LineSyntaxError(f"Unable to parse unsigned integer value `{token}` for field `{key}`")
    boolean = _BOOLEANS.get(token)
    if boolean is not None:
        return ColumnKind.BOOL, boolean
    if _FLOAT.fullmatch(token):
        number = float(token)
        if math.isfinite(number):
            return ColumnKind.FLOAT64, number
        raise LineSyntaxError(f"Unable to parse floating-point value `{token}` for field `{key}`: out of range")
    if token[0] in "-+.0123456789":
        raise LineSyntaxError(f"Unable to parse floating-point value `{token}` for field `{key}`")
    raise LineSyntaxError(
        f"Unable to parse value `{token}` for field `{key}`: expected a float, an integer (`1i`), "
        'an unsigned integer (`1u`), a boolean or a double-quoted string'
    )


def _string_value(cursor: _Cursor, key: str) -> str:
    match = _STRING.match(cursor.text, cursor.pos)
    if match is None:
        raise LineSyntaxError(f"Unterminated string value for field `{key}`: missing closing `\"`")
    cursor.pos = match.end()
    return _string_content(match.group(1))


def _string_content(raw: str) -> str:
    value = _STRING_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw
    if len(value) > STRING_LIMIT // 4 and len(value.encode("utf-8")) > STRING_LIMIT:
        raise LineSyntaxError("String is greater than 64KB")
    return value


def _field(cursor: _Cursor) -> tuple[str, ColumnKind, object]:
    raw_key = cursor.take(_KEY)
    if not raw_key:
        if cursor.at("="):
            raise LineSyntaxError("Field set malformed: a field key is empty")
        raise LineSyntaxError("Field set malformed: expected a field after `,`")
    key = _unescape(raw_key, _KEY_ESCAPE)
    if not cursor.at("="):
        raise LineSyntaxError(f"Field set malformed: field `{key}` has no value (expected `=`)")
    cursor.pos += 1
    if cursor.at('"'):
        return key, ColumnKind.STRING, _string_value(cursor, key)
    token = cursor.take(_BARE_VALUE)
    if not token:
        raise LineSyntaxError(f"Field set malformed: field `{key}` has an empty value")
    kind, value = bare_value(token, key)
    return key, kind, value


def _fields(cursor: _Cursor, tags: list[tuple[str, str]]) -> list[tuple[str, ColumnKind, object]]:
    fields: list[tuple[str, ColumnKind, object]] = []
    seen: set[str] = set()
    tag_names = {key for key, _ in tags}
    while True:
        _accept_field(*_field(cursor), seen, tag_names, fields)
        if not cursor.at(","):
            return fields
        cursor.pos += 1


def _accept_field(
    key: str, kind: ColumnKind, value: object, seen: set[str], tag_names: set[str], fields: list
) -> None:
    if key == "time":
        raise LineSyntaxError("Invalid field key `time`: the name is reserved for the timestamp column")
    if key in seen:
        raise LineSyntaxError(f"Must not contain duplicate fields, but `{key}` was repeated")
    if key in tag_names:
        raise LineSyntaxError(f"Field `{key}` has the same name as a tag of the line")
    seen.add(key)
    fields.append((key, kind, value))


def _timestamp(cursor: _Cursor, precision: Precision, default_time_ns: int) -> int:
    if cursor.at_end():
        return default_time_ns
    if not cursor.skip_blanks():
        raise LineSyntaxError(_trailing(cursor.text[cursor.pos :]))
    if cursor.at_end():
        return default_time_ns
    nanoseconds = _timestamp_ns(cursor.take(_TIMESTAMP_TOKEN), precision)
    cursor.skip_blanks()
    if not cursor.at_end():
        raise LineSyntaxError(_trailing(cursor.text[cursor.pos :]))
    return nanoseconds


def _timestamp_ns(token: str, precision: Precision) -> int:
    if not _INTEGER.fullmatch(token):
        raise LineSyntaxError(f"Unable to parse timestamp value `{token}`")
    nanoseconds = to_nanoseconds(int(token), precision)
    if nanoseconds is None:
        raise LineSyntaxError(
            f"Timestamp value `{token}` is out of range for precision `{precision.value}` "
            "(must fit in a signed 64-bit count of nanoseconds)"
        )
    return nanoseconds


def _parse_regular(text: str, precision: Precision, default_time_ns: int) -> ParsedLine | None:
    """The same parse for a record the whole-line pattern matches (escapes of escapable bytes only,
    single-line strings); None otherwise. Checks run in the same order as the general parser's, so
    both raise the same error for the same record."""
    match = _REGULAR_LINE.match(text)
    if match is None:
        return None
    table_raw, tags_raw, fields_raw, timestamp = match.groups()
    table = _unescape(table_raw, _MEASUREMENT_ESCAPE)
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    if tags_raw:
        for key_raw, value_raw in _REGULAR_TAG.findall(tags_raw):
            _accept_tag(_unescape(key_raw, _KEY_ESCAPE), value_raw, seen, tags)
    fields: list[tuple[str, ColumnKind, object]] = []
    seen = set()
    tag_names = {key for key, _ in tags}
    for key_raw, string_raw, bare in _REGULAR_FIELD.findall(fields_raw):
        key = _unescape(key_raw, _KEY_ESCAPE)
        if bare:
            kind, value = bare_value(bare, key)
        else:
            kind, value = ColumnKind.STRING, _string_content(string_raw[1:-1])
        _accept_field(key, kind, value, seen, tag_names, fields)
    time_ns = default_time_ns if timestamp is None else _timestamp_ns(timestamp, precision)
    return ParsedLine(table, tags, fields, time_ns)


def parse_record(text: str, precision: Precision, default_time_ns: int) -> ParsedLine | None:
    """Parse one record (see `records`). None for a blank or comment record; LineSyntaxError if invalid."""
    if text.endswith("\r"):
        text = text[:-1]
    regular = _parse_regular(text, precision, default_time_ns)
    if regular is not None:
        return regular
    cursor = _Cursor(text)
    cursor.skip_blanks()
    if cursor.at_end() or cursor.at("#"):
        return None
    table = _measurement(cursor)
    tags = _tags(cursor)
    if not cursor.skip_blanks() or cursor.at_end():
        if not cursor.at_end() and not cursor.at(" \t"):
            raise LineSyntaxError(_trailing(cursor.text[cursor.pos :]))
        raise LineSyntaxError("No fields were provided")
    fields = _fields(cursor, tags)
    time_ns = _timestamp(cursor, precision, default_time_ns)
    return ParsedLine(table, tags, fields, time_ns)


def display_line(text: str) -> str:
    """A record as echoed in its line error: without leading blanks or the trailing `\\r`."""
    return text.lstrip(" \t").removesuffix("\r")


def add_record(
    assembler: Assembler, line_number: int, text: str, precision: Precision, default_time_ns: int
) -> bool:
    """Parse one record into `assembler` (as a line or an error); False if it was blank or a comment."""
    try:
        line = parse_record(text, precision, default_time_ns)
    except LineSyntaxError as error:
        assembler.add_error(line_number, str(error), display_line(text))
        return True
    if line is None:
        return False
    assembler.add_line(line_number, line, display_line(text))
    return True


def parse_exact(body: bytes, *, precision: Precision, default_time_ns: int,
                known: Mapping[str, Mapping[str, ColumnKind]] | None = None) -> ParseResult:
    """Parse a whole body one record at a time (the oracle; see `lakeflux.lineprotocol.parse`)."""
    check_utf8(body)
    assembler = Assembler(known)
    line_count = 0
    for line_number, record in split_records(body):
        if record and add_record(assembler, line_number, record.decode("utf-8"), precision, default_time_ns):
            line_count += 1
    return assembler.result(line_count)
