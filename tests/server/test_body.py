"""Gzip request bodies (CONTRACT §4.1): every member decoded, the size limit across all of them."""

from __future__ import annotations

import gzip

import pytest

from lakeflux.errors import Invalid, TooLarge
from lakeflux.server.body import gunzip

PAYLOAD = b"cpu,host=a usage=1 1\n" * 100


@pytest.mark.parametrize("raw", [
    gzip.compress(PAYLOAD),
    gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:]),
    gzip.compress(PAYLOAD[:10]) + gzip.compress(b"") + gzip.compress(PAYLOAD[10:]),
])
def test_every_member_is_decoded(raw: bytes) -> None:
    assert gunzip(raw, limit=len(PAYLOAD)) == PAYLOAD


def test_empty_body_stays_empty() -> None:
    assert gunzip(b"", limit=10) == b""


@pytest.mark.parametrize("raw", [gzip.compress(PAYLOAD), gzip.compress(PAYLOAD[:1]) + gzip.compress(PAYLOAD[1:])])
def test_over_the_limit_is_too_large(raw: bytes) -> None:
    with pytest.raises(TooLarge):
        gunzip(raw, limit=len(PAYLOAD) - 1)


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge):
        gunzip(gzip.compress(b"x") + bomb, limit=1024 * 1024)


@pytest.mark.parametrize(("raw", "message"), [
    (b"not gzip at all", "incorrect header check"),
    (gzip.compress(PAYLOAD)[:-20], "truncated"),
    (gzip.compress(PAYLOAD) + b"trailing junk", "13 bytes after gzip member 1 are not another gzip member"),
    (gzip.compress(PAYLOAD) + b"\0\0", "2 bytes after gzip member 1"),
    (gzip.compress(PAYLOAD) + b"\x1f\x8b junk", "unknown compression method"),
    (gzip.compress(PAYLOAD) + gzip.compress(PAYLOAD)[:30], "truncated"),
])
def test_bad_bodies_are_invalid(raw: bytes, message: str) -> None:
    with pytest.raises(Invalid) as info:
        gunzip(raw, limit=10 * len(PAYLOAD))
    assert info.value.message.startswith("error decoding gzip stream: ") and message in info.value.message
