"""Snapshots compact overlapping files: a late write, once persisted, replaces the files its time range
overlaps with one duplicate-free file, so the table's files never overlap and queries read them natively.

Checked through HTTP writes and queries with forced snapshots, on the file store (DataFusion reads the
files natively), the memory store (files read through the store) and S3 (moto): answers are unchanged
and duplicates merged, the manifest lists one file per overlapping group and the table prefix holds
exactly the manifest's files, restarts give the same answers, replaced files wait in the trash, a group
over the size limit is left to the query-time merge, and a failed delete of a replaced file is finished later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_dedupe_lake import ok, snapshot

from lakeflux.buffer.dedupe import dirty_ranges
from lakeflux.buffer.manifest import Manifest, PersistedFile
from lakeflux.buffer.persist import RETIRED_GRACE_NS, Persister
from lakeflux.buffer.tablefiles import read_parquet
from lakeflux.config import Config, S3Settings
from lakeflux.store import paths
from lakeflux.store.base import ObjectStore
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.server import InProcessServer

T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9
NODE = "node0"

Start = Callable[[], InProcessServer]

QUERIES = [
    "SELECT count(*) AS n, sum(usage) AS s FROM cpu",
    "SELECT host, count(*) AS n, sum(usage) AS s FROM cpu GROUP BY host ORDER BY host",
    "SELECT * FROM cpu ORDER BY time, host",
    "SELECT count(*) AS n FROM cpu WHERE time >= '2026-01-02T00:00:00Z' AND time < '2026-01-03T00:00:00Z'",
    "SELECT count(*) AS n, count(DISTINCT concat(host, '@', CAST(time AS VARCHAR))) AS points FROM cpu",
]


def lake_store(kind: str, root: Path) -> ObjectStore:
    return FileStore(root) if kind == "file" else MemoryStore(f"compaction-{root.parent.name}")


@pytest.fixture(params=["file", "memory"])
def start(request, tmp_path) -> Iterator[Start]:
    """Starts servers over one lake (file: native reads; memory: reads through the store)."""
    cfg = Config(data_dir=tmp_path / "d", object_store=request.param, wal_flush_interval=0.02, without_auth=True)
    store = lake_store(request.param, tmp_path / "d")
    yield lambda: InProcessServer(cfg, store=store)


def persister(srv: InProcessServer) -> Persister:
    p = srv.services.buffer.persister
    assert p is not None
    return p


def answers(srv: InProcessServer) -> list:
    return [srv.query("lake", q) for q in QUERIES]


def hours(first: int, n: int, value: float, host_count: int = 2) -> str:
    """One point an hour over `n` hours from hour `first`, hosts taking turns."""
    return "\n".join(f"cpu,host=h{i % host_count} usage={value + i} {T0 + i * HOUR}" for i in range(first, first + n))


def cpu_files(srv: InProcessServer) -> list[PersistedFile]:
    return persister(srv).manifest.files_of("lake", "cpu")


def assert_no_overlaps(srv: InProcessServer) -> None:
    """The invariant: the table's live files never overlap, so a query with nothing buffered has no dirty
    range to merge (the session's own test for the slow path), and the table prefix holds exactly them."""
    files = cpu_files(srv)
    assert srv.services.buffer.tables.rows == 0
    overlaps = dirty_ranges([f.min_time for f in files], [f.max_time for f in files], np.zeros(0, dtype=np.int64))
    assert not overlaps.dirty.any() and len(overlaps.lo) == 0, files
    listed = {m.key for m in persister(srv).store.list(paths.table_prefix(NODE, "lake", "cpu"))
              if m.key.endswith(".parquet")}  # the rest is the table's Delta log (docs/open-tables.md)
    assert listed == {f.key for f in files}


def late_writes() -> str:
    """Into the middle day: a retried point (new value), a new field on another point, a new point."""
    return (f"cpu,host=h0 usage=24.0 {T0 + 24 * HOUR}\n"
            f"cpu,host=h1 idle=1.5 {T0 + 25 * HOUR}\n"
            f"cpu,host=h9 usage=100.0 {T0 + 30 * HOUR}")


# --- the overlapping group (pure) ------------------------------------------------------------------
def pf(key: str, lo: int, hi: int, seq: int, table: str = "cpu") -> PersistedFile:
    return PersistedFile(db="lake", table=table, key=key, rows=1, size=1, min_time=lo, max_time=hi, wal_seq=seq)


def test_overlapping_group_is_transitive_and_in_write_order():
    m = Manifest(files=(pf("z", 25, 40, 3), pf("x", 0, 10, 5), pf("y", 8, 26, 1), pf("w", 50, 60, 2),
                        pf("other", 0, 100, 4, table="mem")))
    # [9, 9] touches x and y directly; z overlaps y; w stands apart; other tables never count.
    assert [f.key for f in m.overlapping("lake", "cpu", 9, 9)] == ["y", "z", "x"]
    assert [f.key for f in m.overlapping("lake", "cpu", 45, 49)] == []
    assert [f.key for f in m.overlapping("lake", "cpu", 40, 50)] == ["y", "w", "z", "x"]  # bridges both
    assert [f.key for f in m.overlapping("lake", "cpu", 60, 60)] == ["w"]  # inclusive at one nanosecond


def test_manifest_round_trips_retired_keys_and_reads_older_manifests():
    m = Manifest(seq=3, wal_seq=7, files=(pf("a", 0, 1, 7),), retired=("b", "c"))
    assert Manifest.from_bytes(m.to_bytes(), "k") == m
    old = b'{"version": 1, "seq": 1, "wal_seq": 2, "files": []}'
    assert Manifest.from_bytes(old, "k").retired == ()


# --- compaction through the server ----------------------------------------------------------------
def test_late_write_is_compacted_into_one_file(start):
    with start() as srv:
        ok(srv, hours(0, 72, 0.0) + f"\ncpu,host=h1 idle=0.5 {T0 + 25 * HOUR}")  # three days, three files
        snapshot(srv)
        middle = next(f for f in cpu_files(srv) if "date=2026-01-02" in f.key)
        ok(srv, late_writes())
        merged = answers(srv)
        assert merged[0] == [{"n": 73, "s": float(sum(range(72))) + 100.0}]
        assert merged[4] == [{"n": 73, "points": 73}]
        snapshot(srv)
        files = cpu_files(srv)
        assert len(files) == 3
        replacement = next(f for f in files if "date=2026-01-02" in f.key)
        assert replacement.key != middle.key and replacement.rows == 25
        assert answers(srv) == merged
        assert srv.query("lake", "SELECT usage, idle FROM cpu WHERE idle IS NOT NULL") == [{"usage": 25.0, "idle": 1.5}]
        assert_no_overlaps(srv)
        parquet_files = srv.query("lake", "SELECT path, row_count FROM system.parquet_files ORDER BY path")
        assert [r["path"] for r in parquet_files] == sorted(f.key for f in files)
        assert sum(r["row_count"] for r in parquet_files) == 73
    with start() as srv:
        assert answers(srv) == merged
        assert_no_overlaps(srv)


def test_compacted_file_stays_sorted_by_time(start):
    with start() as srv:
        ok(srv, hours(0, 20, 0.0, host_count=3))
        snapshot(srv)
        ok(srv, hours(5, 10, 100.0, host_count=3) + "\n" + hours(2, 1, 7.0, host_count=3))
        snapshot(srv)
        (only,) = cpu_files(srv)
        times = read_parquet(persister(srv).store.get(only.key)).column("time").to_pylist()
        assert times == sorted(times) and len(times) == 20


def test_group_is_merged_transitively(start):
    with start() as srv:
        persister(srv).compact_max_rows = 0  # build two overlapping files first (as a skipped group leaves)
        ok(srv, hours(0, 6, 0.0))
        snapshot(srv)
        ok(srv, hours(4, 6, 10.0))
        snapshot(srv)
        ok(srv, hours(14, 4, 0.0))  # a third file of the same day, apart from both
        snapshot(srv)
        assert len(cpu_files(srv)) == 3
        persister(srv).compact_max_rows = 10**9
        ok(srv, f"cpu,host=h9 usage=1.0 {T0 + 9 * HOUR}")  # overlaps only the second file
        expected = answers(srv)
        snapshot(srv)
        files = sorted(cpu_files(srv), key=lambda f: f.min_time)
        assert [(f.min_time, f.max_time, f.rows) for f in files] == [
            (T0, T0 + 9 * HOUR, 11), (T0 + 14 * HOUR, T0 + 17 * HOUR, 4)]
        assert answers(srv) == expected
        assert_no_overlaps(srv)


def test_replaced_files_wait_in_the_trash(start):
    with start() as srv:
        p = persister(srv)
        p.clock = lambda: 1_000
        ok(srv, hours(0, 10, 0.0))
        snapshot(srv)
        (old,) = cpu_files(srv)
        ok(srv, hours(3, 1, 50.0))
        snapshot(srv)
        trash = paths.trash_file(NODE, 1_000 + RETIRED_GRACE_NS, old.key)
        assert [m.key for m in p.store.list(paths.trash_prefix(NODE))] == [trash]
        assert not p.store.exists(old.key)
        assert p.manifest.retired == (old.key,)
        assert p.purge_trash(1_000 + RETIRED_GRACE_NS - 1) == 0
        assert p.purge_trash(1_000 + RETIRED_GRACE_NS) == 1
        assert srv.query("lake", "SELECT count(*) AS n, sum(usage) AS s FROM cpu") == [
            {"n": 10, "s": float(sum(range(10))) - 3.0 + 53.0}]


def test_group_over_the_size_limit_is_left_to_the_query_merge(start, caplog):
    caplog.set_level(logging.INFO, logger="lakeflux.snapshot")
    with start() as srv:
        ok(srv, hours(0, 30, 0.0))
        snapshot(srv)
        persister(srv).compact_max_rows = 8  # the group (6 rows) plus three new rows is over it
        ok(srv, late_writes())
        expected = answers(srv)
        snapshot(srv)
        assert "not compacting" in caplog.text
        assert len([f for f in cpu_files(srv) if "date=2026-01-02" in f.key]) == 2
        assert answers(srv) == expected
        assert expected[4][0]["n"] == expected[4][0]["points"]
        persister(srv).compact_max_rows = 10**9
        persister(srv).compact_max_bytes = 1  # the byte limit alone also holds it back
        ok(srv, f"cpu,host=h0 usage=7.0 {T0 + 26 * HOUR}")
        expected = answers(srv)
        snapshot(srv)
        assert len([f for f in cpu_files(srv) if "date=2026-01-02" in f.key]) == 3
        assert answers(srv) == expected
    with start() as srv:
        assert answers(srv) == expected
        snapshot(srv)  # default limits: the next late write merges the whole group
        ok(srv, f"cpu,host=h0 usage=8.0 {T0 + 26 * HOUR}")
        expected = answers(srv)
        snapshot(srv)
        assert len([f for f in cpu_files(srv) if "date=2026-01-02" in f.key]) == 1
        assert answers(srv) == expected
        assert_no_overlaps(srv)


def test_unreadable_file_is_not_compacted_and_the_snapshot_succeeds(tmp_path, caplog):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, hours(0, 5, 0.0))
        snapshot(srv)
        (old,) = cpu_files(srv)
        (tmp_path / "d" / old.key).write_bytes(b"not parquet at all")
        ok(srv, hours(2, 1, 9.0))
        snapshot(srv)
        assert "not compacting" in caplog.text
        assert srv.services.buffer.tables.rows == 0
        assert len(cpu_files(srv)) == 2


def test_failed_retired_deletes_are_tried_again_and_finished_by_a_restart(tmp_path):
    """The swap is done once queries switched to the new manifest: a retired file whose delete fails stays
    in the prefix (queries read that table's files by name meanwhile, so no row is counted twice), the
    next changes try it again, its manifest is kept, and a restart deletes it."""
    faulty = FaultyStore(FileStore(tmp_path / "d"))
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg, store=faulty) as srv:
        ok(srv, hours(0, 10, 0.0))
        snapshot(srv)
        ok(srv, hours(10, 10, 0.0))
        snapshot(srv)
        first, second = sorted(cpu_files(srv), key=lambda f: f.min_time)
        ok(srv, hours(5, 10, 100.0))  # overlaps both files
        expected = answers(srv)
        # The first retired file is deleted but the reply is lost; the second's delete keeps failing.
        faulty.lose_response("delete", prefix=first.key, times=1)
        faulty.fail_before("delete", prefix=second.key)
        snapshot(srv)
        retiring = persister(srv).manifest.seq
        assert srv.services.buffer.tables.rows == 0
        assert len(cpu_files(srv)) == 1 and not faulty.exists(first.key) and faulty.exists(second.key)
        assert answers(srv) == expected
        for i in range(4):  # more snapshots than manifests kept: the one retiring the file stays
            ok(srv, hours(100 + 30 * i, 1, 0.0))
            snapshot(srv)
        assert faulty.exists(second.key)
        assert faulty.exists(paths.snapshot_manifest(NODE, retiring))
        expected = answers(srv)
    with InProcessServer(cfg, store=FileStore(tmp_path / "d")) as srv:
        assert not (tmp_path / "d" / second.key).exists()
        assert answers(srv) == expected
        assert_no_overlaps(srv)
        faulty.clear()
        ok(srv, hours(300, 1, 0.0))
        snapshot(srv)  # nothing left to retry; older manifests go
        assert not faulty.exists(paths.snapshot_manifest(NODE, retiring))


def test_duckdb_glob_sees_no_duplicates_after_compaction(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, hours(0, 72, 0.0))
        snapshot(srv)
        ok(srv, late_writes() + "\n" + hours(40, 10, 500.0))
        snapshot(srv)
        ours = srv.query("lake", "SELECT count(*) AS n, sum(usage) AS s FROM cpu")[0]
        prefix = f"{tmp_path}/d/{paths.table_prefix(NODE, 'lake', 'cpu')}"
    con = duckdb.connect()
    n, s, points = con.execute(f"SELECT count(*), sum(usage), count(DISTINCT (host, time)) "
                               f"FROM read_parquet('{prefix}date=*/*.parquet', union_by_name=true)").fetchone()
    assert (n, s) == (ours["n"], ours["s"]) and n == points == 73


@pytest.mark.s3
def test_compaction_on_s3(tmp_path, s3_endpoint):
    s3 = S3Settings(bucket=s3_endpoint.bucket, endpoint=s3_endpoint.endpoint_url, region=s3_endpoint.region,
                    access_key_id=s3_endpoint.access_key, secret_access_key=s3_endpoint.secret, allow_http=True)
    cfg = Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, hours(0, 72, 0.0))
        snapshot(srv)
        ok(srv, late_writes())
        expected = answers(srv)
        snapshot(srv)
        assert len(cpu_files(srv)) == 3
        assert answers(srv) == expected
        assert_no_overlaps(srv)
    with InProcessServer(cfg) as srv:
        assert answers(srv) == expected
