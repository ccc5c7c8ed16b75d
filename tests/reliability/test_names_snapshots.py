"""Issue 18, item 1: a snapshot failure of one table never stops the other tables or databases.

Through the server's HTTP API and its real snapshot path, with one table's staging writes failing (a fault
injected around a real file store): the other tables of its database and of other databases persist; the
failing table's rows stay queryable from the buffer, survive a restart (replayed from the WAL, which is kept
for them) and are retried only after a backoff; once the fault is gone they persist, exactly once."""

from __future__ import annotations

from pathlib import Path

from lakeflux.config import Config
from lakeflux.store import paths
from lakeflux.store.file import FileStore
from lakeflux.testing.faulty import FaultyStore
from lakeflux.testing.server import InProcessServer

T0 = 1_700_000_000_000_000_000
BAD = "bad"


def config(tmp_path: Path) -> Config:
    return Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.01, without_auth=True)


def lines(table: str, start: int, n: int) -> str:
    return "\n".join(f"{table},k=a v={i}i {T0 + i}" for i in range(start, start + n))


def count(srv: InProcessServer, db: str, table: str) -> dict[str, int]:
    return srv.query(db, f'SELECT count(*) AS n, count(DISTINCT time) AS d FROM "{table}"')[0]


def persisted(srv: InProcessServer) -> set[tuple[str, str]]:
    return {(f.db, f.table) for f in srv.services.buffer.persister.manifest.files}


def snapshot(srv: InProcessServer) -> None:
    srv.call(srv.services.buffer.snapshot())


def test_one_failing_table_does_not_stop_the_others(tmp_path):
    store = FaultyStore(FileStore(tmp_path / "lake"))
    bad_dir = f"/{paths.name_segment('db1')}/{paths.name_segment(BAD)}/"
    fault = store.fail_before("put", prefix="node0/staging/", contains=bad_dir)
    clock = [0.0]
    with InProcessServer(config(tmp_path), store=store) as srv:
        persister = srv.services.buffer.persister
        persister.monotonic = lambda: clock[0]
        assert srv.write("db1", lines(BAD, 0, 10) + "\n" + lines("good", 0, 10)).status == 204
        assert srv.write("db2", lines("other", 0, 10)).status == 204
        snapshot(srv)
        assert persisted(srv) == {("db1", "good"), ("db2", "other")}
        assert fault.fired == 1
        assert [(h.db, h.table) for h in persister.manifest.held] == [("db1", BAD)]
        assert count(srv, "db1", BAD) == {"n": 10, "d": 10}  # still served from the buffer

        # More rows everywhere; the failing table is not retried before its backoff ends.
        assert srv.write("db1", lines(BAD, 10, 5) + "\n" + lines("good", 10, 5)).status == 204
        snapshot(srv)
        assert fault.fired == 1
        assert srv.services.buffer.tables.chunks("db1", "good") == []
        # Its WAL segments are kept although the manifest covers them.
        held_since = persister.manifest.held[0].since
        assert held_since <= persister.manifest.wal_seq
        assert srv.services.wal.list_seqs(held_since - 1)[0] == held_since

    # A restart replays the held table's rows from before the manifest's WAL sequence, and only them.
    with InProcessServer(config(tmp_path), store=store) as srv:
        persister = srv.services.buffer.persister
        persister.monotonic = lambda: clock[0]
        assert count(srv, "db1", BAD) == {"n": 15, "d": 15}
        assert count(srv, "db1", "good") == {"n": 15, "d": 15}
        assert count(srv, "db2", "other") == {"n": 10, "d": 10}
        assert srv.services.buffer.tables.chunks("db1", "good") == []

        snapshot(srv)  # a new process tries at once
        assert fault.fired == 2
        snapshot(srv)
        assert fault.fired == 2
        clock[0] += 2.5  # past the first backoff: retried, failing again
        snapshot(srv)
        assert fault.fired == 3
        store.clear()
        clock[0] += 3.0  # the delay doubled: still backing off
        snapshot(srv)
        assert ("db1", BAD) not in persisted(srv)
        clock[0] += 2.0
        snapshot(srv)
        assert ("db1", BAD) in persisted(srv)
        assert persister.manifest.held == ()
        assert srv.services.buffer.tables.rows == 0
        assert count(srv, "db1", BAD) == {"n": 15, "d": 15}

    with InProcessServer(config(tmp_path), store=store) as srv:
        assert count(srv, "db1", BAD) == {"n": 15, "d": 15}
        assert count(srv, "db1", "good") == {"n": 15, "d": 15}
        assert srv.services.buffer.tables.rows == 0
