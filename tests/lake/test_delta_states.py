"""Every committed state of a table, as an outside reader sees it (issue 14, done-when 1).

delta-rs reads each Delta version of a table at the moment lakeflux commits it, while snapshots, late-write
compactions and retention expiries run, and another thread keeps reading the newest version meanwhile. No
version holds a point twice; after each change the newest version holds exactly the rows lakeflux's SQL
shows (everything persisted: each change ends with nothing buffered); and whatever the concurrent reader
read is exactly the state of the version it read. Runs on the file store and on S3 (moto).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from delta_reading import DeltaReader, root

from lakeflux.config import Config, S3Settings
from lakeflux.store import open_store, paths
from lakeflux.store.base import ObjectMeta, ObjectStore
from lakeflux.testing.server import InProcessServer

pytest.importorskip("deltalake")
from deltalake.exceptions import TableNotFoundError  # noqa: E402

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
Row = tuple[str, int, float]


class CommitObserver:
    """An ObjectStore passing everything to `inner`, calling `on_commit(key)` right after a Delta commit
    was created, before lakeflux goes on (and deletes the files a compaction or an expiry removed)."""

    def __init__(self, inner: ObjectStore, on_commit: Callable[[str], None]) -> None:
        self.inner, self.on_commit = inner, on_commit
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:  # url_for, datafusion_store, bucket...: the inner store's
        return getattr(self.inner, name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = self.inner.put_if_absent(key, data)
        if created and "/_delta_log/" in key:
            self.on_commit(key)
        return created

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.get_range(key, start, end)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def copy(self, src: str, dst: str) -> None:
        self.inner.copy(src, dst)

    def list(self, prefix: str) -> list[ObjectMeta]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)


def rows_of(data: Any) -> list[Row]:
    cols = [data.column(c).to_pylist() for c in ("host", "time", "usage")]
    return sorted(zip(*cols, strict=True))


class States:
    """What delta-rs read of each version of lake.cpu: at its commit, and by a reader running meanwhile."""

    def __init__(self, reader: DeltaReader) -> None:
        self.reader = reader
        self.at_commit: dict[int, list[Row]] = {}
        self.concurrent: list[tuple[int, list[Row]]] = []
        self.missing_file_errors = 0
        self._stop = threading.Event()

    def committed(self, key: str) -> None:
        if not key.startswith(root("lake", "cpu")):
            return
        version = paths.parse_seq(key)
        assert version is not None
        self.at_commit[version] = rows_of(self.reader.rows("lake", "cpu", version))

    def read_newest_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                table = self.reader.table("lake", "cpu")
                self.concurrent.append((int(table.version()), rows_of(table.to_pyarrow_dataset().to_table())))
            except TableNotFoundError:
                pass  # no commit yet
            except Exception as e:  # a file a newer version removed was deleted while this read it
                if "No such file" not in str(e) and "not found" not in str(e).lower():
                    raise
                self.missing_file_errors += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def lake(request, tmp_path) -> Iterator[tuple[Config, DeltaReader]]:
    if request.param == "s3":
        e = request.getfixturevalue("s3_endpoint")
        s3 = S3Settings(bucket=e.bucket, endpoint=e.endpoint_url, region=e.region, access_key_id=e.access_key,
                        secret_access_key=e.secret, allow_http=True)
        yield (Config(data_dir=tmp_path / "d", object_store="s3", s3=s3, wal_flush_interval=0.02, without_auth=True),
               DeltaReader(s3=e))
        return
    yield (Config(data_dir=tmp_path / "d", object_store="file", wal_flush_interval=0.02, without_auth=True),
           DeltaReader(data_dir=tmp_path / "d"))


def test_every_committed_state_is_whole_while_compactions_and_retention_run(lake):
    cfg, reader = lake
    states = States(reader)
    today = time.time_ns() // DAY * DAY

    def points(day: int, first: int, n: int, value: float, step_min: int = 7) -> str:
        """Points of day −`day` (UTC) within its first 20 hours, hosts taking turns."""
        return "\n".join(f"cpu,host=h{i % 3} usage={value + i} {today - day * DAY + i * step_min * 60 * 10**9}"
                         for i in range(first, first + n)) + f"\nmem,host=h0 free={day}i {today - day * DAY}"

    def lakeflux_rows(srv: InProcessServer) -> list[Row]:
        got = srv.query("lake", "SELECT host, CAST(time AS BIGINT) AS time, usage FROM cpu")
        return sorted((r["host"], r["time"], r["usage"]) for r in got)

    reading = threading.Thread(target=states.read_newest_until_stopped, daemon=True)
    with InProcessServer(cfg, store=CommitObserver(open_store(cfg), states.committed)) as srv:
        changes: list[Callable[[], Any]] = []
        for day in (9, 8, 7, 6, 5, 4, 3, 2, 1):  # a snapshot per day, then a late write into every earlier day
            changes.append(lambda d=day: srv.write("lake", points(d, 0, 120, float(d))))
            if day < 8:
                changes.append(lambda d=day: srv.write("lake", points(d + 1, 60, 60, 1000.0 + d, step_min=11)))
        expiries = {6: 8, 10: 6, 14: 4}  # after the nth change: expire the days older than this many days ago

        reading.start()
        try:
            for n, change in enumerate(changes):
                reply = change()
                assert reply.status == 204, reply.body
                srv.call(srv.services.buffer.persist())
                if n in expiries:
                    cutoff = today - expiries[n] * DAY + 22 * HOUR  # between two days' files: whole files go
                    retention = f"{(time.time_ns() - cutoff) // 10**9}s"
                    r = srv.request("PUT", "/api/v3/configure/database", {"db": "lake", "retention_period": retention})
                    assert r.status == 200, r.body
                    srv.call(srv.services.buffer.housekeep())
                assert srv.services.buffer.tables.rows == 0
                newest = max(states.at_commit)
                assert states.at_commit[newest] == lakeflux_rows(srv), f"version {newest} after change {n}"
        finally:
            states.stop()
            reading.join(timeout=60)

    versions = sorted(states.at_commit)
    assert versions == list(range(len(versions))), "a committed version was not seen"
    assert len(versions) == len(changes) + len(expiries)  # one commit per change of the table
    for version, rows in states.at_commit.items():
        points_ = [(host, t) for host, t, _ in rows]
        assert len(points_) == len(set(points_)), f"version {version} holds a point twice"
    assert states.concurrent, "the concurrent reader never read a version"
    for version, rows in states.concurrent:
        assert rows == states.at_commit[version], f"the concurrent reader saw version {version} otherwise"
    seen = {v for v, _ in states.concurrent}
    assert len(seen) > 1, f"the concurrent reader saw only versions {seen}"
