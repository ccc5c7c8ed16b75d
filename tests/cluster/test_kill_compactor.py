"""SIGKILL a real compactor at each step of a compaction, and a real ingest node at each step of retiring what
the compactor absorbed (issue 15): after a restart every acknowledged row is there exactly once on the query
node and on the ingest node, late writes still win their points' fields, the restarted compactor goes on
from the newest manifest (no file of its unfinished round is left), and the compacted table's Delta log
lists exactly the compacted files.

Every batch writes new points and, in the same request, rewrites the points of the batch before it with one
more field (`late`): once the earlier batch is sealed in a file, the rewrite lands in a new file that the
compactor must merge in write order.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cluster_nodes import compacted_delta_files, eventually

from lakeflux.buffer.manifest import load_latest
from lakeflux.cluster import compaction
from lakeflux.store import paths
from lakeflux.store.file import FileStore
from lakeflux.testing.process import ServerProcess

ROWS = 100
T0 = 1_767_225_600 * 10**9
HOUR = 3_600 * 10**9
CLUSTER = "c1"
# Snapshot after every flush (a file per batch), compact every 200 ms, delete replaced compacted files at once.
COMMON = ("--without-auth", "--cluster-id", CLUSTER, "--wal-flush-interval", "50ms",
          "--force-snapshot-mem-threshold", "1", "--snapshotted-wal-files-to-keep", "0",
          "--catalog-sync-interval", "200ms", "--replication-interval", "100ms")
COMPACTOR = ("--node-id", "c1", "--mode", "compact", "--compaction-check-interval", "200ms",
             "--compaction-cleanup-wait", "1ms")
INGEST = ("--node-id", "i1", "--mode", "ingest")
QUERY = ("--node-id", "q1", "--mode", "query")
COMPACTOR_STEPS = ["written", "committed", "published", "cleaned"]
RETIRE_STEPS = ["trashed", "committed", "published", "retiring", "swapped"]


def time_of(b: int, i: int) -> int:
    return T0 + (b * ROWS + i) * HOUR // 10


def batch(b: int) -> bytes:
    """Batch b's points, then batch b-1's points again with `late=b` (their `v` is kept)."""
    lines = [f"cpu,host=h{i % 3},batch=b{b} v={i}i {time_of(b, i)}" for i in range(ROWS)]
    if b > 0:
        lines += [f"cpu,host=h{i % 3},batch=b{b - 1} late={b}i {time_of(b - 1, i)}" for i in range(ROWS)]
    return "\n".join(lines).encode()


def post(url: str, body: bytes) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def query(url: str, sql: str) -> list[dict]:
    req = urllib.request.Request(f"{url}/api/v3/query_sql", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"db": "snap", "q": sql, "format": "json"}).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{url}: {sql!r} failed with {e.code}: {e.read()[:1000]!r}") from None


def write(url: str, batches: range) -> set[int]:
    acked = set()
    for b in batches:
        status = post(f"{url}/api/v3/write_lp?db=snap", batch(b))
        if status == 204:
            acked.add(b)
        elif status is None:
            break  # the failpoint killed the server
    return acked


def check(url: str, acked: set[int]) -> set[int] | str:
    """The visible batches if each is whole and once, `v` intact, `late` from the next batch exactly when that
    one is visible; otherwise what is wrong."""
    columns = {r["column_name"] for r in query(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'cpu'")}
    # `late` exists once batch 1 was written: a failpoint may fire after batch 0 alone.
    late = "late" if "late" in columns else "CAST(NULL AS BIGINT)"
    rows = query(url, f"SELECT batch, count(*) AS n, count(DISTINCT time) AS d, count(v) AS v, "
                      f"min({late}) AS lo, max({late}) AS hi, count({late}) AS l FROM cpu GROUP BY batch")
    seen = {int(r["batch"][1:]): r for r in rows}
    if not acked <= set(seen):
        return f"acknowledged batches missing: {sorted(acked - set(seen))}"
    for b, r in seen.items():
        if not r["n"] == r["d"] == r["v"] == ROWS:
            return f"batch {b} not exactly once: {r}"
        if b + 1 in seen and (r["lo"], r["hi"], r["l"]) != (b + 1, b + 1, ROWS):
            return f"batch {b} lost its late write: {r}"
        if b + 1 not in seen and r["l"] != 0:
            return f"batch {b} has a late write from an invisible batch: {r}"
    return set(seen)


def settled(store: FileStore) -> bool:
    """The compactor absorbed everything i1 sealed, i1 retired it, and the Delta log follows."""
    newest = compaction.load_newest(store, CLUSTER)
    node = load_latest(store, "i1")[0]
    return bool(newest.files) and not node.files and node.compaction >= 1 and \
        compacted_delta_files(store, "snap", "cpu") == {f.key for f in newest.files}


def run(tmp_path: Path, killed: str, point: str) -> None:
    data = tmp_path / "data"
    store = FileStore(data)
    armed = {"LAKEFLUX_FAILPOINT": point}
    c1 = ServerProcess(data, *COMMON, *COMPACTOR, env=armed if killed == "c1" else None,
                       log_path=tmp_path / "c1.log").start(timeout=120)
    i1 = ServerProcess(data, *COMMON, *INGEST, env=armed if killed == "i1" else None,
                       log_path=tmp_path / "i1.log").start(timeout=120)
    q1: ServerProcess | None = None
    try:
        acked: set[int] = set()
        victim = c1 if killed == "c1" else i1
        b = 0
        while victim.proc is not None and victim.proc.poll() is None and b < 400:
            acked |= write(i1.url, range(b, b + 1))
            b += 1
            time.sleep(0.05)
        assert victim.proc is not None
        victim.proc.wait(timeout=120)
        assert victim.proc.returncode == -9, f"the failpoint {point} never fired"
        assert acked, "nothing was acknowledged before the crash"
        if killed == "c1":
            c1 = ServerProcess(data, *COMMON, *COMPACTOR, port=c1.port, log_path=tmp_path / "c1.log").start(timeout=120)
        else:
            i1 = ServerProcess(data, *COMMON, *INGEST, port=i1.port, log_path=tmp_path / "i1.log").start(timeout=120)
        q1 = ServerProcess(data, *COMMON, *QUERY, log_path=tmp_path / "q1.log").start(timeout=120)
        visible = check(i1.url, acked)
        assert isinstance(visible, set), visible
        more = write(i1.url, range(max(visible) + 1, max(visible) + 4))
        assert len(more) == 3
        eventually(lambda: settled(store), 120, "the compactor absorbing everything and i1 retiring it")
        eventually(lambda: check(q1.url, visible | more) == visible | more, 120, "q1 seeing every batch once")
        assert check(i1.url, visible | more) == visible | more
        newest = compaction.load_newest(store, CLUSTER)
        files = {m.key for m in store.list(paths.compacted_prefix(CLUSTER))
                 if m.key.endswith(".parquet") and "/_delta_log/" not in m.key}
        assert files <= {f.key for f in newest.files} | {r.key for r in newest.retired}, "orphaned compacted files"
        if killed == "c1":
            assert newest.epoch >= 1  # the restarted compactor took over from its killed predecessor
    finally:
        for srv in (q1, i1, c1):
            if srv is not None:
                srv.stop()


@pytest.mark.slow
@pytest.mark.parametrize("step", COMPACTOR_STEPS)
def test_sigkill_inside_a_compaction(tmp_path, step):
    run(tmp_path, "c1", f"compactor.{step}")


@pytest.mark.slow
@pytest.mark.parametrize("step", RETIRE_STEPS)
def test_sigkill_inside_a_retirement(tmp_path, step):
    run(tmp_path, "i1", f"retire.{step}")
