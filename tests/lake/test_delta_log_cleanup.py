"""Delta log cleanup: once a table is checkpointed, housekeeping deletes its commits and checkpoints older than
the log retention and than the newest checkpoint that old (the Delta protocol's metadata cleanup); readers
still read every row, one that listed the log within the retention still finds what it needs, and a failed
delete is retried. Time is injected: file ages are the store's modification times, `now` is passed in.
"""

from __future__ import annotations

import logging
import os
import time

import duckdb
import orjson
import pytest
import test_open_tables
from delta_reading import DeltaReader, root, sorted_rows
from test_open_tables import DAY, HOUR, T0, lakeflux_rows, ok, persister, snapshot

from lakeflux.model import ColumnKind
from lakeflux.store import paths
from lakeflux.store.base import ObjectMeta, ObjectStore
from lakeflux.store.file import FileStore
from lakeflux.tableformat import LOG_RETENTION_S, DataFile, Publisher, TableChange
from lakeflux.tableformat.delta import CHECKPOINT_INTERVAL, RETENTION_KEY, expired_log_files
from lakeflux.testing.faulty import CountingStore, FaultyStore

pytest.importorskip("deltalake")
lake = test_open_tables.lake  # the fixture (file and S3 here)

COLUMNS = ["host", "time", "usage"]
TABLE = paths.table_prefix("node0", "db", "cpu")
KINDS = {"host": ColumnKind.TAG, "time": ColumnKind.TIME, "usage": ColumnKind.FLOAT64}
RETENTION_NS = int(LOG_RETENTION_S * 1e9)


def names(store: ObjectStore, table_root: str = TABLE) -> set[str]:
    return {m.key.rsplit("/", 1)[1] for m in store.list(paths.delta_log_prefix(table_root))}


def log_names(versions: range, checkpoints: tuple[int, ...]) -> set[str]:
    return {f"{v:020d}.json" for v in versions} | {f"{v:020d}.checkpoint.parquet" for v in checkpoints} | {
        "_last_checkpoint"}


class Table:
    """One table published version by version (no data files behind it: the log alone is under test)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.publisher = Publisher(store)
        self.live: list[DataFile] = []

    def publish(self, n: int) -> None:
        for _ in range(n):
            marker = len(self.live) + 1
            f = DataFile(paths.table_file("node0", "db", "cpu", "2026-01-01", f"{marker:020d}"), 100, 1, T0, T0)
            self.live.append(f)
            assert self.publisher.publish(marker, [TableChange(TABLE, KINDS, tuple(self.live), (f,))]) == 1

    def age(self, versions: range, days: float) -> None:
        """Make the commits and checkpoints of these versions look `days` old (file store only)."""
        assert isinstance(self.store, FileStore)
        when = time.time() - days * 86_400
        for m in self.store.list(paths.delta_log_prefix(TABLE)):
            parsed = paths.delta_log_file(TABLE, m.key)
            if parsed is not None and parsed[0] in versions:
                os.utime(self.store.root / m.key, (when, when))


def test_old_commits_and_checkpoints_go_the_newest_checkpoint_and_later_commits_stay(tmp_path):
    table = Table(FileStore(tmp_path))
    table.publish(3 * CHECKPOINT_INTERVAL + 5)  # versions 0..34, checkpoints 10, 20, 30
    assert table.publisher.cleanup_due() == 1
    # Within the retention nothing goes, however many checkpoints there are.
    assert table.publisher.clean_logs(time.time_ns()) == 0
    assert names(table.store) == log_names(range(35), (10, 20, 30))
    assert table.publisher.cleanup_due() == 0  # done until the next checkpoint
    table.publish(CHECKPOINT_INTERVAL)  # versions 35..44, checkpoint 40
    # A month later: everything before the newest checkpoint goes, oldest first.
    assert table.publisher.clean_logs(time.time_ns() + RETENTION_NS + DAY) == 40 + 3
    assert names(table.store) == log_names(range(40, 45), (40,))
    assert orjson.loads(table.store.get(paths.delta_last_checkpoint(TABLE)))["version"] == 40
    # The next commit reads the log head as before (a new process lists it).
    again = Publisher(table.store)
    assert again.version_of(TABLE) is None
    f = DataFile(paths.table_file("node0", "db", "cpu", "2026-01-02", f"{99:020d}"), 100, 1, T0 + DAY, T0 + DAY)
    assert again.publish(99, [TableChange(TABLE, KINDS, (*table.live, f), (f,))]) == 1
    assert again.version_of(TABLE) == 45


def test_a_reader_that_listed_within_the_retention_keeps_its_checkpoint_and_commits(tmp_path):
    table = Table(FileStore(tmp_path))
    table.publish(4 * CHECKPOINT_INTERVAL)  # versions 0..39, checkpoints 10, 20, 30
    table.age(range(40), days=40)
    # A reader lists the log now: it starts from checkpoint 30 and replays 31..39.
    listed = names(table.store)
    needs = {f"{30:020d}.checkpoint.parquet"} | {f"{v:020d}.json" for v in range(30, 40)}
    assert needs <= listed
    table.publish(1)  # version 40 and its checkpoint: new, so version 39 is the newest commit past retention
    assert table.publisher.clean_logs(time.time_ns()) == 30 + 2
    assert names(table.store) == log_names(range(30, 41), (30, 40))
    assert needs <= names(table.store)


def test_the_table_records_its_log_retention(tmp_path):
    store = FileStore(tmp_path)
    table = Table(store)
    table.publish(CHECKPOINT_INTERVAL + 1)
    first = [orjson.loads(line) for line in store.get(paths.delta_commit(TABLE, 0)).splitlines()]
    meta = next(a["metaData"] for a in first if "metaData" in a)
    assert meta["configuration"] == {RETENTION_KEY: "interval 30 days"}
    # A new retention (a restart with another --delta-log-retention) goes into the next commit's metaData.
    table.publisher.log_retention_s = 36 * 3600.0
    table.publish(1)
    newest = [orjson.loads(line) for line in store.get(paths.delta_commit(TABLE, CHECKPOINT_INTERVAL + 1)).splitlines()]
    assert next(a["metaData"] for a in newest if "metaData" in a)["configuration"] == {
        RETENTION_KEY: "interval 129600 seconds"}
    assert not any("metaData" in a for a in [orjson.loads(line) for line in store.get(
        paths.delta_commit(TABLE, 1)).splitlines()])  # unchanged properties: no metaData
    t = DeltaReader(data_dir=tmp_path).table("db", "cpu").metadata()
    assert t.configuration == {RETENTION_KEY: "interval 129600 seconds"}


def meta(version: int, rest: str, at: int) -> ObjectMeta:
    return ObjectMeta(f"{paths.delta_log_prefix(TABLE)}{version:020d}.{rest}", 10, at)


def kept(listing: list[ObjectMeta], until: int, cutoff: int) -> list[str]:
    gone = set(expired_log_files(TABLE, listing, until, cutoff))
    return sorted(m.key.removeprefix(paths.delta_log_prefix(TABLE)) for m in listing if m.key not in gone)


def test_cleanup_off_keeps_every_log_file_and_records_no_retention(tmp_path):
    """--delta-log-retention off: nothing is ever deleted, and the tables' metaData names no retention."""
    table = Table(FileStore(tmp_path))
    table.publisher.log_retention_s = None
    table.publish(3 * CHECKPOINT_INTERVAL + 5)
    table.age(range(35), days=400)
    assert table.publisher.clean_logs(time.time_ns() + 400 * DAY) == 0
    assert names(table.store) == log_names(range(35), (10, 20, 30))
    first = [orjson.loads(line) for line in table.store.get(paths.delta_commit(TABLE, 0)).splitlines()]
    assert next(a["metaData"] for a in first if "metaData" in a)["configuration"] == {}


def test_the_cleanup_rule():
    old, new = 100, 200
    listing = [meta(v, "json", old) for v in range(25)] + [meta(v, "checkpoint.parquet", old) for v in (10, 20)]
    listing += [meta(3, "crc", old), ObjectMeta(f"{paths.delta_log_prefix(TABLE)}_last_checkpoint", 10, old),
                ObjectMeta(f"{paths.delta_log_prefix(TABLE)}_sidecars/{1:020d}.parquet", 10, old)]
    assert kept(listing, 20, cutoff=150) == sorted(
        [f"{v:020d}.json" for v in range(20, 25)] + [f"{20:020d}.checkpoint.parquet", "_last_checkpoint",
                                                     "_sidecars/00000000000000000001.parquet"])
    # Oldest first.
    assert [paths.delta_log_file(TABLE, k) for k in expired_log_files(TABLE, listing, 20, 150)][:3] == [
        (0, "json"), (1, "json"), (2, "json")]
    # `_last_checkpoint` naming an older checkpoint bounds it; nothing past retention: nothing goes.
    assert f"{10:020d}.checkpoint.parquet" in kept(listing, 19, cutoff=150)
    assert len(kept(listing, 20, cutoff=50)) == len(listing)
    # A commit modified after the cut-off keeps itself and every later version (clocks may disagree).
    skewed = [m if m.key.rsplit("/", 1)[1] != f"{15:020d}.json" else meta(15, "json", new) for m in listing]
    assert f"{10:020d}.checkpoint.parquet" in kept(skewed, 20, cutoff=150)
    assert f"{9:020d}.json" not in kept(skewed, 20, cutoff=150)
    # A checkpoint without its commit is no cut-off (the protocol keeps the commit at the cut-off).
    no_commit = [m for m in listing if m.key.rsplit("/", 1)[1] != f"{20:020d}.json"]
    assert f"{10:020d}.checkpoint.parquet" in kept(no_commit, 20, cutoff=150)
    # No checkpoint: nothing goes.
    assert expired_log_files(TABLE, [meta(v, "json", old) for v in range(25)], 20, 150) == []


def test_a_failed_delete_is_logged_and_retried_and_a_restart_cleans_at_the_next_checkpoint(tmp_path, caplog):
    store = FaultyStore(FileStore(tmp_path))
    table = Table(store)
    table.publish(2 * CHECKPOINT_INTERVAL + 1)  # checkpoints 10, 20
    later = time.time_ns() + RETENTION_NS + DAY
    store.fail_before("delete", contains=f"{5:020d}.json", times=1)
    with caplog.at_level(logging.WARNING, logger="lakeflux.tableformat"):
        assert table.publisher.clean_logs(later) == 5  # 0..4, oldest first: the log has no gap
    assert "Delta log cleanup" in caplog.text
    assert names(store) == log_names(range(5, 21), (10, 20))
    assert table.publisher.cleanup_due() == 1  # due again
    assert table.publisher.clean_logs(later) == 15 + 1
    assert names(store) == log_names(range(20, 21), (20,))

    # A crash in the middle of a cleanup (a delete that never returns): the next process's first checkpoint
    # of the table cleans everything older.
    table.publish(CHECKPOINT_INTERVAL)  # checkpoint 30
    store.fail_before("delete", contains=f"{25:020d}.json", times=1)
    assert table.publisher.clean_logs(later) == 2 + 4  # checkpoint 20 and commit 20, commits 21..24
    restarted = Table(store)
    restarted.live = list(table.live)
    assert restarted.publisher.cleanup_due() == 0
    restarted.publish(CHECKPOINT_INTERVAL)  # checkpoint 40
    assert restarted.publisher.clean_logs(later) == 15 + 1
    assert names(store) == log_names(range(40, 41), (40,))


@pytest.mark.parametrize("lake", ["file", pytest.param("s3", marks=pytest.mark.s3)], indirect=True)
def test_housekeeping_cleans_the_log_and_outside_readers_read_every_row(lake):
    cpu = root("lake", "cpu")
    with lake.start() as srv:
        for i in range(3 * CHECKPOINT_INTERVAL + 3):
            ok(srv, "lake", f"cpu,host=h{i % 3} usage={i}.5 {T0 + i * HOUR}")
            snapshot(srv)
        buffer = srv.services.buffer
        srv.call(buffer.housekeep())  # within the retention: nothing goes
        assert len(names(lake.store, cpu)) == 3 * CHECKPOINT_INTERVAL + 3 + 3 + 1
        ok(srv, "lake", f"cpu,host=h9 usage=0.5 {T0 + 5 * HOUR}")  # a late point: its version removes a file
        snapshot(srv)
        for i in range(CHECKPOINT_INTERVAL - 2):
            ok(srv, "lake", f"cpu,host=h1 usage={i}.25 {T0 + (40 + i) * HOUR}")
            snapshot(srv)
        newest = 4 * CHECKPOINT_INTERVAL
        assert persister(srv).publisher.version_of(cpu) == newest + 1
        buffer._now_ns = lambda: time.time_ns() + RETENTION_NS + DAY
        srv.call(buffer.housekeep())
        assert names(lake.store, cpu) == {f"{v:020d}.json" for v in (newest, newest + 1)} | {
            f"{newest:020d}.checkpoint.parquet", "_last_checkpoint"}
        ours = lakeflux_rows(srv, "lake", "cpu", COLUMNS)
        assert len(ours) == 3 * CHECKPOINT_INTERVAL + 3 + 1 + CHECKPOINT_INTERVAL - 2
        files = {f.key for f in persister(srv).manifest.files_of("lake", "cpu")}
    assert lake.reader is not None
    assert lake.reader.version("lake", "cpu") == newest + 1
    assert sorted_rows(lake.reader.rows("lake", "cpu"), COLUMNS) == ours
    uris = lake.reader.table("lake", "cpu").file_uris()
    assert {u[u.index(cpu):] for u in uris} == files
    if lake.reader.data_dir is not None:  # DuckDB over the files the cleaned log lists
        got = duckdb.sql(f"SELECT host, CAST(epoch_ns(time) AS BIGINT) AS time, usage FROM read_parquet({uris!r})")
        assert sorted(got.fetchall()) == ours
    with lake.start() as srv:  # a restart reads the cleaned log's head and goes on
        ok(srv, "lake", f"cpu,host=h2 usage=9.5 {T0 + 100 * HOUR}")
        snapshot(srv)
        assert persister(srv).publisher.version_of(cpu) == newest + 2
    assert len(lake.reader.rows("lake", "cpu")) == len(ours) + 1


def test_a_new_process_reads_each_tables_log_head_once_many_at_a_time(tmp_path):
    """Recovery publishes every table: the heads are read up front, several at once, one list and one get
    each (a cleaned log is shorter to list), and each table then gets its commit after its own head."""
    store = CountingStore(FileStore(tmp_path), record_keys=True)
    first = Publisher(store)
    roots = [paths.table_prefix("node0", "db", f"t{i}") for i in range(20)]

    def changes(marker: int) -> list[TableChange]:
        out = []
        for i, table_root in enumerate(roots):
            f = DataFile(paths.table_file("node0", "db", f"t{i}", "2026-01-01", f"{marker:020d}"), 100, 1, T0, T0)
            out.append(TableChange(table_root, KINDS, (f,), (f,)))
        return out

    for marker in range(1, 4):
        assert first.publish(marker, changes(marker)) == len(roots)
    store.calls.clear()
    restarted = Publisher(store)
    assert restarted.publish(3, changes(3)) == 0  # published already: found by the marker, nothing written
    assert dict(store.calls) == {"list": len(roots), "get": len(roots)}
    assert restarted.publish(4, changes(4)) == len(roots)
    assert dict(store.calls) == {"list": len(roots), "get": len(roots), "put_if_absent": len(roots)}
    assert {restarted.version_of(r) for r in roots} == {3}
