"""Found by the crash storm: once two tables of a database had persisted files, a query naming one whose
name contains the other's ("t1" in "t13", "cpu" in "cpu_load") failed with "The table b already exists":
every table's scratch parts were registered under the same names."""

from __future__ import annotations

from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


def snapshot(srv: InProcessServer) -> None:
    assert srv.services is not None
    srv.call(srv.services.buffer.snapshot())


def check_tables_with_files(srv: InProcessServer) -> None:
    assert srv.write("db", "cpu,host=a v=1 1700000000000000000\ncpu_load,host=a v=2 1700000000000000000").status == 204
    snapshot(srv)
    assert srv.write("db", "cpu,host=b v=3 1700000001000000000\ncpu_load,host=b v=4 1700000001000000000").status == 204
    assert srv.query("db", "SELECT count(*) AS n FROM cpu_load") == [{"n": 2}]
    joined = srv.query("db", "SELECT a.host, a.v AS x, b.v AS y FROM cpu a JOIN cpu_load b USING (host, time) "
                             "ORDER BY a.host")
    assert joined == [{"host": "a", "x": 1.0, "y": 2.0}, {"host": "b", "x": 3.0, "y": 4.0}]


def test_two_tables_with_files_memory_store(fast_config):
    with InProcessServer(fast_config, store=MemoryStore()) as srv:
        check_tables_with_files(srv)


def test_two_tables_with_files_file_store(fast_config, tmp_path):
    with InProcessServer(fast_config.with_changes(object_store="file"), store=FileStore(tmp_path / "lake")) as srv:
        check_tables_with_files(srv)
