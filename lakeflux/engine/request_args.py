"""The arguments `process_request` receives, built from plain request data (CONTRACT §1.10).

Pure functions, no HTTP framework: the server passes the raw query string (or already-decoded pairs),
and the raw header pairs; the server decodes the body (`server/body.py`).

- `query_parameters`: `dict[str, str]`, form-decoded (`+` is a space, `%XX` escapes, invalid UTF-8
  replaced), a name without `=` maps to `""`, the last repeat wins.
- `request_headers`: `dict[str, str]`, names lower-cased, `Authorization` removed (the server checked
  it; plugins never see tokens), the last repeat wins, values that are not UTF-8 decoded with U+FFFD
  replacement (Δ InfluxDB panics).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

StrOrBytes = str | bytes


def query_parameters(source: str | bytes | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Build `query_parameters` from a raw query string (`a=1&b=x+y`) or from decoded (name, value) pairs.

    Give the *raw* query string (aiohttp: `request.rel_url.raw_query_string`), not a percent-decoded one,
    or pairs that are already decoded (aiohttp: `request.query.items()`).
    """
    if isinstance(source, bytes):
        source = source.decode("latin-1")  # percent escapes carry the real bytes; the rest is ASCII
    if isinstance(source, str):
        pairs: Iterable[tuple[str, str]] = parse_qsl(
            source.lstrip("?"), keep_blank_values=True, encoding="utf-8", errors="replace"
        )
    else:
        pairs = source
    params: dict[str, str] = {}
    for name, value in pairs:
        params[name] = value
    return params


def _text(value: StrOrBytes) -> str:
    """Header text as UTF-8 with replacement (aiohttp hands out surrogate-escaped str for raw bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def request_headers(pairs: Iterable[tuple[StrOrBytes, StrOrBytes]]) -> dict[str, str]:
    """Build `request_headers` from raw (name, value) pairs (aiohttp: `request.raw_headers`)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = _text(raw_name).lower()
        if name == "authorization":
            continue
        headers[name] = _text(raw_value)
    return headers
