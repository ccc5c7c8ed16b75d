"""SIGKILL a real server at each step of a snapshot; after a restart every acknowledged row is there
exactly once, and later snapshots still work (issue: the lake, done-when 3)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from lakeflux.testing.process import ServerProcess

ROWS = 500
T0 = 1_767_225_600 * 10**9
HOUR = 3_600 * 10**9
POINTS = ["snapshot.staged", "snapshot.committed", "snapshot.copying", "snapshot.swapped", "snapshot.cleaned"]
# Snapshot after every flush, trim every covered WAL segment: each step of the protocol runs.
SNAPSHOT_OFTEN = ["--without-auth", "--force-snapshot-mem-threshold", "1", "--snapshotted-wal-files-to-keep", "0"]


def batch(b: int) -> bytes:
    """Rows of two tables spread over several days, so a snapshot writes several files."""
    lines = []
    for i in range(ROWS):
        t = T0 + (b * ROWS + i) * HOUR // 7
        lines.append(f"cpu,host=h{i % 3},batch=b{b} v={i}i {t}")
        if i % 5 == 0:
            lines.append(f"mem,batch=b{b} free={i}.5 {t}")
    return "\n".join(lines).encode()


MEM_PER_BATCH = len(range(0, ROWS, 5))


def post(url: str, body: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def query(url: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{url}/api/v3/query_sql", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"db": "snap", "q": sql, "format": "json"}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def counts(url: str, table: str) -> dict[int, int]:
    rows = query(url, f"SELECT batch, count(*) AS n, count(DISTINCT time) AS d FROM {table} GROUP BY batch")
    for r in rows:
        assert r["n"] == r["d"], f"{table} batch {r['batch']} has duplicated rows"
    return {int(r["batch"][1:]): r["n"] for r in rows}


def check(url: str, acked: set[int]) -> set[int]:
    cpu, mem = counts(url, "cpu"), counts(url, "mem")
    for b in acked:
        assert cpu.get(b) == ROWS and mem.get(b) == MEM_PER_BATCH, f"acknowledged batch {b} incomplete"
    for b, n in cpu.items():
        assert n == ROWS and mem.get(b) == MEM_PER_BATCH, f"batch {b} half-visible"
    return set(cpu)


def restart_after_kill(srv: ServerProcess, point: str, acked: set[int]) -> ServerProcess:
    """Wait for the failpoint's SIGKILL, then start the server again on the same data (no failpoint)."""
    assert srv.proc is not None
    srv.proc.wait(timeout=60)
    assert srv.proc.returncode == -9, f"the failpoint {point} never fired"
    assert acked, "nothing was acknowledged before the crash"
    assert srv.data_dir is not None
    return ServerProcess(srv.data_dir, *SNAPSHOT_OFTEN, port=srv.port).start()


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_inside_snapshot(tmp_path, point):
    data = tmp_path / "data"
    srv = ServerProcess(data, *SNAPSHOT_OFTEN, env={"LAKEFLUX_FAILPOINT": point}).start()
    acked: set[int] = set()
    try:
        for b in range(20):
            try:
                if post(f"{srv.url}/api/v3/write_lp?db=snap", batch(b)) == 204:
                    acked.add(b)
            except OSError:
                break  # the failpoint killed the server
        srv = restart_after_kill(srv, point, acked)
        visible = check(srv.url, acked)
        # Snapshots keep working after recovery, and a second restart sees the same rows.
        more = {b for b in range(20, 24) if post(f"{srv.url}/api/v3/write_lp?db=snap", batch(b)) == 204}
        srv.stop()
        srv = ServerProcess(data, *SNAPSHOT_OFTEN, port=srv.port).start()
        assert check(srv.url, visible | more) == visible | more
        files = query(srv.url, "SELECT count(*) AS n FROM system.parquet_files")[0]["n"]
        assert files > 0
    finally:
        srv.stop()
