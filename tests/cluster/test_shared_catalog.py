"""One catalog per cluster (issue 15, stage 2): concurrent changes from several nodes commit put-if-absent,
a node that loses a slot reloads, re-validates and retries, conflicting changes fail clearly, nothing is
lost, and every node sees the others' changes within the catalog sync interval."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import orjson
import pytest
from cluster_nodes import CLUSTER, count, eventually, lines, node_config, running

from lakeflux.catalog import Catalog
from lakeflux.errors import Conflict
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

PLUGINS = Path(__file__).parent.parent / "engine" / "plugins"


def catalogs(store, n: int) -> list[Catalog]:
    out = []
    for i in range(n):
        cat = Catalog(store, CLUSTER, writer_id=f"node{i}")
        cat.load()
        out.append(cat)
    return out


def test_concurrent_commits_from_several_nodes_all_land_once():
    store = MemoryStore()
    nodes = catalogs(store, 4)
    barrier = threading.Barrier(len(nodes))
    errors: list[BaseException] = []

    def work(i: int, cat: Catalog) -> None:
        try:
            barrier.wait()
            for k in range(15):
                cat.commit([{"op": "create_database", "db": f"n{i}-{k}"}])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for cat in nodes:
        cat.sync()
    expected = {f"n{i}-{k}" for i in range(4) for k in range(15)}
    for cat in nodes:
        assert expected <= set(cat.state.databases)
        assert cat.state.seq == nodes[0].state.seq
    # One log entry per change (plus the `_internal` database, created once), no gaps.
    keys = [m.key for m in store.list(paths.catalog_log_prefix(CLUSTER))]
    assert [paths.parse_seq(k) for k in keys] == list(range(1, len(expected) + 2))
    created = [op["db"] for k in keys for op in orjson.loads(store.get(k))["ops"]]
    assert sorted(created) == sorted([*expected, "_internal"])
    fresh = catalogs(store, 1)[0]
    assert expected <= set(fresh.state.databases)


def test_a_change_derived_from_the_state_is_checked_again_after_losing_its_slot():
    store = MemoryStore()
    a, b = catalogs(store, 2)
    a.commit([{"op": "create_database", "db": "db"}])
    calls = []

    def create_if_missing(state):
        calls.append(state.seq)
        return [] if state.live_db("db") is not None else [{"op": "create_database", "db": "db"}]

    b.commit(create_if_missing)  # b has not seen a's change: its first attempt loses the slot
    assert len(calls) == 2 and b.state.live_db("db") is not None
    assert b.state.seq == a.state.seq


def test_conflicting_column_types_fail_clearly_and_lose_nothing():
    store = MemoryStore()
    a, b = catalogs(store, 2)
    a.commit([{"op": "create_database", "db": "db"},
              {"op": "create_table", "db": "db", "table": "t", "columns": [["v", "float64"]]}])
    b.commit([{"op": "create_database", "db": "other"}])  # b caught up with a
    a.commit([{"op": "add_columns", "db": "db", "table": "t", "columns": [["w", "int64"]]}])
    with pytest.raises(Conflict, match="column 'w' of table 't' is int64, not utf8"):
        b.commit([{"op": "add_columns", "db": "db", "table": "t", "columns": [["w", "utf8"]]}])
    for cat in (a, b, catalogs(store, 1)[0]):
        cat.sync()
        columns = cat.state.require_table("db", "t").columns
        assert {c: k.value for c, k in columns.items()} == {"v": "float64", "time": "time", "w": "int64"}
        assert cat.state.live_db("other") is not None


def test_nodes_see_each_others_changes_within_the_sync_interval(tmp_path):
    store = MemoryStore()
    # b applies a's changes only through its periodic sync (it commits nothing itself).
    with running(store, node_config(tmp_path, "a"), node_config(tmp_path, "b", catalog_sync_interval=0.05)) as (a, b):
        assert a.request("POST", "/api/v3/configure/database", {"db": "shared"}).status == 200
        eventually(lambda: b.services.catalog.state.live_db("shared"), what="b seeing a's database")
    store2 = MemoryStore()
    slow = node_config(tmp_path, "b", catalog_sync_interval=3600.0)
    with running(store2, node_config(tmp_path, "a"), slow) as (a, b):
        assert a.request("POST", "/api/v3/configure/database", {"db": "shared"}).status == 200
        assert b.services.catalog.state.live_db("shared") is None  # its next sync is an hour away
        assert b.services.catalog.sync() == 1
        assert b.services.catalog.state.live_db("shared") is not None


def test_two_ingest_nodes_create_one_table_at_once(tmp_path):
    """Both nodes' first writes create `cpu` (each adding a column of its own): one commit wins, the other
    node finds the table, checks its write again and adds only its column. Every write is acknowledged."""
    store = MemoryStore()
    slow = {"catalog_sync_interval": 3600.0}  # neither knows of the other's change until its commit
    with running(store, node_config(tmp_path, "a", "ingest", **slow),
                 node_config(tmp_path, "b", "ingest", **slow)) as (a, b):
        replies: dict[str, int] = {}
        barrier = threading.Barrier(2)

        def write(srv: InProcessServer, field: str) -> None:
            barrier.wait()
            replies[srv.config.node_id] = srv.write("db", lines("cpu", 0, 10, field=field)).status

        threads = [threading.Thread(target=write, args=(s, f)) for s, f in ((a, "x"), (b, "y"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert replies == {"a": 204, "b": 204}
        for srv in (a, b):
            srv.services.catalog.sync()
            columns = srv.services.catalog.state.require_table("db", "cpu").columns
            assert set(columns) == {"k", "x", "y", "time"}
        assert count(a, "db", "cpu") == 10 and count(b, "db", "cpu") == 10  # each its own rows (stage 3 joins)


def test_a_write_clashing_with_another_nodes_column_type_is_refused_with_the_line(tmp_path):
    store = MemoryStore()
    slow = {"catalog_sync_interval": 3600.0}
    with running(store, node_config(tmp_path, "a", "ingest", **slow),
                 node_config(tmp_path, "b", "ingest", **slow)) as (a, b):
        assert a.write("db", "t,k=a v=1.5 1").status == 204
        assert b.write("db", "u,k=a n=1i 1").status == 204  # b caught up: knows db and t
        assert a.write("db", "t,k=a s=1.5 2").status == 204  # a adds s as a float
        clash = b.write("db", 't,k=a s="text" 3')  # b has not seen it: its commit finds a's entry
        assert clash.status == 400, clash
        assert "s" in clash.body.decode() and "line" in clash.body.decode().lower(), clash.body
        assert count(a, "db", "t") == 2


def test_a_table_deleted_through_another_node_leaves_this_nodes_data(tmp_path):
    store = MemoryStore()
    with running(store, node_config(tmp_path, "a", "ingest"), node_config(tmp_path, "b", "ingest")) as (a, b):
        assert b.write("db", lines("t", 0, 5)).status == 204
        assert count(b, "db", "t") == 5
        reply = a.request("DELETE", "/api/v3/configure/table?db=db&table=t")
        assert reply.status == 200, reply.body
        eventually(lambda: b.services.buffer.tables.rows == 0, what="b dropping its rows of the deleted table")
        # Re-created through a: b's new rows are the new table's, its old WAL rows are not.
        assert a.write("db", lines("t", 100, 2)).status == 204
        eventually(lambda: b.services.catalog.state.require_table("db", "t").created_seq
                   == a.services.catalog.state.require_table("db", "t").created_seq, what="b seeing the new table")
        assert b.write("db", lines("t", 200, 3)).status == 204
        assert count(b, "db", "t") == 3
    # b restarts and replays its whole WAL (segments of the old table included): still only the new rows.
    with running(store, node_config(tmp_path, "b", "ingest")) as (b,):
        assert count(b, "db", "t") == 3


def test_a_trigger_created_through_another_node_runs_on_the_process_node(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(PLUGINS / "rt_request.py", plugins / "rt_request.py")
    store = MemoryStore()
    with running(store, node_config(tmp_path, "i1", "ingest", plugin_dir=plugins),
                 node_config(tmp_path, "p1", "process", plugin_dir=plugins)) as (i1, p1):
        assert i1.write("db", lines("t", 0, 1)).status == 204
        body = {"db": "db", "trigger_name": "hello", "plugin_filename": "rt_request.py",
                "trigger_specification": "request:hello"}
        assert i1.request("POST", "/api/v3/configure/processing_engine_trigger", body).status == 200
        assert i1.request("GET", "/api/v3/engine/hello?mode=dict").status == 404  # i1 runs no triggers
        reply = eventually(lambda: (r := p1.request("GET", "/api/v3/engine/hello?mode=dict")).status == 200 and r,
                           what="the trigger starting on p1")
        assert reply.json()["params"] == {"mode": "dict"}
        assert i1.request("DELETE", "/api/v3/configure/processing_engine_trigger?db=db&trigger_name=hello"
                                    "&force=true").status == 200
        eventually(lambda: p1.request("GET", "/api/v3/engine/hello").status == 404, what="the trigger stopping")


def test_a_trigger_change_sees_the_databases_other_nodes_created_a_moment_ago(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(PLUGINS / "rt_request.py", plugins / "rt_request.py")
    store = MemoryStore()
    slow = {"catalog_sync_interval": 3600.0, "plugin_dir": plugins}  # b's periodic sync is an hour away
    with running(store, node_config(tmp_path, "a", "ingest", **slow), node_config(tmp_path, "b", "all", **slow)) as (
            a, b):
        assert a.request("POST", "/api/v3/configure/database", {"db": "fresh"}).status == 200
        body = {"db": "fresh", "trigger_name": "hello", "plugin_filename": "rt_request.py",
                "trigger_specification": "request:hello"}
        reply = b.request("POST", "/api/v3/configure/processing_engine_trigger", body)
        assert reply.status == 200, reply.body
        assert b.request("GET", "/api/v3/engine/hello").status == 200
