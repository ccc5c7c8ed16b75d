"""Duplicate points in the buffer (CONTRACT.md §7): table + tag set + time is one point, the last write wins
per field. Driven through the HTTP write and query APIs of an in-process server."""

from __future__ import annotations

from lakeflux.buffer.sqltypes import table_schema

T = 1_700_000_000_000_000_000
STAMP = "2023-11-14T22:13:20"


def ok(server, body: str) -> None:
    r = server.write("db", body)
    assert r.status == 204, r.body


def test_same_point_twice_is_one_row(server):
    ok(server, f"cpu,host=a usage=1.5 {T}")
    ok(server, f"cpu,host=a usage=1.5 {T}")  # a client retrying after a timeout
    assert server.query("db", "SELECT * FROM cpu") == [{"host": "a", "time": STAMP, "usage": 1.5}]
    assert server.query("db", "SELECT count(*) AS n FROM cpu") == [{"n": 1}]


def test_fields_merge_later_wins_and_null_does_not_erase(server):
    ok(server, f"cpu,host=a usage=1.0,idle=9.0 {T}")
    ok(server, f"cpu,host=a usage=2.0,sys=3i {T}")  # usage overridden, idle kept (absent = null), sys added
    ok(server, f"cpu,host=a,region=eu usage=7.0 {T}")  # another series: a present vs an absent tag
    assert server.query("db", "SELECT host, region, usage, idle, sys FROM cpu ORDER BY region NULLS FIRST") == [
        {"host": "a", "usage": 2.0, "idle": 9.0, "sys": 3},
        {"host": "a", "region": "eu", "usage": 7.0},
    ]


def test_within_one_request_the_later_line_wins(server):
    ok(server, f"cpu,host=a usage=1.0 {T}\ncpu,host=a usage=2.0 {T}\ncpu,host=b usage=3.0 {T}")
    assert server.query("db", "SELECT host, usage FROM cpu ORDER BY host") == [
        {"host": "a", "usage": 2.0}, {"host": "b", "usage": 3.0}]


def test_tag_sets_differ_in_any_tag(server):
    ok(server, f"cpu,host=a,cpu=0 v=1 {T}\ncpu,host=a,cpu=1 v=2 {T}\ncpu,host=b,cpu=0 v=3 {T}\ncpu,cpu=0 v=4 {T}")
    ok(server, f"cpu,host=a,cpu=0 v=1 {T}\ncpu,host=a,cpu=1 v=2 {T}\ncpu,host=b,cpu=0 v=3 {T}\ncpu,cpu=0 v=4 {T}")
    assert server.query("db", "SELECT count(*) AS n, sum(v) AS s FROM cpu") == [{"n": 4, "s": 10.0}]


def test_count_and_group_by_over_retried_batches(server):
    batch = "\n".join(f"cpu,host=h{i % 3} usage={i} {T + i * 10**9}" for i in range(30))
    for _ in range(3):
        ok(server, batch)
    assert server.query("db", "SELECT count(*) AS n, sum(usage) AS s FROM cpu") == [{"n": 30, "s": 435.0}]
    by_host = server.query("db", "SELECT host, count(*) AS n FROM cpu GROUP BY host ORDER BY host")
    assert by_host == [{"host": f"h{i}", "n": 10} for i in range(3)]


def test_buffer_merge_is_reused_until_the_buffer_changes(server):
    ok(server, f"cpu,host=a v=1 {T}\ncpu,host=a v=2 {T}")
    assert server.query("db", "SELECT v FROM cpu") == [{"v": 2.0}]
    tables = server.services.buffer.tables
    key = table_schema(server.services.catalog.state.live_db("db").tables["cpu"].columns)

    def merged_again(chunks, previous):
        raise AssertionError("the buffer was merged again although it did not change")

    cached = tables.derived("db", "cpu", key, merged_again)
    assert cached.rows.num_rows == 1
    assert server.query("db", "SELECT v FROM cpu") == [{"v": 2.0}]
    assert tables.derived("db", "cpu", key, merged_again) is cached
    ok(server, f"cpu,host=a v=3 {T}")
    assert server.query("db", "SELECT v FROM cpu") == [{"v": 3.0}]
    assert tables.derived("db", "cpu", key, merged_again) is not cached


def test_commits_between_queries_merge_with_earlier_ones(server):
    ok(server, f"cpu,host=a v=1,w=1 {T}\ncpu,host=b v=1 {T}")
    assert server.query("db", "SELECT count(*) AS n FROM cpu") == [{"n": 2}]
    ok(server, f"cpu,host=c v=1 {T}")  # new series, same time
    assert server.query("db", "SELECT count(*) AS n FROM cpu") == [{"n": 3}]
    ok(server, f"cpu,host=a v=2 {T}\ncpu,host=c v=5 {T + 1}")  # a retried point with one field, a new point
    assert server.query("db", "SELECT host, v, w FROM cpu ORDER BY host, time") == [
        {"host": "a", "v": 2.0, "w": 1.0}, {"host": "b", "v": 1.0}, {"host": "c", "v": 1.0}, {"host": "c", "v": 5.0}]
    ok(server, f"cpu,host=b v=7 {T}")
    assert server.query("db", "SELECT host, v FROM cpu WHERE host = 'b'") == [{"host": "b", "v": 7.0}]
