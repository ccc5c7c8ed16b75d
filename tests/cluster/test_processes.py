"""The cluster scenario with real `lakeflux serve` processes on one store (issue 15): two ingest nodes, a query
node, a process node (which ingests its plugins' write-backs) and a compactor, on the file store and on S3
(moto, loopback). Writers keep a ledger of acknowledged batches on both ingest nodes while every node is
SIGKILLed and restarted in turn; a second process started with a running ingest node's id is refused; the query
node must converge to exactly the acknowledged union (no batch lost, none counted twice, none half-visible)
while the compactor merges the ingest nodes' files and they retire them (replaced compacted files are deleted
after 2 s, so queries meet files gone mid-query); triggers created through an ingest node keep running on the
process node, and its WAL trigger sees every acknowledged batch of either ingest node at least once."""

from __future__ import annotations

import json
import random
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from lakeflux.buffer.manifest import load_latest
from lakeflux.cluster import compaction
from lakeflux.store.base import ObjectStore
from lakeflux.store.file import FileStore
from lakeflux.testing.chaos import Ledger, Writers, check, query
from lakeflux.testing.process import ServerProcess

PLUGINS = Path(__file__).parent.parent / "engine" / "plugins"
CLUSTER_PLUGINS = Path(__file__).parent / "plugins"
# Group commit every 500 ms, snapshot every 10 segments: while the test runs every ingest
# node snapshots several times and the query node switches manifests under load.
COMMON = ("--without-auth", "--cluster-id", "c1", "--wal-flush-interval", "500ms", "--wal-flush-size", "1000",
          "--wal-snapshot-size", "10", "--gen1-duration", "1m", "--catalog-sync-interval", "200ms",
          "--replication-interval", "100ms")
LINES = 50


class Node:
    """One node of the scenario: its serve flags, and the process currently running them."""

    def __init__(self, tmp_path: Path, store_args: list[str], node: str, mode: str, *extra: str) -> None:
        self.name = node
        self.args = (*COMMON, *store_args, "--node-id", node, "--mode", mode, *extra)
        self.data = tmp_path / "data"
        self.log = tmp_path / f"{node}.log"
        self.proc: ServerProcess | None = None

    def start(self, port: int | None = None) -> Node:
        self.proc = ServerProcess(self.data, *self.args, port=port, log_path=self.log).start(timeout=120)
        return self

    @property
    def url(self) -> str:
        return self.proc.url if self.proc is not None else "http://127.0.0.1:9"

    def restart(self) -> None:
        """SIGKILL (no flush, no cleanup) and start again on the same port."""
        assert self.proc is not None
        self.proc.kill()
        self.start(port=self.proc.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def request(url: str, method: str, path: str, body: dict | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def delivered(url: str) -> dict[int, int]:
    """Rows per batch the process node's WAL trigger reported (its write-backs, read on the query node)."""
    try:
        rows = query(url, "app", "SELECT b, sum(n) AS n FROM delivered GROUP BY b")
    except AssertionError:
        return {}  # not written yet
    return {int(r["b"][1:]): int(r["n"]) for r in rows if r["b"].startswith("b")}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def run_scenario(tmp_path: Path, store_args: list[str], seed: int, observer: ObjectStore) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(PLUGINS / "rt_request.py", plugins / "rt_request.py")
    shutil.copy(CLUSTER_PLUGINS / "deliver.py", plugins / "deliver.py")
    plugin_dir = ("--plugin-dir", str(plugins))
    i1 = Node(tmp_path, store_args, "i1", "ingest", *plugin_dir)
    i2 = Node(tmp_path, store_args, "i2", "ingest", *plugin_dir)
    p1 = Node(tmp_path, store_args, "p1", "process,ingest", *plugin_dir)  # it ingests its plugins' write-backs
    q1 = Node(tmp_path, store_args, "q1", "query")
    c1 = Node(tmp_path, store_args, "c1", "compact", "--compaction-check-interval", "1s",
              "--compaction-cleanup-wait", "2s")
    nodes = [c1, i1, i2, p1, q1]  # the compactor first: every ingest node seals its files from the start
    ledger = Ledger(LINES)
    writers: list[Writers] = []
    twin: ServerProcess | None = None
    try:
        for node in nodes:
            node.start()
        writers = [Writers(lambda n=n: n.url, ledger, writers=2, new_table_every=25, seed=seed + k)  # type: ignore[misc]
                   for k, n in enumerate((i1, i2))]
        for w in writers:
            w.start()
        # A trigger created through an ingest node runs on the process node.
        assert request(i1.url, "POST", "/api/v3/configure/database", {"db": "app"}) == 200
        trigger = {"db": "app", "trigger_name": "hello", "plugin_filename": "rt_request.py",
                   "trigger_specification": "request:hello"}
        assert request(i1.url, "POST", "/api/v3/configure/processing_engine_trigger", trigger) == 200
        wait_until(lambda: request(p1.url, "GET", "/api/v3/engine/hello") == 200, 60, "the trigger on p1")
        # A WAL trigger on every table of the writers' database: the process node sees both ingest nodes' rows.
        wal_trigger = {"db": "chaos", "trigger_name": "deliver", "plugin_filename": "deliver.py",
                       "trigger_specification": "all_tables", "trigger_arguments": {"out": "app"}}
        # (i2 knows the database once it wrote to it or synced the catalog: within --catalog-sync-interval.)
        wait_until(lambda: request(i2.url, "POST", "/api/v3/configure/processing_engine_trigger", wal_trigger)
                   == 200, 60, "creating the WAL trigger through i2")
        wait_until(lambda: delivered(q1.url) != {}, 60, "the WAL trigger's first write-back")
        start_batch = len(ledger.sent)  # batches sent from here on were written after the trigger ran

        rng = random.Random(seed)
        for node in rng.sample(nodes, len(nodes)):  # every node killed once, in a random order, mid-writes
            acked = len(ledger.acked)
            wait_until(lambda a=acked: len(ledger.acked) >= a + 4, 120, "progress before the kill")
            time.sleep(rng.uniform(0, 0.5))
            node.restart()
        # A second process with i1's node id is refused while i1 runs (i1's record says so and i1 answers).
        twin = ServerProcess(i1.data, *i1.args, log_path=tmp_path / "i1-twin.log")
        with pytest.raises(RuntimeError, match="already running at"):
            twin.start(timeout=120)
        twin = None
        acked = len(ledger.acked)
        wait_until(lambda: len(ledger.acked) >= acked + 4, 120, "i1 and i2 still acknowledging")
        for w in writers:
            w.stop()
        assert request(p1.url, "GET", "/api/v3/engine/hello") == 200

        assert ledger.unexpected == [], ledger.unexpected[:5]
        assert len(ledger.acked) > 20, ledger.statuses

        def converged() -> bool:
            result = check(q1.url, ledger)
            assert not result.duplicate_lines and not result.partial_batches, result.problems[:5]
            return result.ok

        wait_until(converged, 120, "the query node converging to the acknowledged union")
        result = check(q1.url, ledger)
        assert result.ok and result.problems == [], result.problems[:5]
        print(f"acknowledged {len(ledger.acked)} batches; statuses {dict(ledger.statuses)}; "
              f"visible unacknowledged {result.visible_unacked_batches}")
        # Every acknowledged batch written after the WAL trigger ran reached it at least once.
        def all_delivered() -> bool:
            got = delivered(q1.url)
            return all(got.get(b, 0) >= LINES for b in ledger.acked if b >= start_batch)

        wait_until(all_delivered, 120, "the WAL trigger on the process node seeing every acknowledged batch")
        for node in (i1, i2):  # and each ingest node still holds its own share, counted once
            own = check(node.url, ledger)
            assert not own.duplicate_lines and not own.partial_batches, own.problems[:5]
        # The compactor merged files of both ingest nodes, and they retired what it absorbed.
        newest = compaction.load_newest(observer, "c1")
        assert newest.files and newest.holder, newest.seq
        for node in (i1, i2):
            assert load_latest(observer, node.name)[0].compaction >= 1, node.name
        print(f"compaction {newest.seq} (epoch {newest.epoch}): {len(newest.files)} files, "
              f"{sum(f.rows for f in newest.files)} rows")
    finally:
        for w in writers:
            w.stop()
        if twin is not None:
            twin.kill()
        for node in nodes:
            node.stop()


@pytest.mark.slow
def test_cluster_processes_on_the_file_store(tmp_path):
    run_scenario(tmp_path, ["--object-store", "file"], seed=1, observer=FileStore(tmp_path / "data"))


@pytest.mark.slow
@pytest.mark.s3
def test_cluster_processes_on_s3(tmp_path, s3_endpoint):
    run_scenario(tmp_path, s3_endpoint.serve_args(), seed=2, observer=s3_endpoint.store())
