"""Issue 18, item 1: one write with an awkward name no longer stops every snapshot of every database.

Through a real server process on the file store: tables named `.`, `..`, 300 ASCII characters, 30 CJK
characters (270 bytes escaped) or 5,000 characters are accepted as InfluxDB 3 Core accepts them, persisted
under keys every store takes (no file name over 255 bytes), queryable before and after a restart, and the
other databases keep persisting meanwhile. Database names follow Core's rules and messages (up to 511
bytes, which now persist too)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import pytest

from lakeflux.catalog.names import DB_NAME_BAD_CHAR, DB_NAME_BAD_RP, DB_NAME_BAD_START
from lakeflux.testing.chaos import post, query
from lakeflux.testing.process import ServerProcess

pytestmark = pytest.mark.slow

T0 = 1_700_000_000_000_000_000
TABLES = [".", "..", "x" * 300, "中" * 30, "y" * 5000, "%2E", "a/b"]
LONG_DB = "d" * 511


def sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write(url: str, db: str, body: str) -> tuple[int | None, bytes]:
    out = post(f"{url}/api/v3/write_lp?db={urllib.parse.quote(db, safe='')}", body.encode())
    return out.status, out.body


def persisted_tables(url: str, db: str) -> set[str]:
    return {r["table_name"] for r in query(url, db, "SELECT table_name FROM system.parquet_files")}


def wait_persisted(url: str, db: str, tables: set[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        have = persisted_tables(url, db)
        if tables <= have:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{db}: tables {sorted(t[:20] for t in tables - have)} never persisted")
        # Each write is a WAL segment; a snapshot is due every 2 segments.
        assert write(url, "control", f"tick v=1i {T0}")[0] == 204
        time.sleep(0.2)


def values(url: str, db: str, table: str) -> list[int]:
    return sorted(r["v"] for r in query(url, db, f"SELECT v FROM {sql_name(table)}"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("names") / "data"


def serve(data_dir) -> ServerProcess:
    return ServerProcess(data_dir, "--without-auth", "--wal-flush-interval", "10ms", "--wal-snapshot-size", "2").start()


@pytest.fixture(scope="module")
def written(data_dir):
    """A server that took the awkward names and persisted them (stopped at the end)."""
    srv = serve(data_dir)
    try:
        for i, name in enumerate(TABLES):
            measurement = name.replace(",", "\\,").replace(" ", "\\ ")
            assert write(srv.url, "names", f"{measurement},k=a v={i}i {T0 + i}")[0] == 204, name[:20]
        assert write(srv.url, "control", f"cpu v=7i {T0}")[0] == 204
        assert write(srv.url, LONG_DB, f"m v=9i {T0}")[0] == 204
        wait_persisted(srv.url, "names", set(TABLES))
        wait_persisted(srv.url, "control", {"cpu"})
        wait_persisted(srv.url, LONG_DB, {"m"})
        yield srv
    finally:
        srv.stop()


def test_awkward_table_names_persist_and_stay_queryable(written):
    for i, name in enumerate(TABLES):
        assert values(written.url, "names", name) == [i], name[:20]
    assert values(written.url, "control", "cpu") == [7]
    assert values(written.url, LONG_DB, "m") == [9]
    assert "invalid object key" not in written.log() and "File name too long" not in written.log()


def test_every_file_name_fits_a_local_filesystem(written, data_dir):
    for _, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            assert len(name.encode()) <= 255, name[:40]


def test_names_survive_a_restart(written, data_dir):
    written.stop()
    again = serve(data_dir)
    try:
        for i, name in enumerate(TABLES):
            assert values(again.url, "names", name) == [i], name[:20]
        assert values(again.url, LONG_DB, "m") == [9]
        listed = {r["table_name"] for r in query(again.url, "names", "SHOW TABLES") if r["table_schema"] == "iox"}
        assert set(TABLES) <= listed
    finally:
        again.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("dbnames") / "data", "--without-auth").start()
    yield srv
    srv.stop()


@pytest.mark.parametrize(("db", "message"), [
    ("..", DB_NAME_BAD_START),
    ("_x", DB_NAME_BAD_START),
    ("a.b", DB_NAME_BAD_CHAR),
    ("中", DB_NAME_BAD_CHAR),
    ("a/b/c", DB_NAME_BAD_RP),
    ("a/", DB_NAME_BAD_RP),
    ("d" * 512, "db name too long: max 511"),
])
def test_bad_database_names_get_cores_messages(plain, db, message):
    status, body = write(plain.url, db, f"m v=1i {T0}")
    assert status == 400
    assert json.loads(body)["error"] == message
