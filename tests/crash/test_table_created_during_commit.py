"""A table created while a WAL segment is being committed is stamped with the sequence after that
segment. If the server is killed before the segment lands, the WAL ends below the stamp; the restarted
server must still number its segments from the stamp on, or the table's next rows, acknowledged with
204, are dropped as rows of an earlier table of the same name (the crash storm found this)."""

from __future__ import annotations

import json
import urllib.request

from lakeflux.catalog import Catalog
from lakeflux.store.file import FileStore
from lakeflux.testing.process import ServerProcess
from lakeflux.wal import Wal


def post(url: str, body: bytes) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=60) as r:
        return r.status


def count(url: str, table: str) -> int:
    req = urllib.request.Request(f"{url}/api/v3/query_sql", method="POST",
                                 data=json.dumps({"db": "db", "q": f"SELECT count(*) AS n FROM {table}"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())[0]["n"]


def test_rows_of_a_table_stamped_past_the_wal_end_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    srv = ServerProcess(data, "--without-auth", "--object-store", "file").start()
    try:
        assert post(f"{srv.url}/api/v3/write_lp?db=db", b"t0,h=a v=1 1") == 204
    finally:
        srv.kill()

    # The state the kill leaves: segment N was in flight (never landed) when a write created `late`,
    # stamped N + 1, and committed it to the catalog.
    store = FileStore(data)
    wal_end = max(Wal(store, "node0", "probe").list_seqs())
    catalog = Catalog(store, "node0")
    catalog.load()
    catalog.commit([{"op": "create_table", "db": "db", "table": "late", "wal_seq": wal_end + 2,
                     "columns": [["h", "tag"], ["v", "float64"], ["time", "time"]]}])

    srv = ServerProcess(data, "--without-auth", "--object-store", "file").start()
    try:
        body = "\n".join(f"late,h=a v={i} {i + 1}" for i in range(100)).encode()
        assert post(f"{srv.url}/api/v3/write_lp?db=db", body) == 204
        assert count(srv.url, "late") == 100  # queryable once acknowledged
        srv.kill()
        srv = ServerProcess(data, "--without-auth", "--object-store", "file", port=srv.port).start()
        assert count(srv.url, "late") == 100  # and replayed after a crash
    finally:
        srv.stop()
