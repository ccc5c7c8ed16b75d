"""`query_parameters` and `request_headers` of `process_request` (CONTRACT §1.10)."""

from __future__ import annotations

import pytest

from lakeflux.engine.request_args import query_parameters, request_headers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        ("a=1&b=2", {"a": "1", "b": "2"}),
        ("?a=1", {"a": "1"}),
        ("q=hello+world", {"q": "hello world"}),
        ("q=hello%20world%2Bplus", {"q": "hello world+plus"}),
        ("a=1&a=2&a=3", {"a": "3"}),  # last repeat wins
        ("flag&empty=", {"flag": "", "empty": ""}),
        ("k%C3%A9y=v%C3%A9", {"kéy": "vé"}),
        ("bad=%FF", {"bad": "\ufffd"}),  # invalid UTF-8 replaced
        ("x=a%3Db%26c", {"x": "a=b&c"}),
        ("a=1;b=2", {"a": "1;b=2"}),  # only & separates
        (b"a=x+y&b=%E2%9C%93", {"a": "x y", "b": "✓"}),
    ],
)
def test_query_parameters_from_raw_query(raw: str | bytes, expected: dict[str, str]) -> None:
    assert query_parameters(raw) == expected


def test_query_parameters_from_decoded_pairs() -> None:
    pairs = [("a", "1"), ("b", "x y"), ("a", "2")]
    assert query_parameters(pairs) == {"a": "2", "b": "x y"}


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("Content-Type", "application/json")], {"content-type": "application/json"}),
        ([("X-Trace", "1"), ("x-trace", "2")], {"x-trace": "2"}),  # last repeat wins
        ([("Authorization", "Bearer secret"), ("Host", "h")], {"host": "h"}),
        ([("AUTHORIZATION", "Token x")], {}),
        ([(b"X-Raw", b"caf\xc3\xa9")], {"x-raw": "café"}),
        ([(b"X-Latin1", b"caf\xe9")], {"x-latin1": "caf\ufffd"}),  # Δ not UTF-8: replaced, no panic
        ([("X-Escaped", "caf\udce9")], {"x-escaped": "caf\ufffd"}),  # aiohttp's surrogate-escaped str
        ([("Accept", "")], {"accept": ""}),
        ([], {}),
    ],
)
def test_request_headers(pairs: list[tuple[str | bytes, str | bytes]], expected: dict[str, str]) -> None:
    assert request_headers(pairs) == expected
