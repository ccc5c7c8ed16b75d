"""Gzip bodies with several members (issue 18, item 5), through a real server and a real HTTP client.

A gzip file may hold several members back to back (`cat a.gz b.gz`, or a client that flushes a member per
batch); `gzip -d` decodes them all. The server used to store only the first member's lines and answer 204,
and took bytes after a member for nothing. Every member is decoded now, the size limit counts all of them,
and anything after the last member that is not another member is refused with 400 (nothing written).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from lakeflux.testing.process import ServerProcess

LIMIT = 4096


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("gzip") / "data"
    with ServerProcess(data, "--without-auth", "--wal-flush-interval", "10ms",
                       "--max-http-request-size", str(LIMIT)) as server:
        yield server


def post(srv: ServerProcess, db: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(f"{srv.url}/api/v3/write_lp?db={db}", data=body, method="POST",
                                 headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def values(srv: ServerProcess, db: str) -> list[int]:
    q = urllib.parse.quote("SELECT v FROM m ORDER BY time")
    try:
        with urllib.request.urlopen(f"{srv.url}/api/v3/query_sql?db={db}&format=jsonl&q={q}", timeout=30) as r:
            return [json.loads(line)["v"] for line in r.read().splitlines()]
    except urllib.error.HTTPError as e:
        if e.code == 404:  # the database was never created: nothing was written
            return []
        raise


def lines(first: int, last: int) -> bytes:
    return b"".join(b"m v=%di %d\n" % (i, i) for i in range(first, last))


def test_every_member_is_written(srv):
    body = gzip.compress(lines(1, 4)) + gzip.compress(lines(4, 7)) + gzip.compress(lines(7, 9))
    assert post(srv, "members", body)[0] == 204
    assert values(srv, "members") == list(range(1, 9))


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs the gzip tool")
def test_same_lines_as_gzip_d(srv, tmp_path):
    # Members made by the gzip tool itself (and an empty one), concatenated as `cat a.gz b.gz` does.
    parts = []
    for i, chunk in enumerate([lines(1, 20), b"", lines(20, 31)]):
        src = tmp_path / f"part{i}"
        src.write_bytes(chunk)
        subprocess.run(["gzip", "-n", str(src)], check=True)
        parts.append((tmp_path / f"part{i}.gz").read_bytes())
    body = b"".join(parts)
    decoded = subprocess.run(["gzip", "-d", "-c"], input=body, capture_output=True, check=True).stdout
    assert decoded == lines(1, 31)
    assert post(srv, "tool", body)[0] == 204
    assert values(srv, "tool") == list(range(1, 31))


@pytest.mark.parametrize("tail", [b"garbage", b"\x1f\x8bnot a member", b"\0\0\0\0"])
def test_bytes_after_the_last_member_are_refused(srv, tail):
    db = f"tail{len(tail)}{tail[0]}"
    status, reply = post(srv, db, gzip.compress(lines(1, 3)) + tail)
    assert status == 400, reply
    assert "error decoding gzip stream" in json.loads(reply)["error"]
    assert values(srv, db) == []  # not even the valid first member


def test_truncated_second_member_is_refused(srv):
    second = gzip.compress(lines(3, 5))
    status, reply = post(srv, "cut", gzip.compress(lines(1, 3)) + second[: len(second) // 2])
    assert status == 400, reply
    assert "error decoding gzip stream" in json.loads(reply)["error"]
    assert values(srv, "cut") == []


def test_size_limit_counts_every_member(srv):
    # Each member alone decodes to under the limit; together they are over it.
    half = b"m v=1i 1\n" * (LIMIT // 2 // 9 + 1)
    assert len(half) < LIMIT < 2 * len(half)
    status, reply = post(srv, "big", gzip.compress(half) + gzip.compress(half))
    assert status == 413, reply
    assert values(srv, "big") == []
    assert post(srv, "big", gzip.compress(half))[0] == 204
