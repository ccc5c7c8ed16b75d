"""Turn what `process_request` returned into an HTTP reply (CONTRACT §1.10).

| returned (first match)         | status                 | body / Content-Type                                  |
|--------------------------------|------------------------|------------------------------------------------------|
| truthy `__flask_response__()`  | `.status_code`         | `.get_data()` (str or bytes), `.headers`             |
| tuple of 1–3                   | item 2 if int, else 200| item 1 (str/dict/list/bytes as below, else `str(x)`  |
|                                |                        | text/plain); item 2 dict → headers; item 3 dict      |
| str                            | 200                    | text/html                                            |
| dict / list                    | 200                    | `json.dumps`, application/json                       |
| bytes (Δ)                      | 200                    | raw, application/octet-stream                        |
| other iterable                 | 200                    | str and bytes items joined, text/html                |
| anything else (None)           | 500                    | "Unsupported return type from Python function"       |

Plugin headers replace the defaults case-insensitively; a header value that cannot go on the wire becomes
empty; a status outside 100–999 gives 500. Error replies carry a JSON body `{"error": …}` and say what went
wrong in `HttpReply.error`, which the runtime logs as an ERROR row for the trigger.

Converting can run plugin code (`get_data()`, a generator, `__str__`); an exception from it propagates, and
the caller treats it like one raised by `process_request` itself (`exception_reply`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNSUPPORTED_RETURN = "Unsupported return type from Python function"
HEADER_ITEM_NOT_DICT = "expected a dictionary in header item"

TEXT_HTML = "text/html"
TEXT_PLAIN = "text/plain"
APPLICATION_JSON = "application/json"
OCTET_STREAM = "application/octet-stream"

# RFC 9110 token characters for header names; values may hold visible ASCII, spaces, tabs and obs-text.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class HttpReply:
    """A reply ready for the HTTP layer; `error` is set when the plugin's return value was unusable."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


def error_reply(message: str) -> HttpReply:
    """A 500 with the JSON body `{"error": message}`."""
    body = json.dumps({"error": message}).encode()
    return HttpReply(500, {"Content-Type": APPLICATION_JSON}, body, error=message)


def exception_reply(exc: BaseException) -> HttpReply:
    """The reply when `process_request` raised: 500 `{"error": "Python function call failed: T: msg"}`."""
    return error_reply(f"Python function call failed: {type(exc).__name__}: {exc}")


def to_http_response(result: Any) -> HttpReply:
    """Map a `process_request` return value to status, headers and body per the table above."""
    if _is_flask_response(result):
        return _from_flask(result)
    if isinstance(result, tuple) and 1 <= len(result) <= 3:
        return _from_tuple(result)
    converted = _convert_body(result)
    if converted is None:
        return error_reply(UNSUPPORTED_RETURN)
    body, content_type = converted
    return HttpReply(200, {"Content-Type": content_type}, body)


def _is_flask_response(result: Any) -> bool:
    marker = getattr(result, "__flask_response__", None)
    return callable(marker) and bool(marker())


def _from_flask(response: Any) -> HttpReply:
    data = response.get_data()
    if isinstance(data, str):
        body, content_type = data.encode("utf-8"), TEXT_HTML
    elif isinstance(data, bytes | bytearray | memoryview):
        body, content_type = bytes(data), OCTET_STREAM
    else:
        return error_reply(f"get_data() returned {type(data).__name__}, expected str or bytes")
    headers = getattr(response, "headers", None)
    return _finish(getattr(response, "status_code", 200), content_type, body, headers)


def _from_tuple(items: tuple[Any, ...]) -> HttpReply:
    converted = _convert_body(items[0], tuple_item=True)
    assert converted is not None  # tuple items always convert: anything else becomes str(x)
    body, content_type = converted
    status: Any = 200
    headers: Any = None
    if len(items) >= 2:
        second = items[1]
        if isinstance(second, Mapping):
            headers = second
        elif isinstance(second, int):
            status = second
    if len(items) == 3:
        if not isinstance(items[2], Mapping):
            return error_reply(HEADER_ITEM_NOT_DICT)
        headers = _merge(headers, items[2])
    return _finish(status, content_type, body, headers)


def _merge(first: Any, second: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    pairs = list(_header_pairs(first)) if first is not None else []
    pairs.extend(_header_pairs(second))
    return pairs


def _convert_body(value: Any, *, tuple_item: bool = False) -> tuple[bytes, str] | None:
    """Body bytes and default Content-Type of a returned value, or None if it is not a usable type."""
    if isinstance(value, str):
        return value.encode("utf-8"), TEXT_HTML
    if isinstance(value, dict | list):
        return json.dumps(value).encode("utf-8"), APPLICATION_JSON
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), OCTET_STREAM
    if tuple_item:
        return str(value).encode("utf-8"), TEXT_PLAIN
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return _join_items(value), TEXT_HTML
    return None


def _join_items(items: Iterable[Any]) -> bytes:
    """Concatenate the str (UTF-8 encoded) and bytes items of an iterable; other items are skipped."""
    chunks: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            chunks.append(item.encode("utf-8"))
        elif isinstance(item, bytes | bytearray):
            chunks.append(bytes(item))
    return b"".join(chunks)


def _finish(status: Any, content_type: str, body: bytes, headers: Any) -> HttpReply:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        return error_reply(f"invalid status code returned by plugin: {status!r}")
    merged: dict[str, str] = {"Content-Type": content_type}
    if headers is not None:
        for name, value in _header_pairs(headers):
            _set_header(merged, name, value)
    return HttpReply(status, merged, body)


def _header_pairs(headers: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(headers, list):
        return headers  # already merged pairs
    items = getattr(headers, "items", None)
    if callable(items):
        return list(items())
    return list(headers)  # werkzeug-style iterable of (name, value) pairs


def _set_header(headers: dict[str, str], name: Any, value: Any) -> None:
    """Set `name` replacing any header differing only in case (Δ: InfluxDB compares case-sensitively)."""
    name = str(name)
    if not _HEADER_NAME.match(name):
        return  # a name that cannot be sent is dropped rather than failing the whole reply
    for existing in [key for key in headers if key.lower() == name.lower()]:
        del headers[existing]
    text = value if isinstance(value, str) else str(value)
    # Δ A value that cannot go on the wire (CR, LF, control characters) is sent empty; InfluxDB panics.
    headers[name] = "" if _BAD_VALUE_CHARS.search(text) else text
