"""A lake written by the release before clusters (tests/cluster/fixtures/lake-133ac4b, see its README) is read
as it is by a single node, and becomes a cluster named after its node without moving anything."""

from __future__ import annotations

import shutil
from pathlib import Path

from cluster_nodes import T0, count, eventually, node_config, running

from lakeflux.config import Config
from lakeflux.store.file import FileStore
from lakeflux.testing.server import InProcessServer

FIXTURE = Path(__file__).parent / "fixtures" / "lake-133ac4b"


def lake(tmp_path: Path) -> Path:
    target = tmp_path / "lake"
    shutil.copytree(FIXTURE, target)
    return target


def check_old_data(srv: InProcessServer) -> None:
    assert count(srv, "db", "cpu") == 35 and count(srv, "db", "mem") == 10
    assert srv.query("db", "SELECT host, v FROM gone") == [{"host": "b", "v": 2}]
    assert srv.services is not None and srv.services.catalog.state.live_db("other") is not None


def test_a_single_node_reads_the_old_lake_as_it_is(tmp_path):
    data = lake(tmp_path)
    before = sorted(p.relative_to(data) for p in data.rglob("*") if p.is_file())
    config = Config(object_store="file", data_dir=data, wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(config, store=FileStore(data)) as srv:
        check_old_data(srv)
        assert srv.write("db", f"cpu,host=h9 usage=1.0 {T0 + 1000}").status == 204
        assert count(srv, "db", "cpu") == 36
    after = {p.relative_to(data) for p in data.rglob("*") if p.is_file()}
    assert set(before) <= after, "nothing of the old lake moved"


def test_the_old_node_becomes_the_first_node_of_a_cluster(tmp_path):
    data = lake(tmp_path)
    store = FileStore(data)
    common = {"object_store": "file", "data_dir": data}
    old = node_config(tmp_path, "node0", "all", **common).with_changes(cluster_id="node0")
    new = node_config(tmp_path, "i2", "ingest", **common).with_changes(cluster_id="node0")
    query = node_config(tmp_path, "q1", "query", **common).with_changes(cluster_id="node0")
    with running(store, old, new, query) as (node0, i2, q1):
        check_old_data(node0)
        # The new node writes into a table the old release created; the query node sees both nodes.
        assert i2.write("db", f"cpu,host=new usage=2.0 {T0 + 2000}").status == 204
        eventually(lambda: count(q1, "db", "cpu") == 36, what="the query node seeing the old and new rows")
        assert q1.query("db", "SELECT host, v FROM gone") == [{"host": "b", "v": 2}]
        eventually(lambda: count(node0, "db", "cpu") == 36, what="node0 seeing i2's row")
    assert (data / "node0" / "catalog" / "log").is_dir() and not (data / "i2" / "catalog").exists()
