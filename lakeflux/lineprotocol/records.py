"""Splitting a body into records: one per physical line, except that a quoted string field value
may contain raw newlines (as in InfluxDB), so its record runs on until the closing quote.

The rule follows InfluxDB's line scanner: a `"` opens or closes a string only in the field section
(after the first unescaped space or tab) and only where a field value is expected (more `=` than
`,` seen outside strings); a backslash escapes the next byte. Lines whose first non-blank byte is
`#` are comments and never open a string. A backslash never escapes the newline itself (a choice:
InfluxDB would join the lines). Both parsers use this module, so they always agree on records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from ..errors import Invalid

_SPECIAL = re.compile(rb'\\.|[ \t,="]', re.S)
_BLANK = re.compile(rb"[ \t]")
_SPACE, _TAB, _COMMA, _EQUALS, _QUOTE = 32, 9, 44, 61, 34

QuoteState = tuple[int, int]
"""(equals, commas) counted in the field section of a record whose string is still open."""


def check_utf8(body: bytes) -> None:
    """Raise Invalid unless the whole body is UTF-8 (checked once, so tokens never need it)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(
            f"line protocol body is not valid UTF-8: invalid byte at offset {error.start}"
        ) from None


def open_string_after(line: bytes, state: QuoteState | None) -> QuoteState | None:
    """Scan one physical line of a record.

    `state` is None for the first line of a record, else what the previous line returned. Returns
    the state to carry into the next physical line if a quoted string is still open at the end of
    this one, else None (the record ends here).
    """
    if state is None:
        if line.lstrip(b" \t").startswith(b"#"):
            return None
        if b"\\" not in line:
            return _open_string_without_escapes(line)
        fields, quoted, equals, commas = False, False, 0, 0
    else:
        fields, quoted, (equals, commas) = True, True, state
    for match in _SPECIAL.finditer(line):
        token = match.group()
        if len(token) == 2:  # an escaped byte never separates or quotes
            continue
        byte = token[0]
        if byte == _SPACE or byte == _TAB:
            fields = True
        elif not fields:
            continue
        elif byte == _QUOTE:
            if equals > commas:
                quoted = not quoted
        elif quoted:
            continue
        elif byte == _EQUALS:
            equals += 1
        elif byte == _COMMA:
            commas += 1
    return (equals, commas) if quoted else None


def _open_string_without_escapes(line: bytes) -> QuoteState | None:
    """`open_string_after` for a first line with no backslash: visit only the quotes."""
    blank = _BLANK.search(line)
    if blank is None:
        return None  # no field section, so no quote can open a string
    position, equals, commas, quoted = blank.end(), 0, 0, False
    while (quote := line.find(b'"', position)) >= 0:
        if quoted:
            quoted = False  # without escapes, the next quote always closes
        else:
            equals += line.count(b"=", position, quote)
            commas += line.count(b",", position, quote)
            quoted = equals > commas
        position = quote + 1
    return (equals, commas) if quoted else None


def multiline_spans(
    quoted_lines: Iterable[int], line_at: Callable[[int], bytes], line_total: int
) -> list[tuple[int, int]]:
    """The (first, last) 0-based physical line indices of every record spanning several lines.

    `quoted_lines` lists, in ascending order, the physical lines that contain a `"` (only those can
    open a string); `line_at(i)` returns physical line i without its newline.
    """
    spans: list[tuple[int, int]] = []
    next_free = 0
    for first in quoted_lines:
        if first < next_free:
            continue  # swallowed by an earlier record's open string
        last = first
        state = open_string_after(line_at(first), None)
        while state is not None and last + 1 < line_total:
            last += 1
            state = open_string_after(line_at(last), state)
        if last > first:
            spans.append((first, last))
        next_free = last + 1
    return spans


def split_records(body: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number of its first line, record bytes) for every record of `body`."""
    lines = body.split(b"\n")
    quoted = [i for i, line in enumerate(lines) if b'"' in line]
    spans = dict(multiline_spans(quoted, lines.__getitem__, len(lines)))
    index = 0
    while index < len(lines):
        last = spans.get(index, index)
        record = lines[index] if last == index else b"\n".join(lines[index : last + 1])
        yield index + 1, record
        index = last + 1
