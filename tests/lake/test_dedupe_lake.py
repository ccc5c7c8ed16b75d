"""Duplicate points across the lake (CONTRACT.md §7): persisted files, the buffer, and restarts.

A point written again after its first write was persisted, or a late write into an already persisted
window, must still read as one point with the later write winning per field, before and after the next
snapshot and after a restart (WAL replay). Driven through HTTP writes and queries; snapshots are forced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from lakeflux.config import Config, S3Settings
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

DAY = 86_400 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9

Start = Callable[[], InProcessServer]

QUERIES = [
    "SELECT count(*) AS n, sum(usage) AS s, count(idle) AS i FROM cpu",
    "SELECT host, count(*) AS n, sum(usage) AS s FROM cpu GROUP BY host ORDER BY host",
    "SELECT * FROM cpu ORDER BY time, host",
    "SELECT count(*) AS n FROM cpu WHERE time >= '2026-01-02T00:00:00Z' AND time < '2026-01-03T00:00:00Z'",
]


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def start(request, tmp_path) -> Iterator[Start]:
    """Starts servers over one lake: the file store or S3 on moto's server (DataFusion reads files natively),
    or the memory store (files read through the store)."""
    if request.param == "s3":
        e = request.getfixturevalue("s3_endpoint")
        s3 = S3Settings(bucket=e.bucket, endpoint=e.endpoint_url, region=e.region, access_key_id=e.access_key,
                        secret_access_key=e.secret, allow_http=True)
        cfg = Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02, without_auth=True)
        yield lambda: InProcessServer(cfg)
        return
    cfg = Config(data_dir=tmp_path / "d", object_store=request.param, wal_flush_interval=0.02, without_auth=True)
    store = FileStore(tmp_path / "d") if request.param == "file" else MemoryStore()
    yield lambda: InProcessServer(cfg, store=store)


def ok(srv: InProcessServer, body: str) -> None:
    r = srv.write("lake", body)
    assert r.status == 204, r.body


def snapshot(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.snapshot())


def answers(srv: InProcessServer) -> list:
    return [srv.query("lake", q) for q in QUERIES]


def days(first: int, n: int, value: float) -> str:
    """Two hosts, one point an hour over `n` hours from hour `first`."""
    return "\n".join(f"cpu,host=h{i % 2} usage={value + i} {T0 + i * HOUR}" for i in range(first, first + n))


def test_snapshot_files_hold_no_duplicates(start):
    with start() as srv:
        ok(srv, days(0, 10, 0.0))
        ok(srv, days(0, 10, 0.0))  # a retried batch in the same snapshot
        snapshot(srv)
        files = srv.query("lake", "SELECT row_count FROM system.parquet_files")
        assert sum(f["row_count"] for f in files) == 10
        assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": 10}]


def test_point_persisted_then_written_again(start):
    with start() as srv:
        ok(srv, f"cpu,host=a usage=1.0,idle=5.0 {T0}\ncpu,host=b usage=2.0 {T0 + HOUR}")
        snapshot(srv)
        ok(srv, f"cpu,host=a usage=3.0 {T0}")  # buffered; its first write is in a file
        expected = [{"host": "a", "usage": 3.0, "idle": 5.0}, {"host": "b", "usage": 2.0}]
        assert srv.query("lake", "SELECT host, usage, idle FROM cpu ORDER BY host") == expected
        assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": 2}]
        # Compaction off (a group over its size limit): two files overlap and the query merges them,
        # the later snapshot winning. tests/lake/test_compaction.py covers the compacting snapshot.
        srv.services.buffer.persister.compact_max_rows = 0
        snapshot(srv)
        assert len(srv.services.buffer.persister.manifest.files_of("lake", "cpu")) == 2
        assert srv.query("lake", "SELECT host, usage, idle FROM cpu ORDER BY host") == expected
    with start() as srv:
        assert srv.query("lake", "SELECT host, usage, idle FROM cpu ORDER BY host") == expected


def test_late_write_into_persisted_window_then_snapshot_and_restart(start):
    with start() as srv:
        ok(srv, days(0, 72, 0.0) + f"\ncpu,host=h1 idle=0.5 {T0 + 25 * HOUR}")  # three days, three files
        snapshot(srv)
        clean = answers(srv)
        assert clean[0] == [{"n": 72, "s": float(sum(range(72))), "i": 1}]
        # Late writes into the middle day: one retry of a point, one new field on another, one new point.
        ok(srv, f"cpu,host=h0 usage=24.0 {T0 + 24 * HOUR}\n"
                f"cpu,host=h1 idle=1.5 {T0 + 25 * HOUR}\n"
                f"cpu,host=h9 usage=100.0 {T0 + 30 * HOUR}")
        merged = answers(srv)
        assert merged[0] == [{"n": 73, "s": clean[0][0]["s"] + 100.0, "i": 1}]
        assert merged[3] == [{"n": 25}]
        assert srv.query("lake", "SELECT usage, idle FROM cpu WHERE idle IS NOT NULL") == [{"usage": 25.0, "idle": 1.5}]
        snapshot(srv)  # the middle day now has two overlapping files
        assert answers(srv) == merged
        ok(srv, f"cpu,host=h0 usage=500.0 {T0 + 24 * HOUR}")  # and a third source for the same point
        again = answers(srv)
        assert again[0][0]["n"] == 73 and again[0][0]["s"] == merged[0][0]["s"] - 24.0 + 500.0
    with start() as srv:  # replayed from the WAL: same order, same answers
        assert answers(srv) == again
        snapshot(srv)
        assert answers(srv) == again
    with start() as srv:
        assert answers(srv) == again


def test_restart_before_any_snapshot_gives_the_same_answers(start):
    with start() as srv:
        ok(srv, days(0, 30, 0.0))
        ok(srv, days(10, 30, 50.0))  # overlaps hours 10-29 with new values
        ok(srv, f"cpu,host=h0 idle=2.0 {T0 + 10 * HOUR}")
        before = answers(srv)
        assert before[0] == [{"n": 40, "s": sum(range(10)) + sum(50.0 + i for i in range(10, 40)), "i": 1}]
    with start() as srv:
        assert answers(srv) == before


def test_retention_still_applies_to_merged_rows(start):
    import time

    now = time.time_ns()
    with start() as srv:
        assert srv.request("POST", "/api/v3/configure/database",
                           {"db": "ret", "retention_period": "1h"}).status == 200
        body = f"m,t=a v=1 {now - 2 * HOUR}\nm,t=a v=2 {now}"
        assert srv.write("ret", body, precision="ns").status == 204
        snapshot(srv)
        assert srv.write("ret", body, precision="ns").status == 204  # both overlap their files
        assert srv.query("ret", "SELECT v FROM m") == [{"v": 2.0}]


def test_broken_overlapping_file_is_named(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, f"cpu,host=a usage=1 {T0}")
        snapshot(srv)
        ok(srv, f"cpu,host=a usage=2 {T0}")  # the file is read through the store now
        broken = srv.services.buffer.persister.manifest.files_of("lake", "cpu")[0]
        (tmp_path / "d" / broken.key).write_bytes(b"not parquet at all")
        r = srv.request("POST", "/api/v3/query_sql", {"db": "lake", "q": "SELECT * FROM cpu"})
        assert r.status == 500 and broken.key in r.json()["error"]


def test_files_overlapping_at_their_edges_merge_only_there(start):
    """Writers' batches slightly out of order: each snapshot's file overlaps the previous one by a little.
    Rows outside the overlap stay in the native scan; the overlap is merged (later snapshot wins)."""
    with start() as srv:
        srv.services.buffer.persister.compact_max_rows = 0  # a group over the compaction limit
        ok(srv, days(0, 12, 0.0))  # hours 0-11
        snapshot(srv)
        ok(srv, days(10, 12, 100.0) + f"\ncpu,host=h0 idle=7.0 {T0 + 10 * HOUR}")  # hours 10-21: 10 and 11 again
        snapshot(srv)
        files = srv.services.buffer.persister.manifest.files_of("lake", "cpu")
        assert len(files) == 2 and files[1].min_time < files[0].max_time
        rows = srv.query("lake", "SELECT usage, idle FROM cpu ORDER BY time")
        assert len(rows) == 22
        assert [r["usage"] for r in rows[:10]] == [float(i) for i in range(10)]
        assert rows[10] == {"usage": 110.0, "idle": 7.0} and rows[11] == {"usage": 111.0}
        assert [r["usage"] for r in rows[12:]] == [100.0 + i for i in range(12, 22)]
        assert srv.query("lake", "SELECT count(*) AS n, sum(usage) AS s FROM cpu") == [
            {"n": 22, "s": sum(range(10)) + sum(100.0 + i for i in range(10, 22))}]
