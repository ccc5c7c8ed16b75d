"""The lake as open tables (issue 14): every persisted table is a Delta Lake table at its prefix, one Delta
commit per manifest change (snapshot, compaction, retention, delete), read by delta-rs as lakeflux's SQL
answers; recovery re-publishes what a crash left unpublished, and nothing twice.

The file store and S3 (moto) are read through delta-rs, an outside reader; the memory store, which no
outside engine can reach, by replaying its log here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from delta_reading import DeltaReader, commits, live_paths, root, sorted_rows

from lakeflux.buffer.persist import Persister
from lakeflux.config import Config, S3Settings
from lakeflux.errors import Unavailable
from lakeflux.model import ColumnKind
from lakeflux.store import paths
from lakeflux.store.base import ObjectStore
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.tableformat import Commit, DataFile, Publisher, TableChange, read_head
from lakeflux.tableformat.delta import CHECKPOINT_INTERVAL
from lakeflux.testing.faulty import CountingStore, FaultyStore
from lakeflux.testing.server import InProcessServer

pytest.importorskip("deltalake")

T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9
DAY = 24 * HOUR


@dataclass
class Lake:
    start: Callable[[], InProcessServer]
    store: ObjectStore
    reader: DeltaReader | None  # None: the memory store (no outside engine reaches it)


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def lake(request, tmp_path) -> Iterator[Lake]:
    if request.param == "s3":
        e = request.getfixturevalue("s3_endpoint")
        s3 = S3Settings(bucket=e.bucket, endpoint=e.endpoint_url, region=e.region, access_key_id=e.access_key,
                        secret_access_key=e.secret, allow_http=True)
        cfg = Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02, without_auth=True)
        store: ObjectStore = e.store()
        yield Lake(lambda: InProcessServer(cfg), store, DeltaReader(s3=e))
        return
    cfg = Config(data_dir=tmp_path / "d", object_store=request.param, wal_flush_interval=0.02, without_auth=True)
    store = FileStore(tmp_path / "d") if request.param == "file" else MemoryStore()
    yield Lake(lambda: InProcessServer(cfg, store=store), store,
               DeltaReader(data_dir=tmp_path / "d") if request.param == "file" else None)


def ok(srv: InProcessServer, db: str, body: str) -> None:
    r = srv.write(db, body, precision="ns")
    assert r.status == 204, r.body


def snapshot(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.snapshot())


def persister(srv: InProcessServer) -> Persister:
    p = srv.services.buffer.persister
    assert p is not None
    return p


def hours(first: int, n: int, value: float = 0.0) -> str:
    """One point an hour from hour `first`, two hosts taking turns, nanosecond digits in every time."""
    return "\n".join(f"cpu,host=h{i % 2} usage={value + i} {T0 + i * HOUR + 123_456_789 + i}"
                     for i in range(first, first + n))


def lakeflux_rows(srv: InProcessServer, db: str, table: str, columns: list[str]) -> list[tuple]:
    select = ", ".join("CAST(time AS BIGINT) AS time" if c == "time" else f'"{c}"' for c in columns)
    rows = srv.query(db, f"SELECT {select} FROM {table}")
    return sorted((tuple(r.get(c) for c in columns) for r in rows), key=lambda r: tuple((v is not None, v) for v in r))


def check_same(lake: Lake, srv: InProcessServer, db: str, table: str, columns: list[str]) -> None:
    """The Delta table, read by the outside reader (or replayed), holds exactly lakeflux's persisted rows
    (nothing is buffered when this is called); system.parquet_files names its files and newest version."""
    assert srv.services.buffer.tables.rows == 0
    ours = lakeflux_rows(srv, db, table, columns)
    listed = srv.query(db, f"SELECT path, delta_version FROM system.parquet_files WHERE table_name = '{table}'")
    files = {f["path"][len(root(db, table)):] for f in listed}
    assert files == {f.key[len(root(db, table)):] for f in persister(srv).manifest.files_of(db, table)}
    assert {f["delta_version"] for f in listed} == {len(commits(lake.store, db, table)) - 1}
    assert live_paths(lake.store, db, table) == files
    if lake.reader is not None:
        assert sorted_rows(lake.reader.rows(db, table), columns) == ours


def operations(store: ObjectStore, db: str, table: str) -> list[str]:
    return [next(a["commitInfo"]["operation"] for a in c if "commitInfo" in a) for c in commits(store, db, table)]


def test_each_change_is_one_delta_commit_readers_see_as_lakeflux(lake):
    with lake.start() as srv:
        now = time.time_ns()
        ok(srv, "lake", hours(0, 72) + f"\nmem,host=h0 free=1i {T0}")
        snapshot(srv)
        cols = ["host", "time", "usage"]
        check_same(lake, srv, "lake", "cpu", cols)
        check_same(lake, srv, "lake", "mem", ["host", "time", "free"])
        first = commits(lake.store, "lake", "cpu")
        assert len(first) == 1
        kinds = [next(iter(a)) for a in first[0]]
        assert kinds == ["commitInfo", "protocol", "metaData", "add", "add", "add"]  # three days, three files
        stats = orjson.loads(first[0][3]["add"]["stats"])
        assert stats["numRecords"] == 24 and stats["minValues"]["time"] == T0 + 123_456_789
        schema = orjson.loads(first[0][2]["metaData"]["schemaString"])
        assert {f["name"]: f["type"] for f in schema["fields"]} == {"host": "string", "time": "long", "usage": "double"}

        # A late write into the middle day compacts: one commit removes the old file and adds its merger.
        ok(srv, "lake", f"cpu,host=h0 usage=99.5 {T0 + 30 * HOUR}\ncpu,host=h1 idle=2.5 {T0 + 31 * HOUR + 123_456_820}")
        snapshot(srv)
        log = commits(lake.store, "lake", "cpu")
        assert len(log) == 2 and len(commits(lake.store, "lake", "mem")) == 1  # mem did not change
        assert [next(iter(a)) for a in log[1]] == ["commitInfo", "metaData", "remove", "add"]  # idle is new
        check_same(lake, srv, "lake", "cpu", ["host", "time", "usage", "idle"])

        # Retention: the old days leave in one DELETE commit; a fresh point stays.
        ok(srv, "lake", f"cpu,host=h0 usage=1.0 {now}")
        snapshot(srv)
        r = srv.request("PUT", "/api/v3/configure/database", {"db": "lake", "retention_period": "1d"})
        assert r.status == 200, r.body
        srv.call(srv.services.buffer.housekeep())
        assert operations(lake.store, "lake", "cpu") == ["WRITE", "WRITE", "WRITE", "DELETE"]
        assert [next(iter(a)) for a in commits(lake.store, "lake", "cpu")[3]] == ["commitInfo", "remove", "remove",
                                                                                   "remove"]
        check_same(lake, srv, "lake", "cpu", ["host", "time", "usage", "idle"])
        assert len(persister(srv).manifest.files_of("lake", "cpu")) == 1
        versions = len(commits(lake.store, "lake", "cpu"))

    # A restart publishes nothing again: every table's newest commit names the newest manifest.
    with lake.start() as srv:
        assert len(commits(lake.store, "lake", "cpu")) == versions
        check_same(lake, srv, "lake", "cpu", ["host", "time", "usage", "idle"])
        # A deleted table: one commit removes its files; outside readers see it empty.
        assert srv.request("DELETE", "/api/v3/configure/table?db=lake&table=mem").status == 200
        assert operations(lake.store, "lake", "mem") == ["WRITE", "DELETE"]
        assert live_paths(lake.store, "lake", "mem") == set()
        if lake.reader is not None:
            assert lake.reader.rows("lake", "mem").num_rows == 0
        # Re-created with other columns: its first snapshot declares them.
        ok(srv, "lake", f"mem,region=eu used=7i {time.time_ns()}")
        snapshot(srv)
        check_same(lake, srv, "lake", "mem", ["region", "time", "used"])
        assert operations(lake.store, "lake", "mem") == ["WRITE", "DELETE", "WRITE"]


def test_deleting_a_database_empties_its_delta_tables(lake):
    with lake.start() as srv:
        ok(srv, "gone", hours(0, 30) + f"\nmem free=1i {T0}")
        snapshot(srv)
        assert srv.request("DELETE", "/api/v3/configure/database?db=gone").status == 200
        for table in ("cpu", "mem"):
            assert operations(lake.store, "gone", table) == ["WRITE", "DELETE"]
            assert live_paths(lake.store, "gone", table) == set()
            if lake.reader is not None:
                assert lake.reader.rows("gone", table).num_rows == 0


def test_nanoseconds_and_uint64_are_exact_for_outside_readers(tmp_path):
    reader = DeltaReader(data_dir=tmp_path / "d")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, "lake", f"m,host=a big={2**64 - 1}u,small=3u {T0 + 999_999_999}\nm,host=b small=0u {T0 + 1}")
        snapshot(srv)
        data = reader.rows("lake", "m")
    assert sorted_rows(data, ["time", "big", "small"]) == [(T0 + 1, None, 0), (T0 + 999_999_999, 2**64 - 1, 3)]
    assert str(data.schema.field("time").type) == "int64"
    assert str(data.schema.field("big").type) == "decimal128(20, 0)"


def test_time_statistics_let_readers_skip_files(tmp_path):
    reader = DeltaReader(data_dir=tmp_path / "d")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        ok(srv, "lake", hours(0, 96))  # four days, four files
        snapshot(srv)
    dt = reader.table("lake", "cpu")
    day2 = (T0 + DAY, T0 + 2 * DAY)
    kept = dt.get_add_actions(flatten=True)
    assert kept.num_rows == 4
    # delta-rs prunes by the file statistics: a filter on one day reads one file's rows.
    from deltalake import QueryBuilder

    got = QueryBuilder().register("cpu", dt).execute(
        f"SELECT count(*) AS n FROM cpu WHERE time >= {day2[0]} AND time < {day2[1]}").read_all()
    assert got.column("n").to_pylist() == [24]
    files = dt.file_uris(file_pruning_predicate=f"time >= {day2[0]} AND time < {day2[1]}")
    assert len(files) == 1 and "date=2026-01-02" in files[0]


def test_a_lake_persisted_before_publishing_gets_its_first_commits_on_start(tmp_path):
    store = FileStore(tmp_path / "d")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg, store=store) as srv:
        ok(srv, "lake", hours(0, 50))
        snapshot(srv)
        ok(srv, "lake", f"cpu,host=h0 usage=5.5 {T0 + 10 * HOUR}")  # a compaction: two versions
        snapshot(srv)
    for meta in store.list(paths.delta_log_prefix(root("lake", "cpu"))):
        store.delete(meta.key)  # as if written by a lakeflux that did not publish
    with InProcessServer(cfg, store=store) as srv:
        log = commits(store, "lake", "cpu")
        assert len(log) == 1 and sum("add" in a for a in log[0]) == 3
        check_same(Lake(lambda: srv, store, DeltaReader(data_dir=tmp_path / "d")), srv, "lake", "cpu",
                   ["host", "time", "usage"])


def test_recovery_publishes_a_commit_a_crash_left_out_and_only_once(tmp_path):
    """The manifest committed but its Delta commit never written (a crash between them): the restart
    writes it; a restart after that writes nothing."""
    store = FileStore(tmp_path / "d")
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg, store=store) as srv:
        ok(srv, "lake", hours(0, 30))
        snapshot(srv)
        ok(srv, "lake", f"cpu,host=h0 usage=5.5 {T0 + 10 * HOUR}")
        snapshot(srv)
    second = paths.delta_commit(root("lake", "cpu"), 1)
    lost = store.get(second)
    store.delete(second)
    for _ in range(2):
        with InProcessServer(cfg, store=store) as srv:
            log = commits(store, "lake", "cpu")
            assert len(log) == 2
            assert [next(iter(a)) for a in log[1]] == [next(iter(orjson.loads(x))) for x in lost.splitlines()]
            check_same(Lake(lambda: srv, store, DeltaReader(data_dir=tmp_path / "d")), srv, "lake", "cpu",
                       ["host", "time", "usage"])


# --- the publisher alone ---------------------------------------------------------------------------------
COLUMNS = {"host": ColumnKind.TAG, "time": ColumnKind.TIME, "v": ColumnKind.FLOAT64}


def data_file(root_: str, name: str) -> DataFile:
    return DataFile(key=f"{root_}date=2026-01-01/{name}.parquet", size=10, rows=2, min_time=1, max_time=2)


def test_a_lost_reply_is_not_published_twice():
    inner = MemoryStore()
    store = FaultyStore(inner)
    pub = Publisher(store)
    r = root("db", "t")
    a, b = data_file(r, "a"), data_file(r, "b")
    pub.publish(1, [TableChange(r, COLUMNS, (a,), added=(a,))])
    store.lose_response("put_if_absent", times=1)
    with pytest.raises(Unavailable):
        pub.publish(2, [TableChange(r, COLUMNS, (b,), added=(b,), removed=(a.key,))])
    assert pub.publish(2, [TableChange(r, COLUMNS, (b,), added=(b,), removed=(a.key,))]) == 0
    log = commits(inner, "db", "t")
    assert len(log) == 2
    assert live_paths(inner, "db", "t") == {"date=2026-01-01/b.parquet"}


def test_another_writers_version_is_kept_and_ours_goes_after_it():
    store = MemoryStore()
    r = root("db", "t")
    a, b = data_file(r, "a"), data_file(r, "b")
    pub = Publisher(store)
    pub.publish(1, [TableChange(r, COLUMNS, (a,), added=(a,))])
    foreign = Commit(r, marker=0, operation="WRITE", timestamp_ms=1).to_bytes().replace(b'"lakeflux"', b'"other"')
    assert store.put_if_absent(paths.delta_commit(r, 1), foreign)
    pub.publish(2, [TableChange(r, COLUMNS, (a, b), added=(b,))])
    assert len(commits(store, "db", "t")) == 3
    assert live_paths(store, "db", "t") == {"date=2026-01-01/a.parquet", "date=2026-01-01/b.parquet"}
    head = read_head(2, store.get(paths.delta_commit(r, 2)), "k")
    assert head.marker == 2


def test_paths_in_the_log_are_relative_and_uri_encoded(tmp_path: Path):
    r = paths.table_prefix("node0", "my db", "cpu/%load")
    f = DataFile(key=f"{r}date=2026-01-01/00000000000000000001.parquet", size=1, rows=1, min_time=0, max_time=0)
    actions = [orjson.loads(x) for x in Commit(r, 1, "WRITE", 0, adds=(f,)).to_bytes().splitlines()]
    assert actions[1]["add"]["path"] == "date=2026-01-01/00000000000000000001.parquet"
    assert paths.table_root_of(f.key) == r


def test_a_snapshot_publishes_with_one_request_per_changed_table(tmp_path):
    """The Delta commit is one put-if-absent per changed table; only a process's first commit to a table
    it did not find at recovery lists its log first (a new table, or one re-created)."""
    store = CountingStore(FileStore(tmp_path / "d"), record_keys=True)
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)

    def delta_requests_of_a_snapshot(srv: InProcessServer, body: str) -> list[str]:
        ok(srv, "lake", body)
        store.reset()
        snapshot(srv)
        return sorted(op for op, key in store.requests if "/_delta_log/" in key)

    with InProcessServer(cfg, store=store) as srv:
        assert delta_requests_of_a_snapshot(srv, hours(0, 30) + f"\nmem free=1i {T0}") == \
            ["list", "list", "put_if_absent", "put_if_absent"]
        assert delta_requests_of_a_snapshot(srv, hours(30, 30)) == ["put_if_absent"]  # mem did not change
        assert delta_requests_of_a_snapshot(srv, f"cpu,host=h0 usage=1.5 {T0 + HOUR}") == ["put_if_absent"]
    with InProcessServer(cfg, store=store) as srv:  # recovery read each log's newest commit once
        assert delta_requests_of_a_snapshot(srv, hours(60, 30)) == ["put_if_absent"]


CPU_COLUMNS = ["host", "time", "usage"]


# --- checkpoints: every tenth version holds the state readers rebuild, and suffices alone ---------------
def checkpoint_actions(store, db: str, table: str, version: int) -> list[dict]:
    data = pq.read_table(pa.BufferReader(store.get(paths.delta_checkpoint(root(db, table), version))))
    return [{k: v for k, v in row.items() if v is not None} for row in data.to_pylist()]


def newest_metadata(store, db: str, table: str, version: int) -> dict:
    metas = [a["metaData"] for c in commits(store, db, table)[: version + 1] for a in c if "metaData" in a]
    return metas[-1]


def test_checkpoints_hold_the_state_readers_rebuild_and_suffice_alone(lake):
    with lake.start() as srv:
        for i in range(2 * CHECKPOINT_INTERVAL + 3):
            body = f"cpu,host=h{i % 3} usage={i}.5 {T0 + i * HOUR}"
            if i % 7 == 6:  # a late point inside an earlier file: that version removes it and adds its merger
                body += f"\ncpu,host=h9 usage=0.25 {T0 + (i - 4) * HOUR}"
            ok(srv, "lake", body)
            snapshot(srv)
        log = commits(lake.store, "lake", "cpu")
        assert len(log) == 2 * CHECKPOINT_INTERVAL + 3
        assert any("remove" in a for c in log for a in c)
        newest = 2 * CHECKPOINT_INTERVAL
        pointer = orjson.loads(lake.store.get(paths.delta_last_checkpoint(root("lake", "cpu"))))
        assert pointer["version"] == newest
        for version in (CHECKPOINT_INTERVAL, newest):
            actions = checkpoint_actions(lake.store, "lake", "cpu", version)
            assert [next(iter(a)) for a in actions[:2]] == ["protocol", "metaData"]
            assert actions[0]["protocol"] == {"minReaderVersion": 1, "minWriterVersion": 2}
            meta = newest_metadata(lake.store, "lake", "cpu", version)
            assert actions[1]["metaData"]["id"] == meta["id"]
            assert actions[1]["metaData"]["schemaString"] == meta["schemaString"]
            assert {a["add"]["path"] for a in actions[2:]} == live_paths(lake.store, "lake", "cpu", version)
            assert all(orjson.loads(a["add"]["stats"])["numRecords"] >= 1 for a in actions[2:])
        assert not lake.store.exists(paths.delta_checkpoint(root("lake", "cpu"), newest + 1))
        ours = lakeflux_rows(srv, "lake", "cpu", CPU_COLUMNS)
        assert len(ours) == 2 * CHECKPOINT_INTERVAL + 3 + 3
        # lakeflux's own listing of the table prefix never reads the checkpoint as data.
        assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": len(ours)}]
        assert srv.services.buffer.tables.rows == 0
        files = {f.key for f in persister(srv).manifest.files_of("lake", "cpu")}

    # The checkpoint and the commits after it are all a reader needs: drop every older commit.
    for version in range(newest):
        lake.store.delete(paths.delta_commit(root("lake", "cpu"), version))
    if lake.reader is not None:
        assert lake.reader.version("lake", "cpu") == newest + 2
        assert sorted_rows(lake.reader.rows("lake", "cpu"), CPU_COLUMNS) == ours
        uris = lake.reader.table("lake", "cpu").file_uris()
        assert {u[u.index(root("lake", "cpu")):] for u in uris} == files
    with lake.start() as srv:  # lakeflux reads only the newest commit: the trimmed log changes nothing
        assert lakeflux_rows(srv, "lake", "cpu", CPU_COLUMNS) == ours
        ok(srv, "lake", f"cpu,host=h0 usage=7.5 {T0 + 100 * HOUR}")
        snapshot(srv)
        names = {m.key.rsplit("/", 1)[1] for m in lake.store.list(paths.delta_log_prefix(root("lake", "cpu")))}
        assert names == {f"{v:020d}.json" for v in range(newest, newest + 4)} | {
            f"{v:020d}.checkpoint.parquet" for v in (CHECKPOINT_INTERVAL, newest)} | {"_last_checkpoint"}
