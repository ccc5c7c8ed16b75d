"""The lake: snapshots persist buffered rows as open Parquet; queries see every row exactly once."""

from __future__ import annotations

import pytest

from lakeflux.config import Config, S3Settings
from lakeflux.store import paths
from lakeflux.testing.server import InProcessServer

DAY = 86_400 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01


def lines(start: int, n: int, step: int = 3_600 * 10**9) -> str:
    """Rows spread over many hours (and days), two hosts, a late-added column on some."""
    out = []
    for i in range(start, start + n):
        extra = f",extra={i}i" if i % 7 == 0 else ""
        out.append(f"cpu,host=h{i % 2},region=r{i % 3} usage={i * 0.5}{extra} {T0 + i * step}")
    return "\n".join(out)


QUERIES = [
    "SELECT count(*) AS n, sum(usage) AS s, count(extra) AS e FROM cpu",
    "SELECT host, count(*) AS n, avg(usage) AS a FROM cpu GROUP BY host ORDER BY host",
    "SELECT date_bin(INTERVAL '1 day', time) AS d, count(*) AS n FROM cpu GROUP BY d ORDER BY d",
    "SELECT * FROM cpu ORDER BY time LIMIT 5",
    "SELECT count(*) AS n FROM cpu WHERE time >= '2026-01-03T00:00:00Z' AND time < '2026-01-04T00:00:00Z'",
]


def answers(srv: InProcessServer) -> list:
    return [srv.query("lake", q) for q in QUERIES]


def snapshot(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.snapshot())


def run_lake_scenario(cfg: Config) -> None:
    with InProcessServer(cfg) as srv:
        assert srv.write("lake", lines(0, 100)).status == 204
        before = answers(srv)
        snapshot(srv)
        assert srv.services.buffer.tables.rows == 0
        assert answers(srv) == before
        assert srv.write("lake", lines(100, 150)).status == 204  # buffered + persisted together
        snapshot(srv)
        assert srv.write("lake", lines(250, 30)).status == 204
        mixed = answers(srv)
        assert mixed[0][0]["n"] == 280
    with InProcessServer(cfg) as srv:
        assert answers(srv) == mixed
        snapshot(srv)
        assert answers(srv) == mixed
    with InProcessServer(cfg) as srv:
        assert answers(srv) == mixed


def test_snapshot_restart_same_answers_file(tmp_path):
    run_lake_scenario(Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02))


@pytest.mark.s3
def test_snapshot_restart_same_answers_s3(tmp_path, s3_endpoint):
    s3 = S3Settings(bucket=s3_endpoint.bucket, endpoint=s3_endpoint.endpoint_url, region=s3_endpoint.region,
                    access_key_id=s3_endpoint.access_key, secret_access_key=s3_endpoint.secret, allow_http=True)
    run_lake_scenario(Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02))


def test_snapshot_memory_store(tmp_path):
    from lakeflux.store.memory import MemoryStore

    store = MemoryStore()
    cfg = Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.02)
    with InProcessServer(cfg, store=store) as srv:
        srv.write("lake", lines(0, 50))
        before = answers(srv)
        snapshot(srv)
        assert answers(srv) == before


def test_duckdb_reads_the_lake_with_one_glob(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        srv.write("lake", lines(0, 200))
        snapshot(srv)
        ours = srv.query("lake", "SELECT count(*) AS n, sum(usage) AS s FROM cpu")[0]
        prefix = f"{tmp_path}/d/{paths.table_prefix('node0', 'lake', 'cpu')}"
    con = duckdb.connect()
    n, s = con.execute(f"SELECT count(*), sum(usage) FROM read_parquet('{prefix}date=*/*.parquet')").fetchone()
    assert (n, s) == (ours["n"], ours["s"])
    # Hive-style partitions: DuckDB sees the date column and prunes by it.
    days = con.execute(f"SELECT count(DISTINCT date) FROM read_parquet('{prefix}date=*/*.parquet', "
                       "hive_partitioning=true)").fetchone()[0]
    assert days == 9


def test_retention_hides_old_rows(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        r = srv.request("POST", "/api/v3/configure/database", {"db": "ret", "retention_period": "1h"})
        assert r.status == 200
        import time
        now = time.time_ns()
        srv.write("ret", f"m v=1 {now - 2 * 3600 * 10**9}\nm v=2 {now}", precision="ns")
        assert srv.query("ret", "SELECT v FROM m") == [{"v": 2.0}]
        snapshot(srv)
        assert srv.query("ret", "SELECT v FROM m") == [{"v": 2.0}]


def test_system_parquet_files_and_queries(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        srv.write("lake", lines(0, 60))
        snapshot(srv)
        files = srv.query("lake", "SELECT table_name, path, size_bytes, row_count, min_time, max_time "
                                  "FROM system.parquet_files ORDER BY min_time")
        assert sum(f["row_count"] for f in files) == 60
        assert all(f["table_name"] == "cpu" and f["path"].endswith(".parquet") for f in files)
        assert files[0]["min_time"] == T0
        q = srv.query("lake", "SELECT query_text, success, running FROM system.queries ORDER BY issue_time")
        assert any("system.parquet_files" in r["query_text"] and r["success"] for r in q)
        assert q[-1]["running"] is True  # this query itself


@pytest.mark.parametrize("hard", ["now", "default", "never"])
def test_deleted_table_files_leave_the_table_prefix(tmp_path, hard):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        srv.write("lake", lines(0, 30))
        snapshot(srv)
        assert srv.request("DELETE", f"/api/v3/configure/table?db=lake&table=cpu&hard_delete_at={hard}").status == 200
        assert srv.request("POST", "/api/v3/query_sql", {"db": "lake", "q": "SELECT * FROM cpu"}).status == 400
        srv.write("lake", "cpu,host=new usage=1 1")
        assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": 1}]  # a fresh table
        store = srv.services.store
        trashed = store.list(paths.trash_prefix("node0"))
        assert (len(trashed) == 0) == (hard == "now")
        # Housekeeping purges only what is due.
        srv.services.buffer.persister.purge_trash(now_ns=2**62)
        left = store.list(paths.trash_prefix("node0"))
        assert (len(left) > 0) == (hard == "never")
    with InProcessServer(cfg) as srv:
        assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": 1}]


def test_retention_deletes_expired_files(tmp_path):
    import time

    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02)
    with InProcessServer(cfg) as srv:
        srv.request("POST", "/api/v3/configure/database", {"db": "ret", "retention_period": "1d"})
        now = time.time_ns()
        srv.write("ret", f"m v=1 {now - 3 * DAY}\nm v=2 {now}", precision="ns")
        snapshot(srv)
        assert len(srv.services.buffer.persister.manifest.files_of("ret", "m")) == 2
        srv.call(srv.services.buffer.housekeep())
        left = srv.services.buffer.persister.manifest.files_of("ret", "m")
        assert len(left) == 1 and left[0].max_time == now
        assert srv.query("ret", "SELECT v FROM m") == [{"v": 2.0}]


def test_corrupt_persisted_file_is_named_and_other_tables_keep_working(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        srv.write("db", "cpu,host=a v=1 1\nmem,host=a v=2 2")
        snapshot(srv)
        broken = srv.services.buffer.persister.manifest.files_of("db", "cpu")[0]
        (tmp_path / "d" / broken.key).write_bytes(b"not parquet at all")
        r = srv.request("POST", "/api/v3/query_sql", {"db": "db", "q": "SELECT * FROM cpu"})
        assert r.status == 500 and broken.key in r.json()["error"]
        assert srv.query("db", "SELECT v FROM mem") == [{"v": 2.0}]


def test_housekeeping_sweeps_temp_files_left_by_a_crashed_writer(tmp_path):
    import os
    import time

    from lakeflux.buffer.writebuffer import TEMP_GRACE_S
    from lakeflux.store.paths import TEMP_SUFFIX

    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        srv.write("db", "cpu,host=a v=1 1")
        snapshot(srv)
        persisted = tmp_path / "d" / srv.services.buffer.persister.manifest.files_of("db", "cpu")[0].key
        stale = persisted.with_name(f"{persisted.name}.dead{TEMP_SUFFIX}")  # killed between write and rename
        fresh = persisted.with_name(f"{persisted.name}.live{TEMP_SUFFIX}")  # a writer still at work
        for path in (stale, fresh):
            path.write_bytes(b"half an object")
        old = time.time() - TEMP_GRACE_S - 60
        os.utime(stale, (old, old))
        srv.call(srv.services.buffer.housekeep())
        assert not stale.exists() and fresh.exists() and persisted.exists()
        assert srv.query("db", "SELECT v FROM cpu") == [{"v": 1.0}]
        # The sweep walks the whole store, so it runs once per grace period, not at every housekeeping round.
        buffer = srv.services.buffer
        stale.write_bytes(b"half an object")
        os.utime(stale, (old, old))
        srv.call(buffer.housekeep())
        assert stale.exists()
        later = time.time_ns() + int(TEMP_GRACE_S * 1e9)
        buffer._now_ns = lambda: later
        srv.call(buffer.housekeep())
        assert not stale.exists() and persisted.exists()


def test_persisted_files_are_read_while_the_view_is_pinned(tmp_path, monkeypatch):
    """DataFusion reads Parquet lazily as the result stream is consumed: the query pins its view while it
    reads, so the files a compaction or retention swap retires are deleted only after those reads."""
    import lakeflux.query.session as session

    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        srv.write("db", "cpu,host=a v=1 1\ncpu,host=b v=2 2")
        snapshot(srv)
        lock = srv.services.query._lock
        held_while_reading = []
        real = session.plain_strings

        def recording(batch):
            held_while_reading.append(lock.pinned() > 0)
            return real(batch)

        monkeypatch.setattr(session, "plain_strings", recording)
        assert srv.query("db", "SELECT host, v FROM cpu ORDER BY host") == [{"host": "a", "v": 1.0},
                                                                             {"host": "b", "v": 2.0}]
        assert held_while_reading and all(held_while_reading)
