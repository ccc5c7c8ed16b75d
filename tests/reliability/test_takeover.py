"""A second server started on the same data dir and node id while the first is in the middle of a snapshot
(a single-node takeover): two real server processes, the first paused by a failpoint between two snapshot
steps. The second's recovery must not delete what the first still needs: with the first paused after
staging, recovery used to delete its staged files, the first then committed a manifest naming them and its
swap found them gone; paused after the commit, recovery copied the staged files into place and deleted them,
and the first's swap, finding them gone, took the table files out again. Either way a restart loaded a
manifest whose files were missing and replayed the WAL only after it: acknowledged rows lost.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lakeflux.buffer.manifest import Manifest
from lakeflux.config import Config
from lakeflux.store import paths
from lakeflux.store.file import FileStore
from lakeflux.testing.chaos import Ledger, Outcome, Writers, check, post
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.process import ServerProcess
from lakeflux.testing.server import InProcessServer

NODE = "shared"
ARGS = ("--without-auth", "--object-store", "file", "--node-id", NODE, "--wal-flush-interval", "100ms",
        "--snapshotted-wal-files-to-keep", "0")


def write(srv: ServerProcess, ledger: Ledger, batches: int) -> None:
    Writers(lambda: srv.url, ledger, writers=1, new_table_every=0, max_batches=len(ledger.sent) + batches).start().join()


def persist(srv: ServerProcess) -> Outcome:
    return post(f"{srv.url}/api/v3/persist", b"", timeout=120)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["snapshot.staged", "snapshot.committed"])
def test_second_server_during_a_snapshot(tmp_path, point):
    data, gate = tmp_path / "data", tmp_path / "gate"
    gate.mkdir()
    ledger = Ledger(50)
    first = ServerProcess(data, *ARGS, env={"LAKEFLUX_FAILPOINT_PAUSE": point,
                                            "LAKEFLUX_FAILPOINT_GATE": str(gate)}).start()
    second = None
    try:
        write(first, ledger, 4)
        assert ledger.statuses["204"] == 4, ledger.statuses
        replies: list[Outcome] = []
        paused = threading.Thread(target=lambda: replies.append(persist(first)))
        paused.start()
        wait_for(gate / f"{point}.paused")
        store = FileStore(str(data))
        staged = [m.key for m in store.list(paths.staging_prefix(NODE))]
        assert staged, "the first server staged no files"

        second = ServerProcess(data, *ARGS).start()
        (gate / f"{point}.resume").touch()
        paused.join(timeout=120)
        first_reply = replies[0]
        if point == "snapshot.staged":
            # The second server claimed the next manifest before deleting the staged files: the first's
            # commit finds it taken and the first stops changing the store, its WAL untrimmed.
            assert first_reply.status == 503, first_reply
            assert "fenced" in json.loads(first_reply.body)["error"]
            assert Writers(lambda: first.url, ledger, writers=1, new_table_every=0).write_one("t0").status == 503
        else:
            # Committed before the second started: the second builds on that manifest, and leaves the staged
            # files its swap copies from alone.
            assert first_reply.status == 200, first_reply
        write(second, ledger, 2)
        assert persist(second).status == 200
    finally:
        first.kill()
        if second is not None:
            second.kill()
    third = ServerProcess(data, *ARGS).start()
    try:
        result = check(third.url, ledger)
        assert result.problems == [], result.problems
        assert result.ok and result.acked_lines == 6 * 50
    finally:
        third.stop()


def _lake(tmp_path: Path) -> tuple[Config, FaultyStore]:
    cfg = Config(data_dir=tmp_path / "d", object_store="file", node_id=NODE, wal_flush_interval=0.02,
                 without_auth=True)
    return cfg, FaultyStore(FileStore(tmp_path / "d"))


def _count(srv: InProcessServer) -> int:
    return int(srv.query("db", "SELECT count(*) AS n FROM cpu")[0]["n"])


def test_a_lost_manifest_commit_that_landed_is_passed_over(tmp_path):
    """Our own manifest commit whose reply was lost: the next snapshot finds our bytes in that slot and
    commits at the next one; nothing is lost or counted twice."""
    cfg, store = _lake(tmp_path)
    with InProcessServer(cfg, store) as srv:
        assert srv.write("db", "cpu v=1 1\ncpu v=2 2").status == 204
        store.lose_response("put_if_absent", prefix=paths.snapshot_prefix(NODE), times=1)
        assert srv.request("POST", "/api/v3/persist").status == 503
        assert srv.write("db", "cpu v=3 3").status == 204
        reply = srv.request("POST", "/api/v3/persist")
        assert reply.status == 200 and reply.json()["snapshot"] == 1
        assert _count(srv) == 3
    with InProcessServer(cfg, FileStore(tmp_path / "d")) as srv:
        assert _count(srv) == 3


def test_a_lost_manifest_commit_does_not_pass_over_a_fence(tmp_path):
    """A manifest commit whose outcome is unknown, and another process commits that slot meanwhile (to fence
    this one, as a recovery does): the next snapshot reads the slot, finds another's manifest and stops,
    instead of committing at the slot after it."""
    cfg, store = _lake(tmp_path)
    with InProcessServer(cfg, store) as srv:
        assert srv.write("db", "cpu v=1 1\ncpu v=2 2").status == 204
        store.fail_before("put_if_absent", prefix=paths.snapshot_prefix(NODE), times=1)
        assert srv.request("POST", "/api/v3/persist").status == 503
        fence = Manifest(seq=0, wal_seq=-1)
        assert store.put_if_absent(paths.snapshot_manifest(NODE, 0), fence.to_bytes())
        reply = srv.request("POST", "/api/v3/persist")
        assert reply.status == 503 and "fenced" in reply.json()["error"]
        assert not store.exists(paths.snapshot_manifest(NODE, 1))
        assert srv.write("db", "cpu v=3 3").status == 503
    with InProcessServer(cfg, FileStore(tmp_path / "d")) as srv:
        assert _count(srv) == 2  # from the WAL: the fenced server trimmed none of it
