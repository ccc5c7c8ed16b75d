"""SIGKILL a real server at each step of publishing its tables' Delta commits (snapshots, compactions and a
table delete); after a restart every acknowledged row is there once for lakeflux's SQL, and an outside
reader (delta-rs) sees each table's Delta log name exactly the files lakeflux persisted: recovery wrote
the commits the crash left out, and none twice (issue 14).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from test_kill_during_compaction import ROWS, batch, check, time_of, write_batches
from test_kill_during_snapshot import SNAPSHOT_OFTEN, query, restart_after_kill

from lakeflux.store import paths
from lakeflux.testing.process import ServerProcess

pytest.importorskip("deltalake")

POINTS = ["snapshot.published", "compaction.published", "publish.table", "remove.committed", "remove.published",
          "remove.swapped"]
BATCHES = 16


def batch_with_mem(b: int) -> bytes:
    """The compaction test's batch (every snapshot compacts cpu) and a few rows of a second table, `mem`,
    so a snapshot publishes two tables."""
    mem = "\n".join(f"mem,batch=b{b} free={i}i {time_of(b, i)}" for i in range(0, ROWS, 10))
    return batch(b) + b"\n" + mem.encode()


def write(url: str, batches: range) -> set[int]:
    return write_batches(url, batches, batch_with_mem)


def delete_mem(url: str) -> None:
    req = urllib.request.Request(f"{url}/api/v3/configure/table?db=snap&table=mem", method="DELETE")
    try:
        with urllib.request.urlopen(req, timeout=30):
            pass
    except OSError:
        pass  # the failpoint killed the server


def delta_matches_the_manifest(data_dir, url: str) -> None:
    """Each table's newest Delta version names exactly its files in system.parquet_files, holding their rows
    once; a deleted table's Delta table is empty."""
    from deltalake import DeltaTable

    files = query(url, "SELECT table_name, path, row_count FROM system.parquet_files")
    for table in ("cpu", "mem"):
        root = paths.table_prefix("node0", "snap", table)
        ours = {f["path"][len(root):]: f["row_count"] for f in files if f["table_name"] == table}
        if not (data_dir / paths.delta_log_prefix(root)).exists():
            assert not ours, f"{table}: persisted files but no Delta log"
            continue
        dt = DeltaTable(str(data_dir / root))
        named = {uri[len(str(data_dir / root)) + 1:] for uri in dt.file_uris()}
        assert named == set(ours), f"{table}: Delta names other files than the manifest"
        rows = dt.to_pyarrow_dataset().to_table(columns=["batch", "time"])
        assert rows.num_rows == sum(ours.values())
        assert len(set(zip(rows.column("batch").to_pylist(), rows.column("time").to_pylist(), strict=True))) == \
            rows.num_rows, f"{table}: a row twice in the Delta table"


def published_once(data_dir) -> None:
    """No manifest was published twice to a table: the manifests its commits name only go up."""
    for log in data_dir.rglob("_delta_log"):
        markers = [json.loads(p.read_bytes().splitlines()[0])["commitInfo"]["lakeflux"]["manifest"]
                   for p in sorted(log.glob("*.json"))]
        assert markers == sorted(set(markers)), f"{log}: a manifest published twice: {markers}"


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_while_publishing(tmp_path, point):
    data = tmp_path / "data"
    srv = ServerProcess(data, *SNAPSHOT_OFTEN, env={"LAKEFLUX_FAILPOINT": point}).start()
    try:
        acked = write(srv.url, range(BATCHES // 2))
        if point.startswith("remove."):
            delete_mem(srv.url)
        else:
            acked |= write(srv.url, range(BATCHES // 2, BATCHES))
        srv = restart_after_kill(srv, point, acked)
        visible = check(srv.url, acked)
        delta_matches_the_manifest(data, srv.url)
        # Publishing goes on after recovery, and a second restart writes no commit again.
        last = max(visible)
        assert write(srv.url, range(last + 1, last + 3)) == {last + 1, last + 2}
        srv.stop()
        srv = ServerProcess(data, *SNAPSHOT_OFTEN, port=srv.port).start()
        check(srv.url, visible | {last + 1, last + 2})
        delta_matches_the_manifest(data, srv.url)
        published_once(data)
    finally:
        srv.stop()
