"""Delta checkpoints (more in test_open_tables.py, on every store): the documented DuckDB glob never takes
a checkpoint for data, and a checkpoint that cannot be written leaves the commit made and is logged.
"""

from __future__ import annotations

import logging

import duckdb
import orjson
import pytest
from delta_reading import root
from test_open_tables import HOUR, T0, lakeflux_rows, ok, snapshot

from lakeflux.config import Config
from lakeflux.model import ColumnKind
from lakeflux.store import paths
from lakeflux.store.file import FileStore
from lakeflux.tableformat import DataFile, Publisher, TableChange
from lakeflux.tableformat.delta import CHECKPOINT_INTERVAL
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.server import InProcessServer

pytest.importorskip("deltalake")

COLUMNS = ["host", "time", "usage"]


def test_the_documented_duckdb_glob_skips_the_log(tmp_path):
    cfg = Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)
    with InProcessServer(cfg) as srv:
        for i in range(CHECKPOINT_INTERVAL + 1):
            ok(srv, "lake", f"cpu,host=h{i % 2} usage={i}.0 {T0 + i * HOUR}")
            snapshot(srv)
        ours = lakeflux_rows(srv, "lake", "cpu", COLUMNS)
    prefix = tmp_path / "d" / root("lake", "cpu")
    assert (prefix / "_delta_log" / f"{CHECKPOINT_INTERVAL:020d}.checkpoint.parquet").exists()
    got = duckdb.sql(f"SELECT host, CAST(epoch_ns(time) AS BIGINT) AS time, usage "
                     f"FROM read_parquet('{prefix}/date=*/*.parquet')").fetchall()
    assert sorted(got) == ours


def test_a_checkpoint_that_cannot_be_written_leaves_the_commit_and_is_logged(tmp_path, caplog):
    store = FaultyStore(FileStore(tmp_path))
    store.fail_before("put", contains=".checkpoint.", times=1)
    publisher = Publisher(store, checkpoint_interval=2)
    table = paths.table_prefix("node0", "db", "cpu")
    columns = {"host": ColumnKind.TAG, "time": ColumnKind.TIME, "usage": ColumnKind.FLOAT64}
    live: list[DataFile] = []
    with caplog.at_level(logging.WARNING, logger="lakeflux.tableformat"):
        for version in range(5):
            f = DataFile(paths.table_file("node0", "db", "cpu", "2026-01-01", f"{version:020d}"), 100, 1,
                         T0 + version, T0 + version)
            live.append(f)
            assert publisher.publish(version + 1, [TableChange(table, columns, tuple(live), (f,))]) == 1
    assert [paths.parse_seq(m.key) for m in store.list(paths.delta_log_prefix(table)) if m.key.endswith(".json")] \
        == [0, 1, 2, 3, 4]
    assert not store.exists(paths.delta_checkpoint(table, 2))  # its put failed
    assert "Delta checkpoint 2" in caplog.text
    assert store.exists(paths.delta_checkpoint(table, 4))  # the next one is written
    assert orjson.loads(store.get(paths.delta_last_checkpoint(table)))["version"] == 4
