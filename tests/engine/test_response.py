"""`process_request` return values → HTTP replies (CONTRACT §1.10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lakeflux.engine.response import (
    HEADER_ITEM_NOT_DICT,
    UNSUPPORTED_RETURN,
    HttpReply,
    exception_reply,
    to_http_response,
)


class FlaskLike:
    """The duck-typed response object official docs and InfluxDB's tests use."""

    def __init__(self, data: Any, status: Any = 200, headers: Any = None, marker: Any = True) -> None:
        self._data = data
        self.status_code = status
        self.headers = headers or {}
        self._marker = marker

    def get_data(self) -> Any:
        return self._data

    def __flask_response__(self) -> Any:
        return self._marker


class HeaderList:
    """A werkzeug-like header collection: iterable pairs, no `.items()`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs)


def gen() -> Iterator[Any]:
    yield "Line 1\n"
    yield "Line 2\n"
    yield b"Line 3\n"
    yield 4  # not text: skipped
    yield None


JSON = "application/json"
HTML = "text/html"


@pytest.mark.parametrize(
    ("result", "status", "content_type", "body"),
    [
        # plain values
        ("Hello, World!", 200, HTML, b"Hello, World!"),
        ("", 200, HTML, b""),
        ("héllo", 200, HTML, "héllo".encode()),
        ({"message": "hi", "n": 1}, 200, JSON, b'{"message": "hi", "n": 1}'),
        ({}, 200, JSON, b"{}"),
        (["item1", "item2"], 200, JSON, b'["item1", "item2"]'),
        ([], 200, JSON, b"[]"),
        ({"x": float("nan"), "u": "é"}, 200, JSON, b'{"x": NaN, "u": "\\u00e9"}'),  # json.dumps defaults
        (b"\x00\x01raw", 200, "application/octet-stream", b"\x00\x01raw"),
        (bytearray(b"ba"), 200, "application/octet-stream", b"ba"),
        (gen(), 200, HTML, b"Line 1\nLine 2\nLine 3\n"),
        (iter(["a", "b"]), 200, HTML, b"ab"),
        (("a", "b", "c", "d"), 200, HTML, b"abcd"),  # a tuple longer than 3 is just an iterable
        ((), 200, HTML, b""),
        ({"x"}, 200, HTML, b"x"),
        # tuples
        (("Created successfully", 201), 201, HTML, b"Created successfully"),
        (("Hi",), 200, HTML, b"Hi"),
        (({"error": "Not Found", "code": 404}, 404), 404, JSON, b'{"error": "Not Found", "code": 404}'),
        ((["a"], 202), 202, JSON, b'["a"]'),
        ((b"raw", 200), 200, "application/octet-stream", b"raw"),
        ((42, 200), 200, "text/plain", b"42"),
        ((None,), 200, "text/plain", b"None"),
        (("body", "not-a-status"), 200, HTML, b"body"),
        # flask-like objects
        (FlaskLike("Custom Flask Response", 202), 202, HTML, b"Custom Flask Response"),
        (FlaskLike(b"\xffbytes", 200), 200, "application/octet-stream", b"\xffbytes"),
    ],
)
def test_mapping(result: Any, status: int, content_type: str, body: bytes) -> None:
    reply = to_http_response(result)
    assert (reply.status, reply.headers, reply.body, reply.error) == (status, {"Content-Type": content_type}, body, None)


@pytest.mark.parametrize(
    ("result", "status", "headers", "body"),
    [
        (
            ("Custom Content-Type", {"Content-Type": "text/plain", "X-Custom-Header": "test-value"}),
            200, {"Content-Type": "text/plain", "X-Custom-Header": "test-value"}, b"Custom Content-Type",
        ),
        (
            ("Not Found", 404, {"Content-Type": "text/plain", "X-Error-Code": "NOT_FOUND"}),
            404, {"Content-Type": "text/plain", "X-Error-Code": "NOT_FOUND"}, b"Not Found",
        ),
        (
            FlaskLike("x", 202, {"Content-Type": "text/custom", "X-Generated-By": "FlaskResponse"}),
            202, {"Content-Type": "text/custom", "X-Generated-By": "FlaskResponse"}, b"x",
        ),
        # Δ override is case-insensitive: the plugin's spelling replaces the default
        (("x", {"content-type": "text/csv"}), 200, {"content-type": "text/csv"}, b"x"),
        (({"a": 1}, 200, {"CONTENT-TYPE": "application/vnd.x+json"}), 200,
         {"CONTENT-TYPE": "application/vnd.x+json"}, b'{"a": 1}'),
        # non-str values are stringified; values that cannot go on the wire become empty
        (("x", 200, {"X-Count": 3}), 200, {"Content-Type": HTML, "X-Count": "3"}, b"x"),
        (("x", 200, {"X-Bad": "a\r\nSet-Cookie: evil=1"}), 200, {"Content-Type": HTML, "X-Bad": ""}, b"x"),
        (("x", 200, {"X-Nul": "a\x00b"}), 200, {"Content-Type": HTML, "X-Nul": ""}, b"x"),
        (("x", 200, {"X-Tab": "a\tb"}), 200, {"Content-Type": HTML, "X-Tab": "a\tb"}, b"x"),
        # a name that cannot be sent is dropped
        (("x", 200, {"Bad Name": "v", "X-Ok": "v"}), 200, {"Content-Type": HTML, "X-Ok": "v"}, b"x"),
        # headers in both item 2 and item 3 are merged, item 3 last
        (("x", {"X-A": "1", "X-B": "1"}, {"x-b": "2"}), 200, {"Content-Type": HTML, "X-A": "1", "x-b": "2"},
         b"x"),
        # werkzeug-style header pairs on a flask-like object
        (FlaskLike("x", 200, HeaderList([("X-A", "1"), ("Content-Type", "text/plain")])), 200,
         {"X-A": "1", "Content-Type": "text/plain"}, b"x"),
    ],
)
def test_headers(result: Any, status: int, headers: dict[str, str], body: bytes) -> None:
    reply = to_http_response(result)
    assert (reply.status, reply.headers, reply.body) == (status, headers, body)


def error_of(reply: HttpReply) -> str:
    assert reply.status == 500
    assert reply.headers == {"Content-Type": "application/json"}
    payload = json.loads(reply.body)
    assert payload["error"] == reply.error
    return payload["error"]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (None, UNSUPPORTED_RETURN),
        (42, UNSUPPORTED_RETURN),
        (3.5, UNSUPPORTED_RETURN),
        (object(), UNSUPPORTED_RETURN),
        (FlaskLike("x", marker=False), UNSUPPORTED_RETURN),  # falsy marker: just an object
        (("x", 200, "not-a-dict"), HEADER_ITEM_NOT_DICT),
        (("x", 200, None), HEADER_ITEM_NOT_DICT),
        (("x", 99), "invalid status code"),
        (("x", 1000), "invalid status code"),
        (("x", -1), "invalid status code"),
        (("x", True), "invalid status code"),
        (FlaskLike("x", "200"), "invalid status code"),
        (FlaskLike("x", None), "invalid status code"),
        (FlaskLike(42), "get_data() returned int"),
    ],
)
def test_unusable_results_are_500(result: Any, message: str) -> None:
    assert message in error_of(to_http_response(result))


def test_unsupported_return_text_is_influxdbs() -> None:
    assert UNSUPPORTED_RETURN == "Unsupported return type from Python function"


@pytest.mark.parametrize(("status",), [(100,), (204,), (302,), (418,), (599,), (999,)])
def test_any_three_digit_status_passes(status: int) -> None:
    assert to_http_response(("x", status)).status == status


def test_plugin_errors_while_converting_propagate() -> None:
    def broken() -> Iterator[str]:
        yield "a"
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError, match="generator failed"):
        to_http_response(broken())
    with pytest.raises(TypeError):
        to_http_response({"when": object()})  # json.dumps cannot encode it, as in InfluxDB


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("bad input"), "Python function call failed: ValueError: bad input"),
        (KeyError("k"), "Python function call failed: KeyError: 'k'"),
        (KeyboardInterrupt(), "Python function call failed: KeyboardInterrupt: "),
        (SystemExit(3), "Python function call failed: SystemExit: 3"),
    ],
)
def test_exception_reply(exc: BaseException, message: str) -> None:
    assert error_of(exception_reply(exc)) == message
