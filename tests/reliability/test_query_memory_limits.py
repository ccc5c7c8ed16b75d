"""Issue 18, item 3: one short query cannot take unlimited memory, through a real server process.

`SELECT array_repeat(1, 1000000000)` passed 4.2 GiB in 2 s, 30,000 rows of `repeat('x', 100000)` passed 4 GiB,
and past 2 GiB in one batch DataFusion panicked and the client saw a dropped connection. Now queries run
under one memory pool (--exec-mem-pool-bytes, as Core), functions whose result size an argument sets are
checked against a query's share of it before they allocate, results stream in bounded chunks, and every
failure is an error response naming the limit. The server's peak resident memory (VmHWM) is the witness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakeflux.testing.chaos import Outcome, post, query
from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

GIB = 2**30


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("memory") / "data"
    with ServerProcess(data, "--without-auth", "--wal-flush-interval", "10ms", "--exec-mem-pool-bytes", "256MiB",
                       "--max-concurrent-queries", "4") as server:
        assert post(f"{server.url}/api/v3/write_lp?db=db", b"m v=1i 1").status == 204
        yield server


def peak_rss(srv: ServerProcess) -> int:
    assert srv.proc is not None
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def sql(srv: ServerProcess, text: str) -> Outcome:
    return post(f"{srv.url}/api/v3/query_sql", json.dumps({"db": "db", "q": text}).encode(),
                {"Content-Type": "application/json"}, timeout=300)


def assert_refused_naming_the_limit(outcome: Outcome) -> None:
    assert outcome.status is not None, "the connection was dropped"
    assert outcome.status == 422, outcome
    error = json.loads(outcome.body)["error"]
    assert "memory limit" in error and "--exec-mem-pool-bytes" in error, error


@pytest.mark.parametrize("text", [
    "SELECT array_repeat(1, 1000000000) AS a",
    "SELECT list_repeat(7, 500000000 + 500000000) AS a",
    "SELECT repeat('x', 100000) AS s FROM range(30000)",
    "SELECT length(repeat('x', 3000000000)) AS n",
    "SELECT count(*) AS n FROM m WHERE v < length(repeat('y', 2000000000))",
    "SELECT lpad('x', 2000000000) AS s",
    "SELECT length(rpad('x', 100000, 'ab')) AS n FROM range(30000)",
    "SELECT length(lpad('é', 1000000000, 'ü')) AS n",
    "SELECT lpad('a', 2) AS a, lpad('x', 1000000000, 'y') AS b",
    "SELECT range(1000000000) AS r",
    "SELECT cardinality(generate_series(1, 500000000 + 500000000)) AS n",
    "SELECT cardinality(range(0, v * 1000000000, 1)) AS n FROM m",
    "SELECT range(5) AS a, cardinality(range(1, 1000000000)) AS n",
])
def test_size_setting_functions_are_refused_before_they_allocate(srv, text):
    assert_refused_naming_the_limit(sql(srv, text))
    assert peak_rss(srv) < GIB, f"the server's resident memory peaked at {peak_rss(srv) / GIB:.2f} GiB"
    assert query(srv.url, "db", "SELECT v FROM m") == [{"v": 1}]


def test_operators_past_the_pool_fail_naming_it(srv):
    assert_refused_naming_the_limit(sql(srv, "SELECT value, random() AS r FROM range(30000000) ORDER BY r"))
    assert peak_rss(srv) < GIB


def test_small_results_of_the_same_functions_still_work(srv):
    rows = query(srv.url, "db", "SELECT repeat('ab', 3) AS s, repeat('ab', -1) AS e, array_repeat(1, 3) AS a, "
                                "array_repeat(2, 0) AS z, list_repeat(4, 2) AS l")
    assert rows == [{"s": "ababab", "e": "", "a": [1, 1, 1], "z": [], "l": [4, 4]}]
    assert query(srv.url, "db", "SELECT repeat(NULL, 2) AS s, array_repeat(1, NULL) AS a") == [{}]
    wide = query(srv.url, "db", "SELECT length(repeat('x', 100000)) AS n FROM range(300)")
    assert len(wide) == 300 and wide[0] == {"n": 100000}


def test_small_results_of_the_padding_and_range_functions_are_datafusions(srv):
    """The checked lpad, rpad, range and generate_series compute with DataFusion's own functions: the same
    answers (its character counting, nulls and negative counts included), dates still range."""
    assert query(srv.url, "db", "SELECT lpad('hi', 5) AS a, lpad('hello', 2) AS b, lpad('hi', 5, 'xy') AS c, "
                                "rpad('hi', 5) AS d, rpad('hi', 5, 'xy') AS e, lpad('hi', -1) AS f, "
                                "lpad('e\u0301x', 4, '*') AS g, rpad('é', 3, 'ü') AS h") == [
        {"a": "   hi", "b": "he", "c": "xyxhi", "d": "hi   ", "e": "hixyx", "f": "", "g": "*e\u0301x", "h": "éüü"}]
    assert query(srv.url, "db", "SELECT lpad(NULL, 3) AS a, rpad('x', NULL, 'y') AS b, lpad('x', 3, NULL) AS c") == [{}]
    padded = query(srv.url, "db", "SELECT lpad(CAST(value AS VARCHAR), 4, '0') AS p, lpad('x', 2) AS q, "
                                  "\"rpad\"('y', 2, 'z') AS r FROM range(3000) ORDER BY value")
    assert [r["p"] for r in padded[:3]] == ["0000", "0001", "0002"] and padded[-1]["p"] == "2999"
    assert padded[0]["q"] == " x" and padded[0]["r"] == "yz"
    assert query(srv.url, "db", "SELECT range(3) AS a, range(2, 5) AS b, range(5, 1, -2) AS c, generate_series(2) AS d, "
                                "generate_series(1, 7, 3) AS e, range(1, 1) AS f, range(NULL) AS g") == [
        {"a": [0, 1, 2], "b": [2, 3, 4], "c": [5, 3], "d": [0, 1, 2], "e": [1, 4, 7], "f": []}]
    assert query(srv.url, "db", "SELECT range(2) AS a, range(1, 3) AS b FROM range(2)") == [
        {"a": [0, 1], "b": [1, 2]}, {"a": [0, 1], "b": [1, 2]}]
    days = query(srv.url, "db", "SELECT range(DATE '2024-01-01', DATE '2024-01-03', INTERVAL '1 day') AS d")
    assert days == [{"d": ["2024-01-01", "2024-01-02"]}]
    assert query(srv.url, "db", "SELECT count(*) AS n FROM range(100000)") == [{"n": 100000}]


def test_a_wide_result_streams_in_bounded_memory(srv):
    # 600 rows of 100 KB: within a query's share (64 MiB here) per batch, streamed chunk by chunk.
    outcome = post(f"{srv.url}/api/v3/query_sql", json.dumps({
        "db": "db", "q": "SELECT repeat('x', 100000) AS s FROM range(600)", "format": "jsonl"}).encode(),
        {"Content-Type": "application/json"}, timeout=300)
    assert outcome.status == 200
    assert outcome.body.count(b"\n") == 600
    assert peak_rss(srv) < GIB
