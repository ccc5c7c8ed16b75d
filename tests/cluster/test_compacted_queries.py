"""Queries over compacted files (issue 15): query nodes and the ingest nodes' own queries switch from the
ingest nodes' files to the compactor's atomically (each row exactly once, also mid-swap), the ingest nodes
retire what the compactor absorbed, newer rows win over compacted ones where they meet, and a compacted file
gone mid-query is retried against the newer manifests. Several nodes and a compactor on one store."""

from __future__ import annotations

import threading

import pytest
from cluster_nodes import T0, count, eventually, lines, node_config, running, source
from test_compactor import compactor

from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore


@pytest.fixture(params=["memory", "file"])
def lake(request, tmp_path):
    """A store (memory: files read through the store; file: DataFusion reads them natively) and node configs."""
    if request.param == "memory":
        store = MemoryStore()
    else:
        store = FileStore(tmp_path / "lake")
    common = {"object_store": request.param, "data_dir": tmp_path / "lake"}

    def config(node: str, mode: str, **changes):
        return node_config(tmp_path, node, mode, **common, **changes)

    return store, config


def snapshot(srv) -> None:
    srv.call(srv.services.buffer.snapshot())


def rows(srv, sql: str = 'SELECT k, v, CAST(time AS BIGINT) AS t FROM "t" ORDER BY t, k') -> list[dict]:
    return srv.query("db", sql)


def retired(srv, seq: int) -> bool:
    """Whether ingest node `srv` retired the files compaction `seq` absorbed (and its view uses it)."""
    p = srv.services.buffer.persister
    view = source(srv, "compactor").manifest
    return view.seq >= seq and not view.absorbed_of(p.node) & {f.key for f in p.manifest.files}


def test_queries_switch_to_the_compacted_files_with_every_row_once(lake):
    store, config = lake
    c = compactor(store)
    with running(store, config("i1", "ingest"), config("i2", "ingest"), config("q1", "query")) as (i1, i2, q1):
        assert i1.write("db", lines("t", 0, 50, tag="a")).status == 204
        snapshot(i1)
        assert i1.write("db", lines("t", 50, 10, tag="a")).status == 204
        snapshot(i1)
        assert i2.write("db", lines("t", 20, 30, tag="b")).status == 204
        snapshot(i2)
        assert i2.write("db", lines("t", 200, 5, tag="b")).status == 204  # stays in i2's WAL
        eventually(lambda: count(q1, "db", "t") == 95, what="q1 seeing both nodes")
        before = rows(q1)
        seen: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(count(q1, "db", "t"))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            m = c.run_once()
            assert m is not None
            eventually(lambda: retired(i1, m.seq) and retired(i2, m.seq), what="i1 and i2 retiring")
            eventually(lambda: source(q1, "compactor").manifest.seq == m.seq, what="q1 using the compaction")
            eventually(lambda: all(source(q1, n).manifest.compaction == m.seq for n in ("i1", "i2")),
                       what="q1 following the retirements")
        finally:
            stop.set()
            watcher.join()
        assert seen and set(seen) == {95}, sorted(set(seen))
        assert rows(q1) == before
        absorbed = {key for keys in m.absorbed.values() for key in keys}
        assert not any(store.exists(key) for key in absorbed)  # retired: moved out of the table prefixes
        assert not i1.services.buffer.persister.manifest.files and not i2.services.buffer.persister.manifest.files
        # An ingest node's own queries read the compacted files too (which hold every node's older rows).
        assert count(i1, "db", "t") == 90 and count(i2, "db", "t") == 95


def test_newer_rows_win_over_compacted_ones_where_they_meet(lake):
    store, config = lake
    c = compactor(store)
    with running(store, config("i1", "ingest"), config("i2", "ingest"), config("q1", "query")) as (i1, i2, q1):
        assert i1.write("db", f"t,k=a v=1i,w=1i {T0}\nt,k=a v=1i {T0 + 10}\nt,k=c v=7i {T0 + 5}").status == 204
        snapshot(i1)
        m = c.run_once()
        assert m is not None
        eventually(lambda: retired(i1, m.seq), what="i1 retiring")
        # A late write to i1 (buffered, then in a sealed file of its own) rewrites a compacted point.
        assert i1.write("db", f"t,k=a v=2i {T0}").status == 204
        expected = [{"k": "a", "v": 2, "w": 1, "t": T0}, {"k": "c", "v": 7, "t": T0 + 5},
                    {"k": "a", "v": 1, "t": T0 + 10}]
        sql = 'SELECT k, v, w, CAST(time AS BIGINT) AS t FROM "t" ORDER BY t, k'
        assert rows(i1, sql) == expected
        eventually(lambda: rows(q1, sql) == expected, what="q1 merging the late write")
        snapshot(i1)
        assert rows(i1, sql) == expected
        eventually(lambda: rows(q1, sql) == expected, what="q1 after i1's snapshot")
        # The same point written to another ingest node merges with the compacted row where they meet.
        assert i2.write("db", f"t,k=c v=8i {T0 + 5}").status == 204
        expected[1] = {"k": "c", "v": 8, "t": T0 + 5}
        eventually(lambda: rows(q1, sql) == expected, what="q1 merging i2's write")
        m2 = c.run_once()
        assert m2 is not None
        eventually(lambda: retired(i1, m2.seq) and retired(i2, m2.seq), what="retiring the second compaction")
        eventually(lambda: source(q1, "compactor").manifest.seq == m2.seq, what="q1 on the second compaction")
        assert rows(q1, sql) == expected


def test_a_compacted_file_gone_mid_query_is_retried_against_the_newer_manifests(lake):
    store, config = lake
    c = compactor(store, cleanup_wait_s=0)  # replaced compacted files are deleted at once
    with running(store, config("i1", "ingest"), config("i2", "ingest")) as (i1, i2):
        assert i1.write("db", lines("t", 0, 20, tag="a")).status == 204
        assert i2.write("db", lines("t", 0, 20, tag="b")).status == 204
        snapshot(i1)
        snapshot(i2)
        m1 = c.run_once()
        assert m1 is not None
        eventually(lambda: retired(i1, m1.seq) and retired(i2, m1.seq), what="retiring")
        # q1 looks only when asked: it keeps the compaction and manifests it found at start.
        with running(store, config("q1", "query", replication_interval=3600.0, heartbeat_interval=3600.0)) as (q1,):
            assert count(q1, "db", "t") == 40 and source(q1, "compactor").manifest.seq == m1.seq
            assert i1.write("db", lines("t", 5, 10, tag="c")).status == 204
            snapshot(i1)
            m2 = c.run_once()  # replaces m1's file, and deletes it
            assert m2 is not None and not any(store.exists(f.key) for f in m1.files)
            eventually(lambda: retired(i1, m2.seq), what="i1 retiring")
            assert count(q1, "db", "t") == 50
            assert source(q1, "compactor").manifest.seq == m2.seq


def test_a_restarted_ingest_node_retires_what_was_absorbed_while_it_was_down(lake):
    store, config = lake
    c = compactor(store)
    with running(store, config("i1", "ingest")) as (i1,):
        assert i1.write("db", lines("t", 0, 20)).status == 204
        snapshot(i1)
        i1.services.cluster.stop()  # no more retiring: the node is as good as down
        m = c.run_once()
        assert m is not None
        assert count(i1, "db", "t") == 20  # its view still pairs its own files with no compaction
        assert i1.services.buffer.persister.manifest.compaction == -1
    with running(store, config("i1", "ingest"), config("q1", "query")) as (i1, q1):
        assert retired(i1, m.seq)  # at start, before it answers
        assert count(i1, "db", "t") == 20
        eventually(lambda: count(q1, "db", "t") == 20, what="q1")


def test_queries_capture_every_source_under_the_cluster_view_lock(lake, monkeypatch):
    """The compacted files and each followed node's manifest are one consistent pair only as of one moment:
    a query captures all of them while it holds the cluster view lock (which the view's switches take)."""
    store, config = lake
    with running(store, config("i1", "ingest"), config("q1", "query")) as (i1, q1):
        assert i1.write("db", lines("t", 0, 5)).status == 204
        eventually(lambda: count(q1, "db", "t") == 5, what="q1")
        view = source(q1, "compactor")
        held: list[bool] = []
        for src in q1.services.query._sources()[1:]:
            real = src.capture

            def capture(db, table, buffered, real=real):
                with view.lock._cond:
                    held.append(view.lock._readers > 0)
                return real(db, table, buffered)

            monkeypatch.setattr(src, "capture", capture)
        assert count(q1, "db", "t") == 5
        assert held and all(held), held
