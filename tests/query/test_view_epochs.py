"""A query left open (its stream not consumed) holds on to the view it planned with, not the view lock:
snapshot swaps and new queries go on meanwhile, each query sees every row exactly once (the view before or
after a swap, never a mix), and the files a swap retired are deleted once the old query closes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lakeflux.buffer.manifest import PersistedFile
from lakeflux.buffer.persist import Persister
from lakeflux.buffer.viewlock import ViewLock
from lakeflux.config import Config
from lakeflux.errors import TimedOut
from lakeflux.testing.server import InProcessServer

T0 = 1_767_225_600 * 10**9  # 2026-01-01
HOUR = 3_600 * 10**9
COUNTS = "SELECT count(*) AS n, sum(usage) AS s, count(DISTINCT time) AS d FROM cpu"
# Long enough to mean "stuck", never a timing expectation: the calls return at once when nothing blocks them.
STUCK_S = 120


def hours(first: int, n: int, value: float) -> str:
    return "\n".join(f"cpu,host=h0 usage={value + i} {T0 + i * HOUR}" for i in range(first, first + n))


def lake(tmp_path: Path) -> Config:
    return Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True)


def write(srv: InProcessServer, body: str) -> None:
    assert srv.write("lake", body).status == 204


def persist(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.persist(), timeout=STUCK_S)


def one_file(srv: InProcessServer) -> tuple[Persister, PersistedFile]:
    """Ten rows persisted in one file."""
    persister = srv.services.buffer.persister
    assert persister is not None
    write(srv, hours(0, 10, 0.0))
    persist(srv)
    (old,) = persister.manifest.files
    return persister, old


def test_a_query_left_open_stalls_neither_swaps_nor_new_queries(tmp_path):
    with InProcessServer(lake(tmp_path)) as srv:
        persister, old = one_file(srv)
        write(srv, hours(5, 10, 100.0))  # buffered, overlapping the file: the next snapshot compacts it
        before = srv.query("lake", COUNTS)
        assert before == [{"n": 15, "s": sum(range(5)) + sum(100.0 + i for i in range(5, 15)), "d": 15}]

        slow = srv.services.query.start("lake", COUNTS)  # planned on the file + the buffered rows; not read
        try:
            persist(srv)  # compacts the file away: the swap does not wait for the open query
            assert [f.key for f in persister.manifest.files] != [old.key]
            assert (tmp_path / "d" / old.key).exists()  # the open query may still read it
            assert srv.query("lake", COUNTS) == before  # a new query: the compacted file, each row once
            write(srv, hours(20, 2, 7.0))
            persist(srv)  # a second swap goes on too
            after = srv.query("lake", COUNTS)
            assert after[0]["n"] == after[0]["d"] == 17
            assert (tmp_path / "d" / old.key).exists()
            got = [row for batch in slow for row in batch.to_pylist()]
        finally:
            slow.close()
        assert got == before  # the open query saw its own view: the old file and buffered rows, once each
        assert not (tmp_path / "d" / old.key).exists()  # deleted once the last query reading it closed
        assert persister.retiring_roots() == frozenset()
        assert srv.query("lake", COUNTS) == after


def test_a_query_left_open_and_a_table_deleted_meanwhile(tmp_path):
    """Retention and deletes retire files the same way: the open query reads them to its end."""
    with InProcessServer(lake(tmp_path)) as srv:
        persister, old = one_file(srv)
        slow = srv.services.query.start("lake", COUNTS)
        try:
            gone = persister.remove_files(lambda f: f.table == "cpu")
            assert gone == 1 and persister.manifest.files == ()
            assert (tmp_path / "d" / old.key).exists()
            assert srv.query("lake", "SELECT count(*) AS n FROM cpu") == [{"n": 0}]
            got = [row for batch in slow for row in batch.to_pylist()]
        finally:
            slow.close()
        assert got == [{"n": 10, "s": float(sum(range(10))), "d": 10}]
        assert not (tmp_path / "d" / old.key).exists()


def test_a_query_left_open_past_its_deadline_lets_go_of_its_view_when_expired(tmp_path):
    """Its caller may be stuck sending earlier batches (a Flight client that stops reading): expiring the
    query closes it at once when no batch is being pulled, and the next pull raises the timeout."""
    with InProcessServer(lake(tmp_path)) as srv:
        persister, old = one_file(srv)
        write(srv, hours(5, 10, 100.0))
        slow = srv.services.query.start("lake", COUNTS)
        try:
            persist(srv)
            assert (tmp_path / "d" / old.key).exists()
            assert slow.expire()
            assert not (tmp_path / "d" / old.key).exists()
            assert persister.retiring_roots() == frozenset()
            with pytest.raises(TimedOut):
                slow.next_batch()
            assert not slow.expire()  # closed already
        finally:
            slow.close()


def test_view_lock_defers_work_until_older_pins_are_released():
    lock = ViewLock()
    ran: list[str] = []
    assert lock.after_readers(lambda: ran.append("now"))  # no pins: at once
    with lock.read():
        old = lock.pin()
    with lock.write():  # waits for planning readers only: the pin does not hold it
        pass
    assert not lock.after_readers(lambda: ran.append("deferred"))
    with lock.read():
        new = lock.pin()  # a pin on the new view does not delay work of the switch before it
    assert ran == ["now"]
    old()
    assert ran == ["now", "deferred"]
    old()  # released twice: harmless
    assert lock.after_readers(lambda: ran.append("again"))
    new()
    assert ran == ["now", "deferred", "again"] and lock.pinned() == 0


def test_view_lock_new_readers_do_not_wait_for_pinned_ones():
    lock = ViewLock()
    with lock.read():
        pinned = lock.pin()
    done = threading.Event()

    def swap_then_read() -> None:
        with lock.write():
            pass
        with lock.read():
            done.set()

    t = threading.Thread(target=swap_then_read)
    t.start()
    t.join(timeout=STUCK_S)
    assert done.is_set()
    pinned()
