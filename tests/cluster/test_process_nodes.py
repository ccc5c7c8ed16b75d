"""Process nodes (issue 15, stage 5): WAL triggers on a process node see every row written to any ingest node,
through its relay (one persisted sequence of the cluster's segments, positions per source node); rows written
while it is down are delivered when it is back, because ingest nodes keep their WAL for it."""

from __future__ import annotations

import shutil
from pathlib import Path

from cluster_nodes import count, eventually, lines, node_config, running

from lakeflux.engine.cache import GLOBAL_NAMESPACE
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer
from lakeflux.wal import Wal

PLUGINS = Path(__file__).parent.parent / "engine" / "plugins"
TRIGGER_ROUTE = "/api/v3/configure/processing_engine_trigger"


def plugin_dir(tmp_path: Path) -> Path:
    target = tmp_path / "plugins"
    target.mkdir(exist_ok=True)
    shutil.copy(PLUGINS / "rt_recorder.py", target / "rt_recorder.py")
    return target


def rows_seen(srv: InProcessServer, key: str = "seen") -> dict[str, int]:
    """Rows per tag value `k` the recorder plugin was called with on `srv` (but the `setup` rows written before
    the trigger: the process node may take that segment after the trigger started, and then delivers it)."""
    assert srv.services is not None
    seen: dict[str, int] = {}
    for call in srv.services.engine.caches.get(GLOBAL_NAMESPACE, key, None) or []:
        for batch in call["batches"]:
            for row in batch["rows"]:
                seen[row["k"]] = seen.get(row["k"], 0) + 1
    seen.pop("setup", None)
    return seen


def create_recorder(srv: InProcessServer, db: str = "db", table: str = "t") -> None:
    body = {"db": db, "trigger_name": "rec", "plugin_filename": "rt_recorder.py",
            "trigger_specification": f"table:{table}", "trigger_arguments": {"key": "seen"}}
    reply = srv.request("POST", TRIGGER_ROUTE, body)
    assert reply.status == 200, reply.body


def test_a_wal_trigger_on_a_process_node_sees_every_ingest_nodes_rows(tmp_path):
    store = MemoryStore()
    plugins = plugin_dir(tmp_path)
    configs = [node_config(tmp_path, "i1", "ingest", plugin_dir=plugins),
               node_config(tmp_path, "i2", "ingest", plugin_dir=plugins),
               node_config(tmp_path, "p1", "process", plugin_dir=plugins)]
    with running(store, *configs) as (i1, i2, p1):
        assert i1.write("db", lines("t", 0, 1, tag="setup")).status == 204
        create_recorder(i1)
        eventually(lambda: p1.services.engine.wal_lag(), what="the trigger running on p1")
        assert i1.write("db", lines("t", 10, 5, tag="a")).status == 204
        assert i2.write("db", lines("t", 20, 7, tag="b")).status == 204
        assert i2.write("db", lines("other", 0, 3, tag="c")).status == 204  # another table: not delivered
        eventually(lambda: rows_seen(p1) == {"a": 5, "b": 7}, what="p1's trigger seeing both nodes' rows")
        assert rows_seen(i1) == {} and rows_seen(i2) == {}  # ingest nodes run no triggers
        # The relay holds only segments with rows for a WAL trigger's database.
        assert count(p1, "db", "t") == 13  # a process node's plugins query the whole cluster's data


def test_rows_written_while_the_process_node_is_down_are_delivered_after(tmp_path):
    store = MemoryStore()
    plugins = plugin_dir(tmp_path)
    ingest = node_config(tmp_path, "i1", "ingest", plugin_dir=plugins, snapshotted_wal_files_to_keep=0)
    process = node_config(tmp_path, "p1", "process", plugin_dir=plugins)
    with running(store, ingest) as (i1,):
        assert i1.write("db", lines("t", 0, 1, tag="setup")).status == 204
        create_recorder(i1)
        with running(store, process) as (p1,):
            eventually(lambda: p1.services.engine.wal_lag(), what="the trigger running on p1")
            assert i1.write("db", lines("t", 10, 2, tag="before")).status == 204
            eventually(lambda: rows_seen(p1).get("before") == 2, what="p1 seeing the first rows")
        # p1 is down: its published floor holds i1's WAL through the snapshot, which keeps no segment else.
        for i in range(3):
            assert i1.write("db", lines("t", 100 + 10 * i, 2, tag="while-down")).status == 204
        i1.call(i1.services.buffer.snapshot())
        kept = Wal(store, "i1", "probe").list_seqs()
        assert kept, "the WAL segments p1 has not taken must stay"
        with running(store, process) as (p1,):
            eventually(lambda: rows_seen(p1).get("while-down") == 6, what="p1 catching up after its restart")
            assert "before" not in rows_seen(p1)  # its cursor was saved: nothing delivered twice
    assert store.exists(paths.relay_floor("p1"))


def test_a_process_node_that_ingests_relays_its_own_writes_too(tmp_path):
    store = MemoryStore()
    plugins = plugin_dir(tmp_path)
    configs = [node_config(tmp_path, "i1", "ingest", plugin_dir=plugins),
               node_config(tmp_path, "p1", "process,ingest", plugin_dir=plugins)]
    with running(store, *configs) as (i1, p1):
        assert i1.write("db", lines("t", 0, 1, tag="setup")).status == 204
        create_recorder(i1)
        eventually(lambda: p1.services.engine.wal_lag(), what="the trigger running on p1")
        assert p1.write("db", lines("t", 10, 4, tag="own")).status == 204
        assert i1.write("db", lines("t", 20, 3, tag="other")).status == 204
        eventually(lambda: rows_seen(p1) == {"own": 4, "other": 3}, what="p1 seeing its own and i1's rows")


def test_a_new_process_node_starts_with_what_is_written_from_then_on(tmp_path):
    store = MemoryStore()
    plugins = plugin_dir(tmp_path)
    with running(store, node_config(tmp_path, "i1", "ingest", plugin_dir=plugins)) as (i1,):
        assert i1.write("db", lines("t", 0, 1, tag="setup")).status == 204
        create_recorder(i1)  # no process node yet: nobody runs it
        assert i1.write("db", lines("t", 10, 3, tag="history")).status == 204
        with running(store, node_config(tmp_path, "p1", "process", plugin_dir=plugins)) as (p1,):
            eventually(lambda: p1.services.engine.wal_lag(), what="the trigger running on p1")
            assert i1.write("db", lines("t", 20, 2, tag="new")).status == 204
            eventually(lambda: rows_seen(p1).get("new") == 2, what="p1 seeing the new rows")
            assert "history" not in rows_seen(p1)
