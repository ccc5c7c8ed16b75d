"""Line protocol to Arrow: a fast native parser and the exact per-line parser it must agree with.

    parse(body, precision=..., default_time_ns=...)        the one to use (C, without the GIL; falls back per line)
    parse_exact(body, precision=..., default_time_ns=...)  the oracle: same result, one line at a time

Both return a ParseResult: one ParsedTable (Arrow table, column kinds, line numbers) per measurement
in order of first appearance, and LineErrors sorted by line number. Grammar and the choices made where
InfluxDB is loose are documented in `exact.py`; record splitting (strings spanning lines) in `records.py`.
"""

from .exact import parse_exact
from .native import parse
from .types import LineError, ParsedTable, ParseResult

__all__ = ["LineError", "ParseResult", "ParsedTable", "parse", "parse_exact"]
