"""Deterministic versions of what the fault storms found (issue 7), one injected fault each:

- a catalog commit whose response was lost no longer fences the catalog for every later change;
- a snapshot manifest whose response was lost no longer stops all later snapshots (Fenced);
- a swap whose copy failed is finished by the next snapshot, rows counted once;
- a forced snapshot while a WAL commit is in flight no longer drops that segment's acknowledged rows.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lakeflux.config import Config
from lakeflux.store.file import FileStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.server import InProcessServer

T0 = 1_700_000_000_000_000_000


def config(tmp_path: Path, **changes: object) -> Config:
    return Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.01,
                  without_auth=True).with_changes(**changes)


def lines(table: str, start: int, n: int) -> str:
    return "\n".join(f"{table},k=a v={i}i {T0 + start + i}" for i in range(n))


def count(srv: InProcessServer, table: str) -> int:
    return srv.query("db", f'SELECT count(*) AS n, count(DISTINCT time) AS d FROM "{table}"')[0]


def test_lost_catalog_reply_does_not_fence_later_changes(tmp_path):
    store = FaultyStore(MemoryStore())
    with InProcessServer(config(tmp_path), store=store) as srv:
        assert srv.write("db", lines("first", 0, 1)).status == 204
        store.lose_response("put_if_absent", prefix="node0/catalog/", times=1)
        lost = srv.write("db", lines("lost", 0, 1))
        assert lost.status == 503 and "Retry-After" in lost.headers
        # Another change at the same slot: the server adopts its own lost entry and asks for a retry.
        statuses = [srv.write("db", lines("later", 0, 1)).status for _ in range(2)]
        assert statuses[-1] == 204, statuses
        assert srv.write("db", lines("lost", 0, 1)).status == 204
        assert count(srv, "later") == {"n": 1, "d": 1}
        assert count(srv, "lost") == {"n": 1, "d": 1}
    with InProcessServer(config(tmp_path), store=store.inner) as again:
        assert {"first", "lost", "later"} <= set(again.services.catalog.state.databases["db"].tables)


def test_lost_manifest_reply_then_snapshots_resume(tmp_path):
    store = FaultyStore(MemoryStore())
    with InProcessServer(config(tmp_path), store=store) as srv:
        buffer = srv.services.buffer
        assert srv.write("db", lines("m", 0, 10)).status == 204
        store.lose_response("put_if_absent", prefix="node0/snapshots/", times=1)
        srv.call(buffer.snapshot())
        assert buffer.tables.rows == 10, "the failed snapshot must leave the rows buffered"
        assert srv.write("db", lines("m", 10, 10)).status == 204
        srv.call(buffer.snapshot())
        assert buffer.tables.rows == 0 and buffer.persister.manifest.seq == 1  # slot 0 was skipped
        assert count(srv, "m") == {"n": 20, "d": 20}
    with InProcessServer(config(tmp_path), store=store.inner) as again:
        assert count(again, "m") == {"n": 20, "d": 20}


def test_failed_swap_copy_is_finished_by_the_next_snapshot(tmp_path):
    store = FaultyStore(FileStore(tmp_path / "lake"))
    with InProcessServer(config(tmp_path, object_store="file"), store=store) as srv:
        buffer = srv.services.buffer
        assert srv.write("db", lines("s", 0, 10)).status == 204
        store.fail_before("copy", prefix="node0/tables/", times=1)
        srv.call(buffer.snapshot())
        assert buffer.tables.rows == 10
        assert count(srv, "s") == {"n": 10, "d": 10}
        srv.call(buffer.snapshot())  # nothing new to persist, but the pending swap is finished
        assert buffer.tables.rows == 0
        assert count(srv, "s") == {"n": 10, "d": 10}
    with InProcessServer(config(tmp_path, object_store="file"), store=store.inner) as again:
        assert count(again, "s") == {"n": 10, "d": 10}


def test_forced_snapshot_during_a_wal_commit_keeps_its_rows(tmp_path):
    """The snapshot used to cover `next_seq - 1`: the segment being committed, not yet in the buffer."""
    entered, release = threading.Event(), threading.Event()

    def hold(_seconds: float) -> None:  # injected latency that waits for the test, not for a clock
        entered.set()
        release.wait(30)

    store = FaultyStore(MemoryStore(), sleep=hold)
    with InProcessServer(config(tmp_path), store=store) as srv:
        buffer = srv.services.buffer
        assert srv.write("db", lines("r", 0, 5)).status == 204
        store.add_latency(1.0, "put_if_absent", prefix="node0/wal/", times=1)
        replies: list[int] = []
        writer = threading.Thread(target=lambda: replies.append(srv.write("db", lines("r", 5, 5)).status))
        writer.start()
        assert entered.wait(30)
        snap = threading.Thread(target=lambda: srv.call(buffer.snapshot()))
        snap.start()
        snap.join(30)
        release.set()
        writer.join(30)
        assert replies == [204]
        assert count(srv, "r") == {"n": 10, "d": 10}
        srv.call(buffer.snapshot())
        assert count(srv, "r") == {"n": 10, "d": 10}
    with InProcessServer(config(tmp_path), store=store.inner) as again:
        assert count(again, "r") == {"n": 10, "d": 10}
