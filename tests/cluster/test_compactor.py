"""The cluster compactor (issue 15): it merges the ingest nodes' sealed files across nodes and time into
larger, time-sorted, duplicate-free files and commits them in its own put-if-absent sequence, naming what it
absorbed; a second compactor stands by and cannot commit once fenced; a compactor that died mid-round is
succeeded by one that deletes the orphaned files and goes on. Several ingest nodes and compactor objects
on one memory store."""

from __future__ import annotations

import io
import itertools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cluster_nodes import CLUSTER, T0, compacted_delta_files, count, eventually, lines, node_config, running

from lakeflux.catalog import Catalog
from lakeflux.cluster import compaction
from lakeflux.cluster.compaction import CompactionManifest
from lakeflux.cluster.compactor import Compactor
from lakeflux.cluster.registry import NodeRecord, Registry
from lakeflux.errors import Fenced, Unavailable
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore

_processes = itertools.count()


def compactor(store, node: str = "c1", clock=None, **kw) -> Compactor:
    """A compactor of cluster CLUSTER as a fresh process of `node` (its registry record says it runs)."""
    process = f"{node}-process-{next(_processes)}"
    registry = Registry(store, CLUSTER, NodeRecord(node_id=node, modes=("compact",), address="http://127.0.0.1:9",
                                                   started_ns=0, heartbeat_ns=0, heartbeat_interval_s=3600.0,
                                                   process=process))
    registry.heartbeat()
    catalog = Catalog(store, CLUSTER, writer_id=process)
    catalog.load()
    extra = {"clock": clock} if clock is not None else {}
    return Compactor(store, CLUSTER, node, process, catalog, registry, **extra, **kw)


def snapshot(srv) -> None:
    srv.call(srv.services.buffer.snapshot())


def compacted_rows(store, manifest: CompactionManifest, table: str = "t") -> list[dict]:
    tables = [pq.read_table(io.BytesIO(store.get(f.key))) for f in manifest.files_of("db", table)]
    if not tables:
        return []
    data = pa.concat_tables(tables, promote_options="default")
    data = data.set_column(data.schema.get_field_index("time"), "time", data.column("time").cast(pa.int64()))
    rows = data.to_pylist()
    return sorted(({k: v for k, v in r.items() if v is not None} for r in rows),
                  key=lambda r: (r["time"], r.get("k", "")))


def node_rows(srv, table: str = "t") -> list[dict]:
    rows = srv.query("db", f'SELECT k, v, CAST(time AS BIGINT) AS time FROM "{table}" ORDER BY time, k')
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


@pytest.fixture
def cluster(tmp_path):
    """Two ingest nodes on one memory store, with a compactor registered first (so both seal their files)."""
    store = MemoryStore()
    first = compactor(store)
    with running(store, node_config(tmp_path, "i1", "ingest"), node_config(tmp_path, "i2", "ingest")) as (i1, i2):
        yield store, first, i1, i2


def test_files_of_both_nodes_become_one_sorted_duplicate_free_file(cluster):
    store, c, i1, i2 = cluster
    assert i1.write("db", lines("t", 0, 50, tag="a")).status == 204
    snapshot(i1)
    assert i1.write("db", lines("t", 50, 20, tag="a")).status == 204
    snapshot(i1)
    assert i2.write("db", lines("t", 10, 30, tag="b")).status == 204
    snapshot(i2)
    i1_files = {f.key for f in i1.services.buffer.persister.manifest.files}
    i2_files = {f.key for f in i2.services.buffer.persister.manifest.files}
    assert len(i1_files) == 2 and len(i2_files) == 1
    expected = sorted(node_rows(i1) + node_rows(i2), key=lambda r: (r["time"], r["k"]))
    m = c.run_once()
    assert m is not None and m.seq == 1 and m.holder == c.process and m.epoch == 0  # 0 was the takeover
    assert set(m.absorbed["i1"]) == i1_files and set(m.absorbed["i2"]) == i2_files
    assert m.seen == {"i1": i1.services.buffer.persister.manifest.seq, "i2": i2.services.buffer.persister.manifest.seq}
    [f] = m.files
    assert f.rows == 100 and f.key.startswith(f"{CLUSTER}/compacted/db/t/date=")
    assert compacted_rows(store, m) == expected
    times = [r["time"] for r in compacted_rows(store, m)]
    assert times == sorted(times)
    assert c.run_once() is None  # nothing new


def test_duplicate_points_merge_in_write_order_and_node_order(cluster):
    store, c, i1, i2 = cluster
    assert i1.write("db", f"t,k=a v=1i,w=1i {T0}\nt,k=b v=1i {T0 + 1}").status == 204
    snapshot(i1)
    assert i1.write("db", f"t,k=a v=2i {T0}").status == 204  # late: a new sealed file beside the first
    snapshot(i1)
    assert len(i1.services.buffer.persister.manifest.files) == 2
    assert i2.write("db", f"t,k=b v=3i,x=3i {T0 + 1}").status == 204  # the same point on another node
    snapshot(i2)
    m = c.run_once()
    assert m is not None
    assert compacted_rows(store, m) == [{"k": "a", "v": 2, "w": 1, "time": T0},
                                                  {"k": "b", "v": 3, "x": 3, "time": T0 + 1}]


def test_later_rounds_merge_new_files_with_the_compacted_ones_and_delete_replaced_files_after_the_wait(cluster):
    store, _, i1, i2 = cluster
    now = [T0]
    c = compactor(store, clock=lambda: now[0], cleanup_wait_s=60)
    assert i1.write("db", lines("t", 0, 20, tag="a")).status == 204
    snapshot(i1)
    first = c.run_once()
    assert first is not None and len(first.files) == 1
    old = first.files[0].key
    assert i2.write("db", lines("t", 5, 10, tag="b")).status == 204  # overlaps the compacted file
    assert i1.write("db", f"t,k=a v=100i {T0 + 3}").status == 204  # rewrites a compacted point
    snapshot(i1)
    snapshot(i2)
    second = c.run_once()
    assert second is not None and len(second.files) == 1 and second.removed == (old,)
    assert [r.key for r in second.retired] == [old] and second.retired[0].delete_at_ns == T0 + 60 * 10**9
    rows = compacted_rows(store, second)
    assert len(rows) == 30 and {"k": "a", "v": 100, "time": T0 + 3} in rows
    assert store.exists(old)  # a query planned on the first manifest still finds it
    assert compacted_delta_files(store, "db", "t") == {f.key for f in second.files}  # the compacted table's Delta log follows
    now[0] += 61 * 10**9
    assert i2.write("db", lines("t", 100, 1, tag="b")).status == 204
    snapshot(i2)
    third = c.run_once()
    assert third is not None and not store.exists(old) and old not in [r.key for r in third.retired]


def test_large_groups_are_cut_into_files_of_the_row_limit(cluster):
    store, _, i1, i2 = cluster
    c = compactor(store, row_limit=40)
    assert i1.write("db", lines("t", 0, 100, tag="a")).status == 204
    assert i2.write("db", lines("t", 0, 100, tag="b")).status == 204
    snapshot(i1)
    snapshot(i2)
    m = c.run_once()
    assert m is not None
    files = sorted(m.files, key=lambda f: f.min_time)
    assert sum(f.rows for f in files) == 200 and all(f.rows <= 42 for f in files) and len(files) >= 5
    for a, b in zip(files, files[1:], strict=False):
        assert a.max_time < b.min_time  # compacted files never overlap
    assert len(compacted_rows(store, m)) == 200


def test_files_are_taken_only_once_their_node_sealed_them(tmp_path):
    store = MemoryStore()
    with running(store, node_config(tmp_path, "i1", "ingest")) as (i1,):
        assert i1.write("db", lines("t", 0, 10)).status == 204
        snapshot(i1)  # no compactor registered yet: not sealed
        c = compactor(store)
        assert c.run_once() is None
        assert i1.write("db", lines("t", 100, 10)).status == 204
        snapshot(i1)  # this snapshot seals every file through it, the earlier one too
        m = c.run_once()
        assert m is not None and sum(f.rows for f in m.files) == 20 and len(m.absorbed["i1"]) == 2


def test_a_second_compactor_stands_by_and_a_fenced_one_never_commits(cluster):
    store, c1, i1, _ = cluster
    assert i1.write("db", lines("t", 0, 10)).status == 204
    snapshot(i1)
    assert c1.run_once() is not None
    c2 = compactor(store, node="c2")
    assert c2.run_once() is None and not c2.holding  # c1 runs: c2 stands by
    newest = compaction.load_newest(store, CLUSTER)
    assert newest.holder == c1.process
    c1.registry.heartbeat(stopped=True)  # c1 stopped (or went silent)
    assert i1.write("db", lines("t", 10, 10)).status == 204
    snapshot(i1)
    m = c2.run_once()
    assert m is not None and c2.holding and m.epoch == newest.epoch + 1 and m.holder == c2.process
    # c1 comes back as the same process: it finds c2 holding and running, and stands by.
    c1.registry.heartbeat()
    assert c1.run_once() is None and not c1.holding
    # A commit into a slot another compactor took is refused.
    stale = CompactionManifest(seq=m.seq, epoch=newest.epoch, holder=c1.process, node="c1")
    with pytest.raises(Fenced):
        compaction.commit(store, CLUSTER, stale)
    manifests = [CompactionManifest.from_bytes(store.get(x.key), x.key)
                 for x in store.list(paths.compaction_prefix(CLUSTER))]
    assert [x.holder for x in manifests if x.seq > m.seq - 1] == [c2.process]


def test_a_compactor_killed_before_its_commit_is_succeeded_without_orphans(cluster, monkeypatch):
    store, c1, i1, i2 = cluster
    assert i1.write("db", lines("t", 0, 30, tag="a")).status == 204
    assert i2.write("db", lines("t", 0, 30, tag="b")).status == 204
    snapshot(i1)
    snapshot(i2)
    real_commit = compaction.commit
    calls = []

    def lost(store_, cluster_, manifest):
        if manifest.added:  # the round's commit: the process dies here
            calls.append(manifest.seq)
            raise Unavailable("killed")
        return real_commit(store_, cluster_, manifest)

    monkeypatch.setattr(compaction, "commit", lost)
    with pytest.raises(Unavailable):
        c1.run_once()
    monkeypatch.setattr(compaction, "commit", real_commit)
    orphans = [m.key for m in store.list(paths.compacted_prefix(CLUSTER))]
    assert calls and orphans  # written, never committed
    successor = compactor(store, node="c1")  # the node restarted: a new process, its record rewritten
    m = successor.run_once()
    assert m is not None and m.holder == successor.process
    assert not set(orphans) & {f.key for f in m.files}
    assert all(store.exists(f.key) for f in m.files)
    assert not any(store.exists(key) for key in orphans)
    assert len(compacted_rows(store, m)) == 60


def test_files_of_a_deleted_table_leave_the_compaction(cluster):
    store, c, i1, _ = cluster
    assert i1.write("db", lines("t", 0, 10)).status == 204
    assert i1.write("db", lines("u", 0, 10)).status == 204
    snapshot(i1)
    m = c.run_once()
    assert m is not None and {f.table for f in m.files} == {"t", "u"}
    assert i1.request("DELETE", "/api/v3/configure/table?db=db&table=u").status == 200
    m2 = c.run_once()
    assert m2 is not None and {f.table for f in m2.files} == {"t"}
    assert [f.key for f in m.files_of("db", "u")] == list(m2.removed)
    # Re-created, the table's new files are compacted on their own.
    assert i1.write("db", lines("u", 50, 3)).status == 204
    eventually(lambda: i1.services.catalog.state.require_db("db").tables.get("u"), what="u re-created")
    snapshot(i1)
    m3 = c.run_once()
    assert m3 is not None and len(compacted_rows(store, m3, "u")) == 3


def test_compact_mode_and_its_flags(monkeypatch):
    from lakeflux.cli.serve import ServeFlags, build_config

    config = build_config(ServeFlags(cluster_id="prod", mode="compact", compaction_check_interval="2s",
                                     compaction_cleanup_wait="1m", compaction_row_limit=5000))
    assert config.modes == ("compact",) and config.has_mode("compact") and not config.has_mode("ingest")
    assert (config.compaction_check_interval, config.compaction_cleanup_wait, config.compaction_row_limit) == (
        2.0, 60.0, 5000)
    monkeypatch.setenv("LAKEFLUX_COMPACTION_CLEANUP_WAIT", "30s")
    monkeypatch.setenv("INFLUXDB3_COMPACTION_CHECK_INTERVAL", "500ms")
    config = build_config(ServeFlags(cluster_id="prod", mode="ingest,compact"))
    assert (config.compaction_check_interval, config.compaction_cleanup_wait) == (0.5, 30.0)
    assert config.modes == ("ingest", "compact")


def test_a_compact_mode_node_runs_the_compactor(tmp_path):
    store = MemoryStore()
    with running(store, node_config(tmp_path, "i1", "ingest"),
                 node_config(tmp_path, "c1", "compact", compaction_check_interval=0.05)) as (i1, c1):
        assert c1.services.compactor is not None and i1.services.compactor is None
        eventually(lambda: c1.services.compactor.holding, what="c1 holding the compaction")
        assert i1.write("db", lines("t", 0, 10)).status == 204
        snapshot(i1)  # sealed: c1 is registered
        eventually(lambda: i1.services.buffer.persister.manifest.compaction >= 1, what="c1 compacting, i1 retiring")
        assert count(i1, "db", "t") == 10 and not i1.services.buffer.persister.manifest.files
        assert c1.request("POST", "/api/v3/write_lp?db=db", "t v=1i 1").status == 405  # compact only: no writes


def test_a_large_backlog_is_compacted_over_several_rounds(cluster, monkeypatch):
    from lakeflux.cluster import compactor as module

    store, _, i1, _ = cluster
    c = compactor(store, row_limit=10)
    monkeypatch.setattr(module, "ROUND_GROUPS_ROWS", 1)  # a round starts no new day past 10 rows written
    day = 86_400 * 10**9
    assert i1.write("db", "\n".join(f"t,k=a v={d}i {T0 + d * day + i}" for d in range(3) for i in range(12))).status == 204
    snapshot(i1)
    rounds = [c.run_once() for _ in range(4)]
    assert [m is not None for m in rounds] == [True, True, True, False]
    assert rounds[2] is not None and sum(f.rows for f in rounds[2].files) == 36
    assert len({f.min_time // day for f in rounds[0].files}) == 1  # one day per round
