"""Query nodes follow every ingest node (issue 15, stage 3): its snapshot manifests and the WAL segments after
them; a query sees each row once, duplicate points merged as on the node, also while it snapshots and
compacts; a file swapped away mid-query is retried against the newer manifest."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from cluster_nodes import T0, count, eventually, lines, node_config, running, source

from lakeflux.catalog import Catalog
from lakeflux.cluster.follower import Follower
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.wal import Segment, Wal, WalTable


def rows(srv, sql: str = 'SELECT k, v, time FROM "t" ORDER BY time, k') -> list[dict]:
    return srv.query("db", sql)


@pytest.fixture(params=["memory", "file"])
def store_and_kind(request, tmp_path):
    if request.param == "memory":
        return MemoryStore(), "memory"
    return FileStore(tmp_path / "lake"), "file"


def cluster_configs(tmp_path, kind: str, **query_changes):
    common = {"object_store": kind, "data_dir": tmp_path / "lake"}
    return (node_config(tmp_path, "i1", "ingest", **common), node_config(tmp_path, "i2", "ingest", **common),
            node_config(tmp_path, "q1", "query", **common, **query_changes))


def test_query_node_converges_to_the_union_of_the_ingest_nodes(tmp_path, store_and_kind):
    store, kind = store_and_kind
    with running(store, *cluster_configs(tmp_path, kind)) as (i1, i2, q1):
        assert i1.write("db", lines("t", 0, 50, tag="a")).status == 204
        assert i2.write("db", lines("t", 0, 30, tag="b")).status == 204
        eventually(lambda: count(q1, "db", "t") == 80, what="the query node seeing both nodes' rows")
        # Snapshots on both ingest nodes, then more rows: still each row once.
        i1.call(i1.services.buffer.snapshot())
        assert i1.write("db", lines("t", 50, 10, tag="a")).status == 204
        i2.call(i2.services.buffer.snapshot())
        eventually(lambda: count(q1, "db", "t") == 90, what="rows after the snapshots")
        expected = sorted(rows(i1) + rows(i2), key=lambda r: (r["time"], r["k"]))
        assert rows(q1) == expected
        eventually(lambda: source(q1, "i1").manifest.seq >= 0, what="q1 using i1's manifest")


def test_duplicate_points_of_one_node_merge_as_on_that_node(tmp_path):
    store = MemoryStore()
    with running(store, *cluster_configs(tmp_path, "memory")) as (i1, _i2, q1):
        assert i1.write("db", f"t,k=a v=1i,w=1i {T0}").status == 204
        i1.call(i1.services.buffer.snapshot())
        assert i1.write("db", f"t,k=a v=2i {T0}").status == 204  # same point: v replaced, w kept
        expected = [{"k": "a", "v": 2, "w": 1}]
        assert i1.query("db", 'SELECT k, v, w FROM "t"') == expected
        eventually(lambda: q1.query("db", 'SELECT k, v, w FROM "t"') == expected, what="the merged point on q1")


def test_rows_are_counted_once_while_the_node_snapshots(tmp_path, store_and_kind):
    store, kind = store_and_kind
    with running(store, *cluster_configs(tmp_path, kind)) as (i1, _i2, q1):
        written = 0
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(count(q1, "db", "t"))

        assert i1.write("db", lines("t", 0, 20, tag="first")).status == 204
        written += 20
        eventually(lambda: count(q1, "db", "t") == written, what="the first rows on q1")
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for round_ in range(8):
                # Overlapping times: each snapshot compacts the previous file away.
                assert i1.write("db", lines("t", 0, 20, tag=f"r{round_}")).status == 204
                written += 20
                i1.call(i1.services.buffer.snapshot())
            eventually(lambda: count(q1, "db", "t") == written, what="every row on q1")
        finally:
            stop.set()
            watcher.join()
        assert seen and max(seen) <= written, seen
        assert seen == sorted(seen), "a query node never sees fewer rows than an earlier query did"


def test_a_file_swapped_away_is_retried_against_the_newer_manifest(tmp_path, store_and_kind):
    store, kind = store_and_kind
    # q1 follows only when asked: it holds on to the manifest it read at start.
    configs = cluster_configs(tmp_path, kind, replication_interval=3600.0, heartbeat_interval=3600.0)
    with running(store, configs[0]) as (i1,):
        assert i1.write("db", lines("t", 0, 10, tag="a")).status == 204
        i1.call(i1.services.buffer.snapshot())
        with running(store, configs[2]) as (q1,):
            assert count(q1, "db", "t") == 10
            follower = source(q1, "i1")
            old_files = [f.key for f in follower.manifest.files]
            # An overlapping write and snapshot replace the file q1's manifest names.
            assert i1.write("db", lines("t", 5, 10, tag="b")).status == 204
            i1.call(i1.services.buffer.snapshot())
            assert not any(store.exists(key) for key in old_files)
            assert count(q1, "db", "t") == 20
            assert [f.key for f in follower.manifest.files] != old_files


def test_rows_of_a_table_the_query_node_has_not_synced_yet_are_kept(tmp_path):
    store = MemoryStore()
    with running(store, *cluster_configs(tmp_path, "memory", catalog_sync_interval=3600.0)) as (i1, _i2, q1):
        assert i1.write("db", lines("fresh", 0, 7)).status == 204  # a new database and table
        eventually(lambda: q1.services.catalog.state.live_db("db"), what="q1 learning of db from the WAL")
        eventually(lambda: count(q1, "db", "fresh") == 7, what="the new table's rows on q1")


def test_a_deleted_table_leaves_the_query_node(tmp_path):
    store = MemoryStore()
    with running(store, *cluster_configs(tmp_path, "memory")) as (i1, _i2, q1):
        assert i1.write("db", lines("t", 0, 5)).status == 204
        eventually(lambda: count(q1, "db", "t") == 5, what="rows on q1")
        assert q1.request("DELETE", "/api/v3/configure/table?db=db&table=t").status == 200
        # i1 takes the deletion within its catalog sync interval (a write before that is ordered before it).
        eventually(lambda: "t" not in i1.services.catalog.state.require_db("db").tables, what="i1 syncing")
        assert i1.write("db", lines("t", 100, 2)).status == 204  # re-created: only the new rows
        eventually(lambda: count(q1, "db", "t") == 2, what="only the new table's rows on q1")
        eventually(lambda: count(i1, "db", "t") == 2, what="only the new table's rows on i1")


def segment(seq: int, n: int) -> Segment:
    data = pa.table({"k": ["a"] * n, "v": list(range(n)), "time": [T0 + seq * 1000 + i for i in range(n)]})
    return Segment(seq=seq, writer_id="w", tables=[WalTable("db", "t", data, ("k",), table_seq=2)])


def test_follower_probes_and_skips_sequences_never_committed():
    store = MemoryStore()
    catalog = Catalog(store, "c")
    catalog.load()
    catalog.commit([{"op": "create_database", "db": "db"},
                    {"op": "create_table", "db": "db", "table": "t", "columns": [["k", "tag"], ["v", "int64"]]}])
    assert catalog.state.require_table("db", "t").created_seq == 2
    wal = Wal(store, "i1", writer_id="w")
    for seq in (0, 1):
        wal.commit(segment(seq, 3))
    follower = Follower(store, "i1", catalog, manifest_every=1, list_every=1)
    assert follower.poll() == 2 and follower.tables.rows == 6 and follower.next_seq == 2
    wal.commit(segment(2, 3))
    assert follower.poll() == 1 and follower.next_seq == 3
    wal.commit(segment(5, 3))  # 3 and 4 failed on the node and were never committed
    assert follower.poll() == 1 and follower.next_seq == 6 and follower.tables.rows == 12
    assert follower.poll() == 0
