"""Snapshots: buffered rows → time-partitioned Parquet per table, a manifest, then the buffer and WAL trimmed.

Protocol (each step is safe to crash after):
1. write each new file to `staging/<S>/…` (S = the last WAL segment covered);
2. commit manifest n+1 listing every live file (put-if-absent): the snapshot's commit point;
3. under the view lock: copy staged files to their final `tables/…` keys and drop the covered rows
   from the buffer, so a query sees each row exactly once;
4. delete the staged files, older manifests, and WAL segments no reader still needs.
Recovery completes step 3 from the newest manifest and deletes staging of uncommitted snapshots.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..catalog import Catalog
from ..errors import NotFound
from ..failpoints import failpoint
from ..store import paths
from ..store.base import ObjectStore
from ..wal import Wal
from . import manifest as mf
from .dedupe import dedupe
from .manifest import Manifest, PersistedFile
from .sqltypes import TAG_TYPE, conform, table_schema
from .tables import BufferedTables
from .viewlock import ViewLock

log = logging.getLogger("lakeflux.snapshot")
NS_PER_DAY = 86_400 * 1_000_000_000
ROW_GROUP_ROWS = 128 * 1024
MANIFESTS_TO_KEEP = 3


class Persister:
    """Owns the persisted state (the current manifest) and the snapshot procedure."""

    def __init__(self, store: ObjectStore, node: str, catalog: Catalog, tables: BufferedTables, wal: Wal,
                 lock: ViewLock, *, wal_segments_to_keep: int = 300,
                 wal_floor: Callable[[], int | None] | None = None) -> None:
        self.store = store
        self.node = node
        self.catalog = catalog
        self.tables = tables
        self.wal = wal
        self.lock = lock
        self.manifest = Manifest()
        # Manifest changes (snapshots, retention, deletes) happen one at a time: each takes seq + 1.
        self._changing = threading.RLock()
        self.wal_segments_to_keep = wal_segments_to_keep
        # The lowest WAL sequence a reader (a WAL trigger's cursor) still needs, if any.
        self.wal_floor = wal_floor
        # A manifest commit whose outcome is unknown may have landed: its slot is never reused.
        self._next_manifest_seq = 0
        # A committed snapshot whose swap into the table prefixes failed; finished before the next change.
        self._pending_swap: tuple[Manifest, int, list[PersistedFile]] | None = None

    # --- recovery ----------------------------------------------------------------------------------
    def recover(self) -> int:
        """Load the newest manifest and finish an interrupted swap; returns the WAL sequence it covers.

        Blocking; call before WAL replay, which starts after the returned sequence.
        """
        self.manifest, _ = mf.load_latest(self.store, self.node)
        for f in self.manifest.files:
            if self.store.exists(f.key):
                continue
            staged = paths.staging_file(self.node, f.wal_seq, f.key)
            try:
                self.store.copy(staged, f.key)
            except NotFound:
                log.error("persisted file %s named by snapshot manifest %d is missing", f.key, self.manifest.seq)
        for meta in self.store.list(paths.staging_prefix(self.node)):
            self.store.delete(meta.key)
        return self.manifest.wal_seq

    # --- snapshot ----------------------------------------------------------------------------------
    def _snapshot_unlocked(self, upto: int) -> Manifest | None:
        """`snapshot` with the change lock held."""
        self._finish_swap()
        if upto <= self.manifest.wal_seq:
            return None
        chunks = self.tables.chunks_upto(upto)
        state = self.catalog.state
        new_files: list[PersistedFile] = []
        for (db, table), parts in chunks.items():
            dbdef = state.live_db(db)
            tdef = dbdef.tables.get(table) if dbdef is not None else None
            if tdef is None:
                continue  # deleted meanwhile: its rows are dropped with the buffer below
            tags = tdef.tags
            # Chunks are in commit order, so rows are in write order: later writes win each point's fields,
            # and every persisted file is free of duplicate points (queries merge only across files).
            data = dedupe(pa.concat_tables([conform(p, table_schema(tdef.columns)) for p in parts]), tags)
            for key, part in _by_day(self.node, db, table, upto, data):
                body = encode_parquet(part, tags)
                self.store.put(paths.staging_file(self.node, upto, key), body)
                times = part.column("time")
                mm = pc.min_max(times.cast(pa.int64()))
                new_files.append(PersistedFile(db=db, table=table, key=key, rows=part.num_rows, size=len(body),
                                               min_time=mm["min"].as_py(), max_time=mm["max"].as_py(),
                                               wal_seq=upto))
        failpoint("snapshot.staged")
        replaced = {f.key for f in new_files}
        kept = tuple(f for f in self.manifest.files if f.key not in replaced)
        new = self._commit(Manifest(seq=self.manifest.seq + 1, wal_seq=upto, files=kept + tuple(new_files)))
        failpoint("snapshot.committed")
        self._pending_swap = (new, upto, new_files)
        self._finish_swap()
        failpoint("snapshot.swapped")
        self._clean_up(upto, new_files)
        failpoint("snapshot.cleaned")
        log.info("snapshot %d: %d rows in %d files through WAL segment %d", new.seq,
                 sum(f.rows for f in new_files), len(new_files), upto)
        return new

    def _commit(self, new: Manifest) -> Manifest:
        """Commit `new` at the next unused manifest slot; returns it (with that seq) once durable.

        Raises Unavailable when the outcome is unknown; that slot is then skipped by every later commit,
        so our own lost attempt is never taken for another server's manifest (Fenced).
        """
        new = replace(new, seq=max(new.seq, self._next_manifest_seq))
        self._next_manifest_seq = new.seq + 1
        mf.commit(self.store, self.node, new)
        return new

    def _finish_swap(self) -> None:
        """Copy a committed snapshot's staged files to their table keys and drop its rows from the buffer,
        under the view lock. A failed copy leaves the swap pending (copies are idempotent): the next
        snapshot finishes it first, as recovery would after a crash. Files already copied by the failed
        attempt are taken out again, so queries never see them beside the same rows in the buffer."""
        if self._pending_swap is None:
            return
        new, upto, new_files = self._pending_swap
        with self.lock.write():
            try:
                for i, f in enumerate(new_files):
                    self.store.copy(paths.staging_file(self.node, upto, f.key), f.key)
                    if i == 0:
                        failpoint("snapshot.copying")
            except Exception:
                # These keys are new to this snapshot (named by its WAL sequence): removing them all
                # also catches a copy that landed although its reply was lost.
                for f in new_files:
                    with contextlib.suppress(Exception):
                        self.store.delete(f.key)
                raise
            self.tables.drop_upto(upto)
            self.manifest = new
        self._pending_swap = None

    def _clean_up(self, upto: int, new_files: list[PersistedFile]) -> None:
        for f in new_files:
            self.store.delete(paths.staging_file(self.node, upto, f.key))
        _, keys = mf.load_latest(self.store, self.node)
        for key in keys[:-MANIFESTS_TO_KEEP]:
            self.store.delete(key)
        floor = upto - self.wal_segments_to_keep
        if self.wal_floor is not None:
            needed = self.wal_floor()
            if needed is not None:
                floor = min(floor, needed - 1)
        if floor >= 0:
            self.wal.delete_through(floor)

    # --- removing files (retention, deletes) --------------------------------------------------------
    def _remove_files_unlocked(self, doomed: Callable[[PersistedFile], bool]) -> int:
        """`remove_files` with the change lock held."""
        self._finish_swap()  # build on the newest committed manifest
        gone = [f for f in self.manifest.files if doomed(f)]
        if not gone:
            return 0
        new = self._commit(replace(self.manifest, seq=self.manifest.seq + 1,
                                   files=tuple(f for f in self.manifest.files if not doomed(f))))
        with self.lock.write():
            self.manifest = new
            for f in gone:
                self.store.delete(f.key)
        return len(gone)

    def _move_to_trash_unlocked(self, doomed: Callable[[PersistedFile], bool], purge_at_ns: int | None) -> int:
        """`move_to_trash` with the change lock held: copy to the trash, then remove as usual."""
        self._finish_swap()  # build on the newest committed manifest
        for f in self.manifest.files:
            if doomed(f):
                self.store.copy(f.key, paths.trash_file(self.node, purge_at_ns, f.key))
        return self._remove_files_unlocked(doomed)

    def snapshot(self, upto: int) -> Manifest | None:
        """Persist every buffered row from WAL segments ≤ `upto`; returns the new manifest (None if nothing).

        Returns once the files and manifest are durable and the buffer no longer holds those rows.
        """
        with self._changing:
            return self._snapshot_unlocked(upto)

    def remove_files(self, doomed: Callable[[PersistedFile], bool]) -> int:
        """Drop matching files from a new manifest, then delete them; returns how many.

        Returns once the new manifest is durable and the objects are deleted.
        """
        with self._changing:
            return self._remove_files_unlocked(doomed)

    def move_to_trash(self, doomed: Callable[[PersistedFile], bool], purge_at_ns: int | None) -> int:
        """Take matching files out of the manifest and the table prefixes (a re-created table starts
        empty); they wait under `deleted/` until `purge_at_ns` (None: never). Returns how many.

        Returns once the new manifest is durable and the files are moved.
        """
        with self._changing:
            return self._move_to_trash_unlocked(doomed, purge_at_ns)

    def purge_trash(self, now_ns: int) -> int:
        """Hard-delete trashed files whose time has come; returns how many. Durable on return."""
        n = 0
        for meta in self.store.list(paths.trash_prefix(self.node)):
            when = paths.trash_purge_at(meta.key)
            if when is not None and when <= now_ns:
                self.store.delete(meta.key)
                n += 1
        return n

    def expire(self, now_ns: int) -> int:
        """Delete files entirely older than their database's retention period; returns how many."""
        state = self.catalog.state
        cutoffs = {name: now_ns - db.retention_ns for name, db in state.databases.items()
                   if not db.deleted and db.retention_ns}
        if not cutoffs:
            return 0
        return self.remove_files(lambda f: f.db in cutoffs and f.max_time < cutoffs[f.db])

    def broken_files(self, files: list[PersistedFile]) -> list[tuple[str, str]]:
        """(key, reason) of each listed file that is missing or not readable Parquet (diagnosis only)."""
        broken = []
        for f in files:
            try:
                pq.read_metadata(io.BytesIO(self.store.get(f.key)))
            except NotFound:
                broken.append((f.key, "missing"))
            except Exception as e:  # pyarrow raises several kinds for garbled files
                broken.append((f.key, str(e)))
        return broken

    def parquet_files(self, db: str) -> pa.Table:
        """`system.parquet_files` rows of `db`."""
        files = [f for f in self.manifest.files if f.db == db]
        return pa.table({
            "table_name": pa.array([f.table for f in files], pa.string()),
            "path": pa.array([f.key for f in files], pa.string()),
            "size_bytes": pa.array([f.size for f in files], pa.int64()),
            "row_count": pa.array([f.rows for f in files], pa.int64()),
            "min_time": pa.array([f.min_time for f in files], pa.int64()),
            "max_time": pa.array([f.max_time for f in files], pa.int64()),
        })


def _by_day(node: str, db: str, table: str, upto: int, data: pa.Table) -> list[tuple[str, pa.Table]]:
    """Split rows by UTC day; each part sorted by time, keyed by its final table-file key."""
    times = data.column("time").cast(pa.int64()).to_numpy()
    days = np.floor_divide(times, NS_PER_DAY)
    out = []
    for day in np.unique(days):
        part = data.filter(pa.array(days == day))
        part = part.take(pc.sort_indices(part, sort_keys=[("time", "ascending")]))
        date = datetime.fromtimestamp(int(day) * 86_400, tz=UTC).strftime("%Y-%m-%d")
        out.append((paths.table_file(node, db, table, date, paths.snapshot_file_name(upto)), part))
    return out


def encode_parquet(data: pa.Table, tags: list[str]) -> bytes:
    """Open Parquet: zstd, dictionary-encoded tags, statistics for time pruning, sorted by time."""
    sink = io.BytesIO()
    data = data.replace_schema_metadata(None)
    pq.write_table(data, sink, compression="zstd", use_dictionary=[t for t in tags if t in data.column_names],
                   row_group_size=ROW_GROUP_ROWS, write_statistics=True, coerce_timestamps=None,
                   store_schema=True)
    return sink.getvalue()


def read_parquet(data: bytes) -> pa.Table:
    """Decode a persisted file (for stores DataFusion cannot read natively)."""
    return pq.read_table(io.BytesIO(data))


__all__ = ["Persister", "TAG_TYPE", "encode_parquet", "read_parquet"]
