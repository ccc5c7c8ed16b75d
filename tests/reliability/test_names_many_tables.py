"""Issue 18, item 10: what each table costs. A write creating a table used to deep-copy the whole catalog
(2 s per write at 40,000 tables, 13 s at 120,000); it now copies only what it changes.

Through the server's write path (HTTP, catalog commit) on many tables in several databases: the state after
a table-creating write shares every unchanged database and table with the state before it, and the state
before it is left as it was (readers keep a consistent view). Timings are measured by benchmarks/tables.py,
never asserted here."""

from __future__ import annotations

from pathlib import Path

from lakeflux.config import Config
from lakeflux.testing.server import InProcessServer

T0 = 1_700_000_000_000_000_000
DBS = 3
TABLES = 400


def config(tmp_path: Path) -> Config:
    return Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.01, without_auth=True)


def body(names: list[str], field: str = "v") -> str:
    return "\n".join(f"{n},host=a {field}={i}i {T0 + i}" for i, n in enumerate(names))


def test_a_table_creating_write_copies_only_what_it_changes(tmp_path):
    with InProcessServer(config(tmp_path)) as srv:
        for d in range(DBS):
            for first in range(0, TABLES, 100):
                assert srv.write(f"db{d}", body([f"t{i}" for i in range(first, first + 100)])).status == 204
        catalog = srv.services.catalog
        before = catalog.state
        tables_before = {(db, t): tdef for db, d in before.databases.items() for t, tdef in d.tables.items()}

        assert srv.write("db0", body(["new"])).status == 204  # a new table
        assert srv.write("db1", body(["t7"], field="extra")).status == 204  # a new column
        after = catalog.state

        assert "new" not in before.databases["db0"].tables and "extra" not in before.databases["db1"].tables["t7"].columns
        assert "new" in after.databases["db0"].tables and "extra" in after.databases["db1"].tables["t7"].columns
        assert after.databases["db2"] is before.databases["db2"]
        assert after.databases["_internal"] is before.databases["_internal"]
        shared = [key for key, tdef in tables_before.items() if after.databases[key[0]].tables[key[1]] is tdef]
        assert len(shared) == len(tables_before) - 1  # all but the table that got a column
        assert after.databases["db1"].tables["t7"] is not tables_before[("db1", "t7")]
        assert srv.query("db1", "SELECT extra FROM t7 WHERE extra IS NOT NULL") == [{"extra": 0}]

    with InProcessServer(config(tmp_path), store=srv.services.store) as again:
        state = again.services.catalog.state
        assert sum(len(d.tables) for d in state.databases.values()) == DBS * TABLES + 1
