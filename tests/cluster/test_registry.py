"""The node registry, `--mode`, `--cluster-id` and `lakeflux show nodes` (issue 15, stage 1)."""

from __future__ import annotations

import json

import pytest
from cluster_nodes import CLUSTER, eventually, lines, node_config, running
from typer.testing import CliRunner

from lakeflux.cli.main import app
from lakeflux.cli.output import CliFailure
from lakeflux.cli.serve import ServeFlags, build_config
from lakeflux.cluster import ClusterNode, NodeRecord, Registry
from lakeflux.config import Config, parse_modes
from lakeflux.errors import Invalid
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore


class Clock:
    def __init__(self, now: int = 1_000 * 10**9) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def record(node: str, modes: tuple[str, ...] = ("all",), interval: float = 10.0) -> NodeRecord:
    return NodeRecord(node_id=node, modes=modes, address=f"http://{node}:8181", started_ns=0, heartbeat_ns=0,
                      heartbeat_interval_s=interval, process=f"{node}-1")


def test_records_states_and_forget():
    store, clock = MemoryStore(), Clock()
    a = Registry(store, "c", record("a", ("ingest",)), clock)
    b = Registry(store, "c", record("b", ("query", "process")), clock)
    a.heartbeat()
    b.heartbeat()
    assert [(n.node_id, n.modes, n.address) for n in a.nodes()] == [
        ("a", ("ingest",), "http://a:8181"), ("b", ("query", "process"), "http://b:8181")]
    assert {n.node_id: n.state(clock.now) for n in b.nodes()} == {"a": "running", "b": "running"}
    clock.now += 31 * 10**9  # three missed 10 s heartbeats and a bit
    b.heartbeat()
    b.heartbeat(stopped=True)
    assert {n.node_id: n.state(clock.now) for n in a.nodes()} == {"a": "unresponsive", "b": "stopped"}
    table = a.table()
    assert table.column("node_id").to_pylist() == ["a", "b"]
    assert table.column("mode").to_pylist() == ["ingest", "query,process"]
    assert table.column("this_node").to_pylist() == [True, False]
    a.forget("b")
    assert [n.node_id for n in a.nodes()] == ["a"]


def test_unreadable_record_is_left_out():
    store = MemoryStore()
    reg = Registry(store, "c", record("a"))
    reg.heartbeat()
    store.put(paths.node_record("c", "broken"), b"{not json")
    assert [n.node_id for n in reg.nodes()] == ["a"]


def test_node_records_live_under_the_cluster_prefix():
    assert paths.node_record("c1", "ingest-1") == "c1/nodes/ingest-1.json"
    assert paths.node_record("c1", "a/b") == "c1/nodes/a%2Fb.json"  # one key segment, whatever the id


def test_cluster_node_registers_heartbeats_and_marks_stopped():
    store = MemoryStore()
    reg = Registry(store, "c", record("a", interval=0.01))
    node = ClusterNode(reg, 0.01)
    node.start()
    try:
        first = reg.nodes()[0].heartbeat_ns
        eventually(lambda: reg.nodes()[0].heartbeat_ns > first, what="a second heartbeat")
    finally:
        node.stop()
    assert reg.nodes()[0].stopped


@pytest.mark.parametrize(("text", "modes"), [
    ("all", ("all",)), ("ingest", ("ingest",)), ("process,ingest", ("ingest", "process")),
    ("ingest, process ,ingest", ("ingest", "process")), ("ingest,all", ("all",)),
])
def test_parse_modes(text, modes):
    assert parse_modes(text) == modes


@pytest.mark.parametrize(("text", "message"), [
    ("", "--mode is empty"), ("ingest,reader", "unknown mode 'reader'"),
])
def test_parse_modes_refuses(text, message):
    with pytest.raises(Invalid, match=message):
        parse_modes(text)


def test_cluster_flags_and_env(monkeypatch):
    config = build_config(ServeFlags(cluster_id="prod", mode="ingest,process", node_address="http://i1:8181",
                                     catalog_sync_interval="250ms"))
    assert (config.cluster_id, config.modes, config.node_address, config.catalog_sync_interval) == (
        "prod", ("ingest", "process"), "http://i1:8181", 0.25)
    assert config.cluster == "prod" and config.has_mode("ingest") and not config.has_mode("compact")
    monkeypatch.setenv("INFLUXDB3_ENTERPRISE_CLUSTER_ID", "from-influx")
    monkeypatch.setenv("LAKEFLUX_MODE", "process")
    config = build_config(ServeFlags())
    assert (config.cluster_id, config.modes) == ("from-influx", ("process",))
    monkeypatch.setenv("LAKEFLUX_CLUSTER_ID", "wins")
    assert build_config(ServeFlags()).cluster_id == "wins"


def test_single_node_defaults_are_a_cluster_of_one():
    config = build_config(ServeFlags(node_id="solo"))
    assert (config.cluster_id, config.modes, config.cluster) == (None, ("all",), "solo")
    assert all(config.has_mode(m) for m in ("ingest", "query", "process", "compact"))
    assert Config(http_bind="127.0.0.1:9").address == "http://127.0.0.1:9"


@pytest.mark.parametrize(("flags", "message"), [
    (ServeFlags(cluster_id="a/b"), "invalid --cluster-id 'a/b'"),
    (ServeFlags(cluster_id=".."), "invalid --cluster-id '..'"),
    (ServeFlags(mode="ingest,bogus"), "unknown mode 'bogus'"),
])
def test_bad_cluster_flags(flags, message):
    with pytest.raises(CliFailure, match=message):
        build_config(flags)


def test_nodes_of_a_cluster_see_each_other(tmp_path):
    store = MemoryStore()
    with running(store, node_config(tmp_path, "i1", "ingest"), node_config(tmp_path, "p1", "process")) as (i1, p1):
        rows = i1.query("_internal", "SELECT node_id, mode, state, this_node FROM system.nodes ORDER BY node_id")
        assert rows == [{"node_id": "i1", "mode": "ingest", "state": "running", "this_node": True},
                        {"node_id": "p1", "mode": "process", "state": "running", "this_node": False}]
        result = CliRunner().invoke(app, ["show", "nodes", "--host", p1.url, "--format", "json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert [(r["node_id"], r["mode"], r["this_node"]) for r in shown] == [
            ("i1", "ingest", False), ("p1", "process", True)]
        assert shown[0]["address"] == i1.config.address
    states = {n.node_id: n.stopped for n in Registry(store, CLUSTER, record("x")).nodes()}
    assert states == {"i1": True, "p1": True}


def test_a_node_without_ingest_refuses_writes(tmp_path):
    store = MemoryStore()
    with running(store, node_config(tmp_path, "p1", "process")) as (p1,):
        reply = p1.write("db", lines("t", 0, 1))
        assert reply.status == 405, reply
        error = reply.json()["error"]
        assert "node 'p1' runs in mode process: it does not accept writes" in error, error
        assert "ingest mode" in error
