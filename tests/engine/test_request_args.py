"""`query_parameters`, `request_headers` and the body of `process_request` (CONTRACT §1.10)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from lakeflux.engine.request_args import decode_body, query_parameters, request_headers
from lakeflux.errors import Invalid, TooLarge


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


def deflate_raw(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


PAYLOAD = b"cpu,host=a usage=1 1\n" * 100


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (PAYLOAD, None),
        (PAYLOAD, ""),
        (PAYLOAD, "identity"),
        (gzip.compress(PAYLOAD), "gzip"),
        (gzip.compress(PAYLOAD), " GZIP "),
        (gzip.compress(PAYLOAD), "x-gzip"),
        (gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:]), "gzip"),  # two members
        (zlib.compress(PAYLOAD), "deflate"),
        (deflate_raw(PAYLOAD), "deflate"),
    ],
)
def test_decode_body(raw: bytes, encoding: str | None) -> None:
    assert decode_body(raw, encoding, limit=len(PAYLOAD)) == PAYLOAD


def test_empty_body_stays_empty() -> None:
    assert decode_body(b"", "gzip", limit=10) == b""
    assert decode_body(b"", None, limit=0) == b""


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (PAYLOAD, None),
        (gzip.compress(PAYLOAD), "gzip"),
        (zlib.compress(PAYLOAD), "deflate"),
    ],
)
def test_body_over_limit_is_too_large(raw: bytes, encoding: str | None) -> None:
    with pytest.raises(TooLarge) as info:
        decode_body(raw, encoding, limit=len(PAYLOAD) - 1)
    assert f"max request size ({len(PAYLOAD) - 1} bytes) exceeded" in info.value.message


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge):
        decode_body(bomb, "gzip", limit=1024 * 1024)


@pytest.mark.parametrize(
    ("raw", "encoding", "message"),
    [
        (b"not gzip at all", "gzip", "not valid gzip"),
        (gzip.compress(PAYLOAD)[:-20], "gzip", "truncated gzip"),
        (gzip.compress(PAYLOAD) + b"trailing junk", "gzip", "not valid gzip"),
        (b"\x00\x01\x02", "deflate", "deflate"),
        (PAYLOAD, "br", "unsupported Content-Encoding 'br'"),
        (PAYLOAD, "gzip, br", "unsupported Content-Encoding"),
    ],
)
def test_bad_bodies_are_invalid(raw: bytes, encoding: str, message: str) -> None:
    with pytest.raises(Invalid) as info:
        decode_body(raw, encoding, limit=10 * len(PAYLOAD))
    assert message in info.value.message
