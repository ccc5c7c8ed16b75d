"""Snapshots: buffered rows → time-partitioned Parquet per table, a manifest, then the buffer and WAL trimmed.

Protocol (each step is safe to crash after):
1. write each new file to `staging/<S>/…` (S = the last WAL segment covered); a new file whose time
   range overlaps live files of its table is instead their compaction: one file holding their rows and
   the new ones, duplicate points merged, which replaces them (`retired`);
2. copy each retired file to `deleted/<purge at>/…`, where housekeeping purges it after a grace period;
3. commit manifest n+1 listing every live file, not the retired ones (put-if-absent): the commit point;
4. under the view lock: copy staged files to their final `tables/…` keys, publish each changed table's
   Delta commit (its new files and retired files together, lakeflux.tableformat), drop the covered rows
   from the buffer and switch queries to manifest n+1, so a query sees each row exactly once and an outside
   reader of the Delta table sees the table before or after the snapshot; then delete the retired files
   from the table prefixes once no query planned before the switch still runs (buffer/viewlock.py: a
   running query never waits for a swap, nor a swap for it);
5. delete the staged files, older manifests (not one whose retired files wait for queries), and WAL
   segments no reader still needs.
A table whose step 1 fails (its data or its keys) is held: the manifest names it with the first WAL segment
of its unpersisted rows, which stay buffered and are replayed from the WAL after a restart (the WAL is kept
from there); the other tables go on, and the held table is retried after a backoff.
Retention and deletes commit a manifest without the files (they name them `retired`), then do step 4.
In a cluster with a compactor the node seals its files (`seal`): a sealed file is never merged again, so
late rows for its time range go to a new file beside it (queries merge them), and the compactor may take
it; once a committed compaction absorbed sealed files, `retire_absorbed` takes them out as deletes do
(copies under deleted/ first, failpoints `retire.<step>`).
No manifest is committed before the previous one's step 4 finished (but for the deletes that wait for
queries), so recovery completes step 4 from the newest manifest (its Delta commits are found by the
manifest they name: never written twice), deletes the retired files of every manifest listed, and deletes
staging of uncommitted snapshots, after fencing any other live process on this node id
(`Persister.recover`). Crash tests arm a failpoint at every step:
`snapshot.<step>`, `compaction.<step>` when the snapshot compacts, `remove.<step>` for retention and
deletes, and `publish.table` after each table's Delta commit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..catalog import Catalog, TableDef
from ..errors import Corrupt, Fenced, LakefluxError, NotFound, Unavailable
from ..failpoints import failpoint
from ..store import paths
from ..store.base import ObjectStore
from ..tableformat import LOG_RETENTION_S, DataFile, Publisher, TableChange
from ..wal import Wal
from . import manifest as mf
from .dedupe import dedupe
from .manifest import HeldTable, Manifest, PersistedFile
from .sqltypes import TAG_TYPE, conform, table_schema
from .tablefiles import by_day, encode_parquet, read_parquet, time_range
from .tables import BufferedTables
from .viewlock import ViewLock

log = logging.getLogger("lakeflux.snapshot")
MANIFESTS_TO_KEEP = 3
# Compaction reads a whole overlapping group into memory while the snapshot holds the buffered rows, so a
# larger group is left to the query-time merge (which reads only the rows where files intersect): the
# 10M-line ingest peaked at 1.2 GiB RSS with 4M rows, with writers' batches slightly out of order making
# each snapshot's file overlap the previous one. Bytes are the files' sizes.
COMPACT_MAX_ROWS = 1_000_000
COMPACT_MAX_BYTES = 64 * 1024 * 1024
# Retired (compacted-away) files wait under deleted/ this long before housekeeping purges them.
RETIRED_GRACE_NS = 3_600 * 10**9
# A table whose snapshot failed is held (its rows stay buffered and in the WAL) and retried by later
# snapshots no sooner than this, doubling per failure up to the cap; other tables persist meanwhile.
TABLE_RETRY_FIRST_S = 2.0
TABLE_RETRY_MAX_S = 300.0
# A snapshot writes, copies and deletes files of every table it covers: that many store calls run at once
# (each waits on fsync or on the network, not the CPU). On the 2-core dev machine 1,000 new table files took
# 10.9 s one at a time, 1.7 s four at a time, 2.1 s eight at a time.
IO_THREADS = 8
# Staging a table holds a few times its buffered bytes at once (rows concatenated, deduplicated, sorted,
# encoded). Tables are staged in parallel only while the buffered bytes of those in progress stay within
# this; a larger table is staged alone. Staging the mixed body's four 60 MB tables at once took the
# 10M-line ingest (benchmarks/ingest.py --memory-only) to 1,040 MiB peak RSS; within this budget, 810 MiB.
# Many small tables still stage eight at a time.
STAGE_BYTES_IN_FLIGHT = 64 * 1024 * 1024
# Recovery commits a manifest to fence another process using this node id before deleting staged files;
# each lost race means that process committed one meanwhile. After this many the staged files are kept.
FENCE_ATTEMPTS = 20

A = TypeVar("A")
R = TypeVar("R")


def _each(fn: Callable[[A], R], items: list[A]) -> list[R]:
    """`fn(item)` for every item, IO_THREADS at a time; the results in order. Returns once every call it
    started finished, raising the first failure (in item order) if any failed."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    results: list[R] = []
    with ThreadPoolExecutor(min(IO_THREADS, len(items)), thread_name_prefix="snapshot-io") as pool:
        for start in range(0, len(items), 4096):  # bounded bookkeeping for 100,000 tables too
            futures = [pool.submit(fn, item) for item in items[start:start + 4096]]
            wait(futures)
            results.extend(f.result() for f in futures)
    return results


class _ByteBudget:
    """Bytes in flight across threads: `hold(n)` waits until `n` more fit within `limit`, or until nothing
    else is held (a single item larger than the limit still proceeds, alone)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._held == 0 or self._held + n <= self._limit)
            self._held += n
        try:
            yield
        finally:
            with self._cond:
                self._held -= n
                self._cond.notify_all()


@dataclass
class _Swap:
    """A committed snapshot still to be made visible: its manifest, the WAL sequence it covers, the files
    it staged, and where each file it retires was copied under deleted/ (to restore it from)."""

    manifest: Manifest
    upto: int
    files: list[PersistedFile]
    trash: dict[str, str] = field(default_factory=dict)
    operation: str = "WRITE"  # the Delta operation it publishes (DELETE for retention and deletes)
    points: str = ""  # names its failpoints `<points>.<step>` instead of by its operation
    # Run under the view lock once everything else is done, just before the manifest changes (a retirement
    # makes queries switch to the compacted files in the same step). It must not fail.
    inside: Callable[[], None] | None = None


# A table's staged files and the live files they replace.
_Staged = tuple[list[PersistedFile], list[PersistedFile]]


@dataclass
class _Retry:
    """When a table whose snapshot failed is tried again, and the delay after its next failure."""

    at: float
    delay: float
    failures: int


class Persister:
    """Owns the persisted state (the current manifest) and the snapshot procedure."""

    def __init__(self, store: ObjectStore, node: str, catalog: Catalog, tables: BufferedTables, wal: Wal,
                 lock: ViewLock, *, wal_segments_to_keep: int = 300,
                 wal_floor: Callable[[], int | None] | None = None, clock: Callable[[], int] = time.time_ns,
                 compact_max_rows: int = COMPACT_MAX_ROWS, compact_max_bytes: int = COMPACT_MAX_BYTES,
                 delta_log_retention_s: float | None = LOG_RETENTION_S) -> None:
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
        # The bytes of each manifest commit whose outcome is unknown, by slot: read before that slot is used.
        self._unsure: dict[int, bytes] = {}
        # Retired files not yet deleted (queries planned before their manifest still run), by the manifest
        # that retired them, and those whose delete failed (tried again at the next change).
        self._retiring: dict[str, int] = {}
        self._failed_deletes: set[str] = set()
        self._retiring_lock = threading.Lock()
        # A committed snapshot whose swap into the table prefixes failed; finished before the next change.
        self._pending_swap: _Swap | None = None
        self.clock = clock  # ns since the epoch: when retired files are purged
        self.compact_max_rows = compact_max_rows
        self.compact_max_bytes = compact_max_bytes
        self.publisher = Publisher(store, log_retention_s=delta_log_retention_s)
        # Held tables (their snapshot failed) and when each is tried again, on this clock (seconds).
        self._retry: dict[tuple[str, str], _Retry] = {}
        self.monotonic: Callable[[], float] = time.monotonic
        # Whether snapshots seal the files they write (a cluster compactor takes sealed files): asked at
        # every snapshot. None: never (a single node, or a cluster without a compactor).
        self.seal: Callable[[], bool] | None = None

    # --- recovery ----------------------------------------------------------------------------------
    def recover(self) -> int:
        """Load the newest manifest and finish an interrupted swap; returns the WAL sequence it covers.

        Blocking; returns once the table prefixes hold every file the manifest lists and none it retired
        (durable). Call before WAL replay, which starts after the returned sequence.

        Another live process may use this node id (a second server started on the same data dir or bucket:
        a single-node takeover) and be in the middle of a snapshot, so recovery touches nothing that process
        may still need before fencing it. Step by step:
        - the newest manifest's files are copied from their staged twins where missing (the same bytes the
          other process would copy) and its Delta commits are found by the manifest they name: idempotent;
        - the keys retired by it and by the older manifests still listed are deleted: a table file's key names
          the WAL sequence of the snapshot that wrote it, so a retired key is never live again, and a
          process reads it after its manifest only for queries planned before (a fenced process's);
        - the staged twins of its own new files (`added`) are kept: the other process may still be copying
          them (its swap, finding one gone, would take the copies out of the table prefixes again). Once a
          newer manifest is committed they are no longer needed, and a later recovery deletes them;
        - every other staged file belongs to a snapshot whose manifest is not committed. Before deleting
          those, this process commits the next manifest slot itself (the newest manifest again, changing
          nothing): the other process's commit of that slot then fails with Fenced, so no manifest naming
          a deleted staged file is ever committed, and that process never swaps the snapshot in, trims its
          WAL or reports the snapshot done. A commit never passes over a slot without reading it
          (`_commit`), so not even a commit whose outcome it lost can take the other process past the fence.
          If the slot is taken, the other process committed meanwhile: recovery starts over from its manifest.
        - legacy moves (`_move_legacy_files`) commit a manifest of their own, so they are fenced the same way.
        Without other staged files nothing is committed: a clean restart writes no manifest.
        """
        for _ in range(FENCE_ATTEMPTS):
            self.manifest, keys = mf.load_latest(self.store, self.node)
            self._finish_loaded_swap(keys)
            added = set(self.manifest.added)
            needed = {paths.staging_file(self.node, f.wal_seq, f.key) for f in self.manifest.files if f.key in added}
            leftovers = [meta.key for meta in self.store.list(paths.staging_prefix(self.node))
                         if meta.key not in needed]
            if not leftovers:
                break
            try:
                self.manifest = self._commit(replace(self.manifest, added=(), retired=()))
            except Fenced:
                log.warning("another process using node id %r committed a snapshot during recovery; recovering "
                            "from it", self.node)
                continue
            log.info("committed snapshot manifest %d before deleting %d staged files of unfinished snapshots",
                     self.manifest.seq, len(leftovers))
            _each(self.store.delete, leftovers)
            break
        else:
            log.warning("staged files of unfinished snapshots are kept: another process using node id %r kept "
                        "committing snapshots during recovery", self.node)
        self._move_legacy_files()
        return self.manifest.wal_seq

    def _finish_loaded_swap(self, keys: list[str]) -> None:
        """Recovery: the loaded manifest's files into the table prefixes (from staging where missing), its
        Delta commits, and the retired files of every listed manifest (`keys`) out: a retired file's delete
        waits for the queries that read it, so a crash can leave an older manifest's behind. Idempotent;
        durable on return."""
        def restore(f: PersistedFile) -> None:
            if self.store.exists(f.key):
                return
            staged = paths.staging_file(self.node, f.wal_seq, f.key)
            try:
                self.store.copy(staged, f.key)
            except NotFound:
                log.error("persisted file %s named by snapshot manifest %d is missing", f.key, self.manifest.seq)

        _each(restore, list(self.manifest.files))
        # Every table gets its Delta commit of this manifest if a crash came first (found by the manifest it
        # names: none is written twice), and tables persisted before publishing began get their first one.
        self._publish_delta(self.manifest, everything=True)
        # A crash inside a swap, or before the deletes that waited for queries: the files a manifest replaced
        # or removed leave the table prefixes now (a compaction's rows are in its new files; their trash
        # copies were made before its commit).
        retired = set(self.manifest.retired)
        for key in keys:
            if paths.parse_seq(key) != self.manifest.seq:
                with contextlib.suppress(Corrupt, NotFound):  # unreadable or gone: nothing to learn from it
                    retired.update(Manifest.from_bytes(self.store.get(key), key).retired)
        live = {f.key for f in self.manifest.files}
        _each(self.store.delete, sorted(retired - live))

    def _move_legacy_files(self) -> None:
        """Move files an earlier version persisted under a key the current layout gives another name (a
        table name escaping to over 255 bytes: only S3 stores held those) to their current keys, where
        queries look: copy, commit a manifest naming the new keys, delete the old. Each step is repeated
        harmlessly if a crash interrupts it. Durable on return."""
        moved = {f.key: paths.current_table_file(self.node, f.db, f.table, f.key) for f in self.manifest.files}
        moved = {old: new for old, new in moved.items() if old != new}
        if not moved:
            return
        for old, new in moved.items():
            self.store.copy(old, new)
        files = tuple(replace(f, key=moved.get(f.key, f.key)) for f in self.manifest.files)
        self.manifest = self._commit(replace(self.manifest, seq=self.manifest.seq + 1, files=files,
                                             retired=tuple(moved), added=tuple(moved.values())))
        self._publish_delta(self.manifest)
        for old in moved:
            self.store.delete(old)
        log.info("moved %d persisted files to the current key layout", len(moved))

    # --- snapshot ----------------------------------------------------------------------------------
    def _snapshot_unlocked(self, upto: int) -> Manifest | None:
        """`snapshot` with the change lock held."""
        self._finish_swap()
        if upto < self.manifest.wal_seq or (upto == self.manifest.wal_seq and not self.manifest.held):
            return None  # nothing new (held tables are retried at the same WAL sequence)
        sealed = upto if self.seal is not None and self.seal() else self.manifest.sealed
        new_files, retired, held = self._stage_all(upto)
        if not new_files and held and set(held) == set(self.manifest.held):
            return None  # only held tables have rows, and none of them persisted: nothing changes
        compacting = bool(retired)
        _step("staged", compacting)
        trash = self._trash(retired)
        if compacting:
            failpoint("compaction.trashed")
        gone = {f.key for f in retired} | {f.key for f in new_files}
        kept = tuple(f for f in self.manifest.files if f.key not in gone)
        new = self._commit(Manifest(seq=self.manifest.seq + 1, wal_seq=upto, files=kept + tuple(new_files),
                                    retired=tuple(f.key for f in retired), added=tuple(f.key for f in new_files),
                                    held=held, sealed=max(sealed, self.manifest.sealed),
                                    compaction=self.manifest.compaction))
        _step("committed", compacting)
        self._pending_swap = _Swap(new, upto, new_files, trash)
        self._finish_swap()
        _step("swapped", compacting)
        self._clean_up(upto, new_files)
        _step("cleaned", compacting)
        log.info("snapshot %d: %d rows in %d files through WAL segment %d (%d overlapping files compacted)",
                 new.seq, sum(f.rows for f in new_files), len(new_files), upto, len(retired))
        return new

    def _stage_all(self, upto: int) -> tuple[list[PersistedFile], list[PersistedFile], tuple[HeldTable, ...]]:
        """Stage one file per table and day of the buffered rows through `upto`; returns the staged files,
        the live files they replace (compacted into them), and the tables held back. Returns once the
        staged files are durable.

        Each table on its own: one whose staging fails is logged and held (its rows stay buffered and in
        the WAL, the manifest names it so a restart replays them) and retried after a backoff, while the
        other tables persist."""
        chunks = self.tables.chunks_upto(upto)
        state = self.catalog.state
        new_files: list[PersistedFile] = []
        retired: list[PersistedFile] = []
        held: list[HeldTable] = []
        now = self.monotonic()
        todo: list[tuple[str, str, TableDef, list[pa.Table]]] = []
        for (db, table), parts in chunks.items():
            dbdef = state.live_db(db)
            tdef = dbdef.tables.get(table) if dbdef is not None else None
            if tdef is None:
                self._retry.pop((db, table), None)
                continue  # deleted meanwhile: its rows are dropped with the buffer below
            retry = self._retry.get((db, table))
            if retry is not None and now < retry.at:
                held.append(self._held(db, table))
                continue
            todo.append((db, table, tdef, parts))

        budget = _ByteBudget(STAGE_BYTES_IN_FLIGHT)

        def stage(item: tuple[str, str, TableDef, list[pa.Table]]) -> _Staged | Exception:
            db, table, tdef, parts = item
            try:
                # Buffer sizes, not nbytes: nbytes walks every chunk's offsets (25 µs for a 1,300-row chunk;
                # a snapshot of 600 segments' chunks spent 3% of ingest's CPU here). A slice counts its whole
                # buffers, which only makes the budget stricter.
                with budget.hold(sum(p.get_total_buffer_size() for p in parts)):
                    return self._stage_table(db, table, tdef.tags, table_schema(tdef.columns), parts, upto,
                                             tdef.created_seq)
            except Exception as e:  # any failure of this table's data or keys: the others go on
                return e

        for (db, table, _, _), result in zip(todo, _each(stage, todo), strict=True):
            if isinstance(result, Fenced):
                raise result
            if isinstance(result, Exception):
                held.append(self._held(db, table))
                self._table_failed(db, table, upto, result, now)
                continue
            retry = self._retry.pop((db, table), None)
            if retry is not None:
                log.info("snapshot of table %s.%s succeeded after %d failures", db, table[:200], retry.failures)
            new_files.extend(result[0])
            retired.extend(result[1])
        return new_files, retired, tuple(held)

    def _stage_table(self, db: str, table: str, tags: list[str], schema: pa.Schema, parts: list[pa.Table],
                     upto: int, table_seq: int | None = None) -> _Staged:
        """Stage one table's files (one per day); returns them and the live files they replace. Tables are
        staged in parallel: this reads the manifest and the store, and writes only this table's keys."""
        # Chunks are in commit order, so rows are in write order: later writes win each point's fields,
        # and every persisted file is free of duplicate points (queries merge only across files).
        data = dedupe(pa.concat_tables([conform(p, schema) for p in parts]), tags)
        files: list[PersistedFile] = []
        retired: list[PersistedFile] = []
        try:
            for key, part in by_day(self.node, db, table, upto, data):
                part, replaced = self._compact(db, table, part, schema, tags, {f.key for f in retired})
                retired.extend(replaced)
                files.append(self._stage(db, table, key, part, tags, upto, table_seq))
        except Exception:
            for f in files:  # staged days of a table that failed: no manifest will name them
                with contextlib.suppress(Exception):
                    self.store.delete(paths.staging_file(self.node, upto, f.key))
            raise
        return files, retired

    def _held(self, db: str, table: str) -> HeldTable:
        """The manifest entry of a table held back: from its oldest buffered segment (or earlier hold) on."""
        earlier = [h.since for h in self.manifest.held if h.db == db and h.table == table]
        chunks = self.tables.chunks(db, table)
        since = min(earlier + ([chunks[0][0]] if chunks else []), default=self.manifest.wal_seq + 1)
        return HeldTable(db, table, since)

    def _table_failed(self, db: str, table: str, upto: int, error: Exception, now: float) -> None:
        retry = self._retry.get((db, table))
        delay = TABLE_RETRY_FIRST_S if retry is None else min(retry.delay * 2, TABLE_RETRY_MAX_S)
        failures = 1 if retry is None else retry.failures + 1
        self._retry[(db, table)] = _Retry(at=now + delay, delay=delay, failures=failures)
        log.error("snapshot of table %s.%s through WAL segment %d failed (failure %d; its rows stay buffered "
                  "and in the WAL, other tables persist; retried in %.0f s): %s", db, table[:200], upto, failures,
                  delay, error, exc_info=error if failures == 1 else None)

    def _compact(self, db: str, table: str, part: pa.Table, schema: pa.Schema, tags: list[str],
                 taken: set[str]) -> tuple[pa.Table, list[PersistedFile]]:
        """New rows of one table and day (sorted by time), merged after the rows of the live files their
        time range overlaps, with those files: the merged rows replace them, so the table's files stay
        free of overlaps and queries read them natively. `part` and no files when nothing overlaps, the
        group is over the size limit, or one of its files is unreadable (queries merge those as they read).
        Reads only; nothing is written here.
        """
        lo, hi = time_range(part)
        group = self.manifest.overlapping(db, table, lo, hi)
        if not group or any(f.key in taken for f in group):
            # Files never span days, so another part of this snapshot cannot have claimed one; if one
            # did, merging it twice would persist its rows twice.
            return part, []
        rows, size = part.num_rows + sum(f.rows for f in group), sum(f.size for f in group)
        if rows > self.compact_max_rows or size > self.compact_max_bytes:
            log.info("not compacting %d overlapping files of %s.%s (%d rows, %d bytes, over the limit): "
                     "queries merge them as they read", len(group), db, table, rows, size)
            return part, []
        old = self._read_group(group, schema)
        if old is None:
            return part, []
        # Files in write order, then the new rows: later writes win each point's fields (dedupe keeps a
        # point where it was first written, so the rows are sorted by time again for row-group pruning).
        merged = dedupe(pa.concat_tables([*old, part]), tags)
        return merged.take(pc.sort_indices(merged, sort_keys=[("time", "ascending")])), group

    def _read_group(self, group: list[PersistedFile], schema: pa.Schema) -> list[pa.Table] | None:
        """The files' rows as `schema`'s columns, or None (logged) if one is missing or not Parquet; a store
        that is unavailable raises (the snapshot fails and is retried)."""
        try:
            return [conform(read_parquet(self.store.get(f.key)), schema) for f in group]
        except NotFound as e:
            problem: Exception = e
        except LakefluxError:
            raise
        except Exception as e:  # pyarrow raises several kinds for garbled files
            problem = e
        log.error("not compacting %s: a file is unreadable (%s)", ", ".join(f.key for f in group), problem)
        return None

    def _stage(self, db: str, table: str, key: str, part: pa.Table, tags: list[str], upto: int,
               table_seq: int | None = None) -> PersistedFile:
        """Write `part` to the staging twin of table file `key`; returns its manifest entry once durable."""
        body = encode_parquet(part, tags)
        self.store.put(paths.staging_file(self.node, upto, key), body)
        lo, hi = time_range(part)
        return PersistedFile(db=db, table=table, key=key, rows=part.num_rows, size=len(body), min_time=lo,
                             max_time=hi, wal_seq=upto, table_seq=table_seq)

    def _trash(self, retired: list[PersistedFile]) -> dict[str, str]:
        """Copy each file about to be retired under deleted/, purged after RETIRED_GRACE_NS; returns where
        each went. Returns once the copies are durable: before the commit, so a committed retirement can
        always be undone (a failed swap) and its files outlive it by the grace period."""
        purge_at = self.clock() + RETIRED_GRACE_NS
        trash = {f.key: paths.trash_file(self.node, purge_at, f.key) for f in retired}
        for key, copy in trash.items():
            self.store.copy(key, copy)
        return trash

    def _commit(self, new: Manifest) -> Manifest:
        """Commit `new` at the slot after the current manifest; returns it (with that seq) once durable.

        Raises Fenced when another process holds the slot, Unavailable when the outcome is unknown. A slot is
        never passed over unread (it may be the one a process taking over this node committed to fence this
        one: `recover`): after an unknown outcome the next commit reads that slot first, takes it if empty,
        passes over it if our lost attempt landed there, and raises Fenced if another process's manifest did.
        """
        seq = self.manifest.seq + 1
        while (lost := self._unsure.get(seq)) is not None:
            key = paths.snapshot_manifest(self.node, seq)
            try:
                there = self.store.get(key)
            except NotFound:
                break  # the lost attempt never landed: the slot is free
            if there != lost:
                raise Fenced(f"fenced: snapshot manifest {key} was written by another server with node id "
                             f"{self.node!r}")
            seq += 1
        attempt = replace(new, seq=seq)
        try:
            mf.commit(self.store, self.node, attempt)
        except Unavailable:
            self._unsure[seq] = attempt.to_bytes()
            raise
        self._unsure.clear()
        return attempt

    def _finish_swap(self) -> None:
        """Make a committed snapshot visible under the view lock: copy its staged files to their table keys,
        drop its rows from the buffer, switch queries to its manifest. Returns once those are durable; the
        files it retires are deleted from the table prefixes once no query planned before the switch still
        runs (at once when none does, else when the last such query closes: `_delete_retired`). A failure
        undoes what this attempt changed in the table prefixes and leaves the swap pending (every step is
        idempotent): the next change finishes it first, as recovery would after a crash, and queries
        meanwhile see the old manifest's files beside the buffered rows."""
        self._delete_retired(self._undeleted())  # retired deletes that failed earlier: their readers are gone
        swap = self._pending_swap
        if swap is None:
            return
        with self.lock.write():
            self._publish(swap)
            try:
                self._publish_delta(swap.manifest, operation=swap.operation)
            except Exception:
                self._unpublish(swap)
                raise
            if swap.files or swap.manifest.retired:
                _step("published", bool(swap.manifest.retired) and bool(swap.files), swap.operation, swap.points)
            self.tables.drop_upto(swap.upto, held={(h.db, h.table) for h in swap.manifest.held})
            if swap.inside is not None:
                swap.inside()
            with self._retiring_lock:
                # Until deleted, queries read those tables' files by name, not by listing their prefix.
                self._retiring.update(dict.fromkeys(swap.manifest.retired, swap.manifest.seq))
            self.manifest = swap.manifest
        self._pending_swap = None
        retired, points = list(swap.manifest.retired), swap.points
        if retired:
            self.lock.after_readers(lambda: self._delete_retired(retired, points))

    def _publish_delta(self, manifest: Manifest, *, operation: str = "WRITE", everything: bool = False) -> None:
        """One Delta commit per table `manifest` changed (every table it lists too, with `everything`:
        recovery); returns once they are durable (docs/open-tables.md). Call with the manifest's new files
        in place and its retired files not yet deleted: a reader of the newest version finds its files."""
        roots: dict[str, list[PersistedFile]] = {}
        for f in manifest.files:
            roots.setdefault(paths.table_root_of(f.key), []).append(f)
        changed = {paths.table_root_of(k) for k in (*manifest.added, *manifest.retired)}
        if everything:
            changed |= set(roots)
        state = self.catalog.state
        added = set(manifest.added)
        changes = []
        for root in sorted(changed):
            live = roots.get(root, [])
            columns = None
            if live:
                dbdef = state.live_db(live[0].db)
                tdef = dbdef.tables.get(live[0].table) if dbdef is not None else None
                columns = dict(tdef.columns) if tdef is not None else None
            changes.append(TableChange(
                root=root, columns=columns, live=tuple(_data_file(f) for f in live),
                added=tuple(_data_file(f) for f in live if f.key in added),
                removed=tuple(k for k in manifest.retired if paths.table_root_of(k) == root), operation=operation))
        many = len(changes) > 1
        self.publisher.publish(manifest.seq, changes, after_each=(lambda: failpoint("publish.table")) if many else None)

    def _publish(self, swap: _Swap) -> None:
        """Copy the swap's staged files to their table keys; returns once the copies are durable. On failure
        take them all out again and raise, so queries never see them beside the same rows in the buffer."""
        def publish(f: PersistedFile) -> None:
            self.store.copy(paths.staging_file(self.node, swap.upto, f.key), f.key)

        try:
            for f in swap.files[:1]:
                publish(f)
                _step("copying", bool(swap.manifest.retired))
            _each(publish, swap.files[1:])
        except Exception:
            self._unpublish(swap)
            raise

    def _unpublish(self, swap: _Swap) -> None:
        # These keys are new to this snapshot (named by its WAL sequence): removing them all also catches
        # a copy that landed although its reply was lost.
        def unpublish(f: PersistedFile) -> None:
            with contextlib.suppress(Exception):
                self.store.delete(f.key)

        _each(unpublish, swap.files)

    def _delete_retired(self, keys: list[str], points: str = "") -> None:
        """Delete retired files from the table prefixes (no query reads them any more: their manifest's
        successor is in use and every query planned before it has closed); returns once the deletes are
        durable. One that fails is logged and tried again at the next change, and its manifest is kept
        meanwhile: a recovery deletes the retired files of every manifest it finds."""
        for i, key in enumerate(keys):
            try:
                self.store.delete(key)
            except Exception as e:
                with self._retiring_lock:
                    self._failed_deletes.add(key)
                log.error("deleting retired file %s failed (tried again at the next snapshot): %s", key, e)
                continue
            with self._retiring_lock:
                self._retiring.pop(key, None)
                self._failed_deletes.discard(key)
            if i == 0:
                failpoint(f"{points or 'compaction'}.retiring")

    def _undeleted(self) -> list[str]:
        with self._retiring_lock:
            return sorted(self._failed_deletes)

    def retiring_roots(self) -> frozenset[str]:
        """Table prefixes still holding files a newer manifest retired: a query planned now reads those
        tables' files by name, since a listing of the prefix would find the retired files beside their
        replacements. Empty unless a query planned before the retirement is still running."""
        with self._retiring_lock:
            return frozenset(paths.table_root_of(k) for k in self._retiring)

    def _clean_up(self, upto: int, new_files: list[PersistedFile]) -> None:
        _each(self.store.delete, [paths.staging_file(self.node, upto, f.key) for f in new_files])
        _, keys = mf.load_latest(self.store, self.node)
        with self._retiring_lock:
            retiring = {paths.snapshot_manifest(self.node, seq) for seq in self._retiring.values()}
        for key in keys[:-MANIFESTS_TO_KEEP]:
            if key not in retiring:  # a recovery deletes what it retired, if this process cannot
                self.store.delete(key)
        floor = min(upto - self.wal_segments_to_keep, self.manifest.first_unpersisted - 1)
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
        new = self._commit(replace(self.manifest, seq=self.manifest.seq + 1, retired=tuple(f.key for f in gone),
                                   added=(), files=tuple(f for f in self.manifest.files if not doomed(f))))
        failpoint("remove.committed")
        self._pending_swap = _Swap(new, self.manifest.wal_seq, [], operation="DELETE")
        self._finish_swap()
        failpoint("remove.swapped")
        return len(gone)

    def retire_absorbed(self, keys: frozenset[str] | set[str], compaction: int,
                        inside: Callable[[], None] | None = None) -> int:
        """Take sealed files whose rows cluster compaction manifest `compaction` (or an earlier one) holds
        out of this node's manifest and table prefixes (copied under deleted/ first, purged after the retired
        files' grace period); the new manifest names `compaction`. `inside` runs under the view lock as the
        files leave the view, and must not fail (the node's queries switch to the compacted files there). Returns
        how many files went; durable on return (the manifest and the copies; the files leave the table
        prefixes once no query planned before still runs: `_finish_swap`). Unsealed keys are refused
        (ValueError): their node may still rewrite them."""
        with self._changing:
            self._finish_swap()  # build on the newest committed manifest
            gone = [f for f in self.manifest.files if f.key in keys]
            if any(not self.manifest.is_sealed(f) for f in gone):
                raise ValueError(f"not retiring unsealed files of node {self.node!r}")
            if not gone:
                return 0
            trash = self._trash(gone)
            failpoint("retire.trashed")
            doomed = {f.key for f in gone}
            new = self._commit(replace(self.manifest, seq=self.manifest.seq + 1, retired=tuple(sorted(doomed)),
                                       added=(), files=tuple(f for f in self.manifest.files if f.key not in doomed),
                                       compaction=max(compaction, self.manifest.compaction)))
            failpoint("retire.committed")
            self._pending_swap = _Swap(new, self.manifest.wal_seq, [], trash, operation="DELETE", points="retire",
                                       inside=inside)
            self._finish_swap()
            failpoint("retire.swapped")
            log.info("retired %d files absorbed by cluster compaction %d (manifest %d)", len(gone), compaction,
                     new.seq)
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

        Returns once the new manifest is durable and in use; the objects are deleted once no query planned
        before still runs (at once when none does).
        """
        with self._changing:
            return self._remove_files_unlocked(doomed)

    def move_to_trash(self, doomed: Callable[[PersistedFile], bool], purge_at_ns: int | None) -> int:
        """Take matching files out of the manifest and the table prefixes (a re-created table starts
        empty); they wait under `deleted/` until `purge_at_ns` (None: never). Returns how many.

        Returns once the new manifest and the trash copies are durable; the files leave the table prefixes
        once no query planned before still runs (at once when none does).
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
        """`system.parquet_files` rows of `db`: each live file, and `delta_version`, the version of its
        table's Delta log that lists exactly the live files (for engines that take file lists)."""
        files = [f for f in self.manifest.files if f.db == db]
        versions = {f.table: self.publisher.version_of(paths.table_prefix(self.node, db, f.table)) for f in files}
        return pa.table({
            "table_name": pa.array([f.table for f in files], pa.string()),
            "path": pa.array([f.key for f in files], pa.string()),
            "size_bytes": pa.array([f.size for f in files], pa.int64()),
            "row_count": pa.array([f.rows for f in files], pa.int64()),
            "min_time": pa.array([f.min_time for f in files], pa.int64()),
            "max_time": pa.array([f.max_time for f in files], pa.int64()),
            "delta_version": pa.array([versions[f.table] for f in files], pa.int64()),
        })


def _step(name: str, compacting: bool, operation: str = "WRITE", points: str = "") -> None:
    """Crash-test point after snapshot step `name`; a compacting snapshot also offers `compaction.<name>`,
    retention and deletes (operation DELETE) offer `remove.<name>` instead, and a swap with its own
    `points` offers `<points>.<name>`."""
    if points:
        failpoint(f"{points}.{name}")
        return
    if operation == "DELETE":
        failpoint(f"remove.{name}")
        return
    failpoint(f"snapshot.{name}")
    if compacting:
        failpoint(f"compaction.{name}")


def _data_file(f: PersistedFile) -> DataFile:
    return DataFile(key=f.key, size=f.size, rows=f.rows, min_time=f.min_time, max_time=f.max_time)


__all__ = ["Persister", "TAG_TYPE"]
