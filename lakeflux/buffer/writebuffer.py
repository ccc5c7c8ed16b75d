"""The write path: validate against the catalog, group-commit to the WAL, make rows queryable.

Writers append to the open batch and wait; a flush commits the whole batch as one WAL segment
when the flush interval has passed, or early once the batch reached the flush size: at once when no
other client write is on its way in (its body being read, parsed or checked), else when the batch
holds twice the flush size. A lone writer of large bodies so commits each body at once instead of
one per interval, while writers whose bodies arrive together (two connections in step) still share
a commit: splitting theirs measured slower, each commit has fixed costs. Only after the commit are
the rows queryable, waiting writers answered, and WAL listeners (the engine) told.

Background writes (plugin write-backs) are committed like any other, but a commit that holds only
background writes does not count for the spacing of client commits: a client write after a quiet
interval commits at once even if a plugin's write-back was committed a moment before. Without
this, a WAL trigger writing one line per call made every later client write wait for the flush
interval. Background-only commits are still spaced by the interval from the previous commit of
any kind, so a plugin whose write-backs trigger itself loops at most once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..catalog import INTERNAL_DB, Catalog, CatalogState
from ..errors import Corrupt, Fenced, Invalid, LakefluxError, Unavailable
from ..lineprotocol import LineError, ParseResult
from ..wal import Segment, Wal, WalListener, WalTable
from .manifest import Manifest
from .persist import Persister
from .tables import BufferedTables
from .validate import CheckedWrite, check_write

log = logging.getLogger("lakeflux.buffer")
# Temp files older than this are a crashed writer's leftovers (a live write finishes in seconds).
TEMP_GRACE_S = 3_600.0
# A batch past the flush size with no client write on its way waits this long for one to start before it
# commits alone (module docstring).
FLUSH_LINGER_S = 0.002


@dataclass
class _Pending:
    db: str
    tables: list[tuple[str, pa.Table, tuple[str, ...], int]]  # name, rows, tags, TableDef.created_seq
    rows: int
    done: asyncio.Future[None] | None  # None for no_sync writes
    background: bool = False  # a plugin's write-back: never makes a client's commit wait


@dataclass(frozen=True)
class Prechecked:
    """A write checked against one catalog state (`WriteBuffer.precheck`)."""

    state: CatalogState
    db: str
    checked: CheckedWrite


@dataclass
class _Batch:
    entries: list[_Pending] = field(default_factory=list)
    rows: int = 0
    clients: bool = False  # holds a client (not background) write

    def add(self, entry: _Pending) -> bool:
        """Append; True if this is the batch's first entry or its first client write (the loop re-plans)."""
        first = not self.entries or (not entry.background and not self.clients)
        self.entries.append(entry)
        self.rows += entry.rows
        self.clients = self.clients or not entry.background
        return first


class Arrival:
    """A client write on its way to the open batch (see `WriteBuffer.arriving`)."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer
        self._open = True

    def joined(self) -> None:
        """The write joined the open batch or gave up (idempotent)."""
        if self._open:
            self._open = False
            self._buffer._arrived()


@dataclass
class WriteStats:
    segments: int = 0
    rows: int = 0
    bytes: int = 0
    failures: int = 0
    last_flush_seconds: float = 0.0
    apply_seconds: float = 0.0  # making committed rows queryable (and telling WAL listeners), in total


class WriteBuffer:
    """Owns the open WAL batch, the flush loop and the queryable in-memory rows."""

    def __init__(self, catalog: Catalog, wal: Wal, *, flush_interval: float = 1.0, flush_size: int = 10_000,
                 max_pending_writes: int = 100_000, monotonic: Callable[[], float] = time.monotonic,
                 flush_linger: float = FLUSH_LINGER_S) -> None:
        self.catalog = catalog
        self.wal = wal
        self.tables = BufferedTables()
        self.stats = WriteStats()
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._flush_linger = flush_linger
        self._max_pending_writes = max_pending_writes
        self._monotonic = monotonic
        self._batch = _Batch()
        self._arriving = 0  # client writes between the start of their request and joining the batch
        self._next_seq = 0
        # Every segment ≤ this is settled (applied to the buffer, or failed): a snapshot must never cover
        # the segment still being committed, or drop_upto would drop rows chunks_upto never saw.
        self._settled_seq = -1
        self._listeners: list[WalListener] = []
        self._catalog_lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.fenced: Fenced | None = None
        # Set on a node that does not ingest (a cluster node without the ingest role): every write gets it.
        self.refusal: LakefluxError | None = None
        self.persister: Persister | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._oldest_unpersisted: float | None = None
        self.snapshot_policy = SnapshotPolicy()
        self.housekeeping_interval = 60.0
        self._last_housekeeping = monotonic()
        self._now_ns = time.time_ns
        self._last_temp_sweep_ns: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def add_listener(self, listener: WalListener) -> None:
        self._listeners.append(listener)

    def recover(self, after: int = -1, *, fail_on_error: bool = False) -> int:
        """Replay committed segments after `after` into the queryable buffer; returns how many.

        Blocking; call before `start`. Rows of databases or tables no longer in the catalog are skipped.
        """
        n = 0
        self._next_seq = after + 1
        for seq in self.wal.list_seqs(after):
            self._next_seq = max(self._next_seq, seq + 1)
        # A table created while a segment was being committed is stamped with the sequence after it; if
        # the process died before that segment landed, the WAL ends below the stamp. Numbering from the WAL
        # alone would give the table's next rows a sequence below its stamp, and _apply would drop them
        # as an earlier table's rows after acknowledging them. Sequences may skip; they must not go back.
        self._next_seq = max(self._next_seq, self.catalog.state.max_table_wal_seq(self.wal.node))
        self._settled_seq = self._next_seq - 1
        n += self._recover_held(after, fail_on_error=fail_on_error)
        for segment in self.wal.replay(after, fail_on_error=fail_on_error):
            self._apply(segment)
            n += 1
        if self.tables.rows:
            self._oldest_unpersisted = self._monotonic()
        return n

    def _recover_held(self, after: int, *, fail_on_error: bool) -> int:
        """Replay the rows of tables the last snapshot held back (their snapshot failed) from segments up to
        `after`: only those tables' chunks are read. Returns how many segments were read."""
        held = {(h.db, h.table): h.since for h in self.persister.manifest.held} if self.persister else {}
        if not held:
            return 0
        n = 0
        for seq in self.wal.list_seqs(min(held.values()) - 1):
            if seq > after:
                break
            wanted = {key for key, since in held.items() if since <= seq}
            try:
                segment = self.wal.read(seq, wanted)
            except Corrupt as e:
                if fail_on_error:
                    raise
                log.error("skipping corrupt WAL segment: %s", e)
                continue
            self._apply(segment)
            n += 1
        return n

    @property
    def next_seq(self) -> int:
        return self._next_seq

    async def start(self) -> None:
        """Start the flush loop on the running event loop."""
        self._catalog_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._flush_loop(), name="wal-flush")

    async def stop(self) -> None:
        """Flush what is open, then stop the loop. Returns after the last commit finished."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._snapshot_task is not None:
            await self._snapshot_task

    # --- snapshots ---------------------------------------------------------------------------------
    def _maybe_snapshot(self) -> None:
        """Start a snapshot, or else housekeeping, in the background when due (one task at a time)."""
        if self.persister is None or (self._snapshot_task is not None and not self._snapshot_task.done()):
            return
        if self.fenced is not None:
            return  # another server owns this node now: a fenced server never changes the store again
        last = self._settled_seq
        if self._oldest_unpersisted is not None and self.snapshot_policy.due(
                segments=last - self.persister.manifest.wal_seq, buffered_bytes=self.tables.nbytes,
                age=self._monotonic() - self._oldest_unpersisted):
            self._snapshot_task = asyncio.create_task(self.snapshot(last), name="snapshot")
        elif self._monotonic() - self._last_housekeeping >= self.housekeeping_interval:
            self._last_housekeeping = self._monotonic()
            self._snapshot_task = asyncio.create_task(self.housekeep(), name="housekeeping")

    async def housekeep(self) -> None:
        """Delete files past their database's retention, trashed files past their hard-delete time, temp
        files that crashed writers left behind (stores that write through temp files), and the Delta log
        files past the log retention of tables checkpointed since (lakeflux.tableformat.publish). Returns
        once those deletes are durable; failures are logged and retried at the next round."""
        if self.persister is None:
            return
        now = self._now_ns()
        sweep = getattr(self.persister.store, "sweep_temp", None)
        # The sweep walks the whole store: once per grace period is enough (housekeeping runs every minute).
        if self._last_temp_sweep_ns is not None and now - self._last_temp_sweep_ns < TEMP_GRACE_S * 1e9:
            sweep = None
        try:
            expired = await asyncio.to_thread(self.persister.expire, now)
            purged = await asyncio.to_thread(self.persister.purge_trash, now)
            cleaned = await asyncio.to_thread(self.persister.publisher.clean_logs, now)  # never raises
            swept = 0
            if sweep is not None:
                swept = await asyncio.to_thread(sweep, TEMP_GRACE_S, now / 1e9)
                self._last_temp_sweep_ns = now
        except Exception:
            log.exception("housekeeping failed; it is retried on the next round")
            return
        if expired or purged or swept or cleaned:
            log.info("housekeeping: %d files past retention, %d deleted files purged, %d orphaned temp files "
                     "removed, %d expired Delta log files deleted", expired, purged, swept, cleaned)

    async def persist(self) -> Manifest | None:
        """Snapshot now: commit the open batch (no_sync writes included), then persist every buffered row
        of every table (`lakeflux persist`); returns the new manifest, or None when nothing was buffered.

        Returns once the rows' Parquet files, the manifest and the tables' Delta commits are durable and
        the buffer no longer holds those rows. Raises Unavailable when the commit or the snapshot fails
        (the rows stay buffered and in the WAL), Fenced when another server owns this node.
        """
        if self.persister is None:
            raise Unavailable("this server does not persist to an object store")
        if self.fenced is not None:
            raise self.fenced
        if self._batch.entries and self._task is not None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._batch.add(_Pending(db="", tables=[], rows=0, done=done, background=True))
            assert self._wake is not None
            self._wake.set()
            await done  # the batch it joined is committed (or its failure raised here)
        while self._settled_seq < self._next_seq - 1:  # a flush that took the batch before this call
            await asyncio.sleep(0.005)
        return await self._snapshot_settled()

    async def persist_at_stop(self) -> None:
        """After `stop`: persist what is still buffered, so outside readers of the lake see every committed
        row after a clean stop. Returns once that snapshot is durable; a failure is logged (the rows are
        in the WAL and are replayed at the next start)."""
        if self.persister is None or self.fenced is not None or self.tables.rows == 0:
            return
        try:
            manifest = await self._snapshot_settled()
        except Exception:
            log.exception("persisting the buffered rows at stop failed; they are replayed from the WAL at start")
            return
        if manifest is not None:
            log.info("persisted the buffered rows at stop (snapshot %d)", manifest.seq)

    async def _snapshot_settled(self) -> Manifest | None:
        assert self.persister is not None
        started = self._monotonic()
        try:
            manifest = await asyncio.to_thread(self.persister.snapshot, self._settled_seq)
        except Fenced as e:
            self.fenced = e
            raise
        except LakefluxError:
            raise
        except Exception as e:
            raise Unavailable(f"snapshot failed: {e}") from e
        self._oldest_unpersisted = None if self.tables.rows == 0 else started
        return manifest

    async def snapshot(self, upto: int | None = None) -> None:
        """Persist buffered rows through WAL segment `upto` (default: the last committed); logs failures."""
        if self.persister is None or self.fenced is not None:
            return
        upto = self._settled_seq if upto is None else min(upto, self._settled_seq)
        started = self._monotonic()
        try:
            await asyncio.to_thread(self.persister.snapshot, upto)
        except Fenced as e:
            # Another server committed our next manifest: it is live on this node id, so stop writing too.
            self.fenced = e
            log.error("%s", e)
            return
        except Exception:
            log.exception("snapshot through WAL segment %d failed; the rows stay buffered and in the WAL", upto)
            return
        self._oldest_unpersisted = None if self.tables.rows == 0 else started

    # --- writing -----------------------------------------------------------------------------------
    def arriving(self) -> Arrival:
        """Count a client write as on its way in from the start of its request (call on the event loop);
        `write(arrival=…)` or the caller's `joined()` ends it. While one is counted, a batch past the flush
        size waits for it (up to twice the flush size) instead of committing without it."""
        self._arriving += 1
        return Arrival(self)

    def _arrived(self) -> None:
        self._arriving -= 1
        if self._wake is not None and self._arriving == 0 and self._full():
            self._wake.set()

    def _full(self) -> bool:
        """Whether the open batch commits now rather than at the next interval."""
        rows = self._batch.rows
        return rows >= 2 * self._flush_size or (rows >= self._flush_size and self._arriving == 0)

    async def write(self, db: str, parsed: ParseResult, *, accept_partial: bool, no_sync: bool,
                    body: bytes | None = None, background: bool = False,
                    arrival: Arrival | None = None, prechecked: Prechecked | None = None) -> list[LineError]:
        """Validate and write; returns the line errors of a partial write.

        Returns after the WAL segment holding the accepted rows is committed and queryable, or, with
        `no_sync`, once they are buffered. Raises Invalid (nothing written) when `accept_partial` is
        false and any line is bad, Unavailable when the buffer is full or the commit failed, Fenced
        when another server owns this node's WAL. `background` marks a plugin's write-back (see the
        module docstring); writes are committed in arrival order either way. `arrival` (from `arriving`)
        ends when the rows join the open batch. `prechecked` (from `precheck`, on another thread) is used
        when the catalog has not changed since; otherwise the write is checked again here.
        """
        if db == INTERNAL_DB:
            raise Invalid("cannot modify internal db")
        if self.fenced is not None:
            raise self.fenced
        if self.refusal is not None:
            raise self.refusal
        if self._stopping:
            raise Unavailable("server is shutting down")
        if len(self._batch.entries) >= self._max_pending_writes:
            raise Unavailable("write buffer is full; retry shortly", retry_after=self._flush_interval)
        checked = await self._check_and_commit_schema(db, parsed, body, accept_partial, prechecked)
        if not checked.tables:
            return checked.errors
        loop = asyncio.get_running_loop()
        done = None if no_sync else loop.create_future()
        entry = _Pending(db, [(t.name, t.data, t.tags, self._table_seq(db, t.name)) for t in checked.tables],
                         checked.rows, done, background)
        replan = self._batch.add(entry)
        if arrival is not None:
            arrival.joined()
        if self._wake is not None and (replan or self._full()):
            self._wake.set()
        if done is not None:
            await done
        return checked.errors

    def precheck(self, db: str, parsed: ParseResult, body: bytes | None) -> Prechecked:
        """Check a parse result against the catalog as it is now, from any thread (a parse thread, so that
        checks of concurrent writes run side by side rather than on the event loop); `write` uses it
        unless the catalog changed meanwhile. Pure: nothing is written."""
        state = self.catalog.state
        return Prechecked(state, db, check_write(state, db, parsed, body))

    def _table_seq(self, db: str, table: str) -> int:
        """The identity (TableDef.created_seq) of the live table rows are written to; -1 if it is gone."""
        dbdef = self.catalog.state.live_db(db)
        tdef = dbdef.tables.get(table) if dbdef is not None else None
        return tdef.created_seq if tdef is not None else -1

    async def _check_and_commit_schema(self, db: str, parsed: ParseResult, body: bytes | None,
                                       accept_partial: bool, prechecked: Prechecked | None = None) -> CheckedWrite:
        state = self.catalog.state
        if prechecked is not None and prechecked.state is state and prechecked.db == db:
            checked = prechecked.checked
        else:
            checked = check_write(state, db, parsed, body)
        if checked.errors and not accept_partial:
            first = checked.errors[0]
            raise Invalid("line protocol parsing error", data=first.to_json())
        if not checked.ops:
            return checked
        assert self._catalog_lock is not None

        def changes(state: CatalogState) -> list[dict[str, Any]]:
            # Checked again against the state the change commits on: another writer (here, or another node
            # of the cluster) may have added these tables or columns meanwhile.
            nonlocal checked
            checked = check_write(state, db, parsed, body)
            if checked.errors and not accept_partial:
                raise Invalid("line protocol parsing error", data=checked.errors[0].to_json())
            return self.stamp_new_tables(checked.ops)

        async with self._catalog_lock:
            await asyncio.to_thread(self.catalog.commit, changes)
        return checked

    def stamp_new_tables(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Mark new tables with the next WAL sequence: rows of older segments belong to an earlier table
        of the same name, and replay must not revive them."""
        return [{**op, "wal_seq": self._next_seq, "wal_node": self.wal.node} if op.get("op") == "create_table"
                else op for op in ops]

    # --- flushing ----------------------------------------------------------------------------------
    async def flush_now(self) -> None:
        """Ask the flush loop to commit the open batch now (tests, shutdown)."""
        if self._wake is not None:
            self._wake.set()

    async def _flush_loop(self) -> None:
        """Commit the open batch at most once per flush interval, or early once it is full (`_full`: the
        module docstring). A write arriving after a quiet interval commits immediately instead of
        waiting a tick.

        The interval runs from the last commit holding a client write when the batch holds one, else
        from the last commit of any kind (background writes: module docstring)."""
        assert self._wake is not None
        last_commit = last_client_commit = self._monotonic() - self._flush_interval

        def remaining() -> float:
            since = last_client_commit if self._batch.clients else last_commit
            return self._flush_interval - (self._monotonic() - since)

        while True:
            if not self._batch.entries and not self._stopping:
                try:  # idle: wake for the first write, or after an interval for snapshots/housekeeping
                    await asyncio.wait_for(self._wake.wait(), timeout=max(self._flush_interval, 0.05))
                except TimeoutError:
                    pass
                self._wake.clear()
            left = remaining()
            lingered = False
            while left > 0 and not self._stopping and self._batch.rows < 2 * self._flush_size:
                timeout = left
                if self._batch.rows >= self._flush_size and self._arriving == 0:
                    if lingered:
                        break
                    # Past the flush size and no write on its way: one short wait for a request that is
                    # about to start (the other of two connections answered by the same commit).
                    timeout, lingered = min(left, self._flush_linger), True
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                except TimeoutError:
                    pass
                self._wake.clear()
                left = remaining()
            if self._batch.entries:
                last_commit = self._monotonic()
                if self._batch.clients:
                    last_client_commit = last_commit
                await self._flush()
            self._maybe_snapshot()
            if self._stopping and not self._batch.entries:
                return

    async def _flush(self) -> None:
        batch, self._batch = self._batch, _Batch()
        segment = Segment(seq=self._next_seq, writer_id=self.wal.writer_id, tables=_merge(batch.entries))
        # A failed commit may still have landed: never reuse its sequence number.
        self._next_seq += 1
        started = self._monotonic()
        try:
            # One trip to a worker thread for both: each hand-off back to the event loop costs the writers
            # waiting on this commit a wait for the interpreter lock (parses hold it in between).
            size = await asyncio.to_thread(self._commit_and_apply, segment)
        except Fenced as e:
            self.fenced = e
            log.error("%s", e)
            self._fail(batch, e)
            self._settled_seq = segment.seq
            return
        except Exception as e:  # any failure: nobody in this batch is acknowledged
            self.stats.failures += 1
            log.error("WAL flush of segment %d failed: %s", segment.seq, e)
            err = e if isinstance(e, Unavailable) else Unavailable(f"WAL commit failed: {e}")
            self._fail(batch, err)
            self._settled_seq = segment.seq
            return
        self.stats.segments += 1
        self.stats.rows += segment.rows
        self.stats.bytes += size
        self.stats.last_flush_seconds = self._monotonic() - started
        self._settled_seq = segment.seq
        if self._oldest_unpersisted is None:
            self._oldest_unpersisted = self._monotonic()
        for entry in batch.entries:
            if entry.done is not None and not entry.done.done():
                entry.done.set_result(None)

    def _commit_and_apply(self, segment: Segment) -> int:
        """Commit `segment`, then make its rows queryable; returns its size. Blocking (a worker thread).
        Returns once both are done; if the commit raises, nothing was applied."""
        size = self.wal.commit(segment)
        started = time.perf_counter()
        self._apply(segment)
        self.stats.apply_seconds += time.perf_counter() - started
        return size

    def _fail(self, batch: _Batch, err: Exception) -> None:
        requeue = [e for e in batch.entries if e.done is None and not isinstance(err, Fenced)]
        for entry in batch.entries:
            if entry.done is not None and not entry.done.done():
                entry.done.set_exception(err)
        if requeue:
            # no_sync writes were acknowledged already: carry them into the next flush.
            self._batch.entries[:0] = requeue
            self._batch.rows += sum(e.rows for e in requeue)
            self._batch.clients = self._batch.clients or any(not e.background for e in requeue)

    def _apply(self, segment: Segment) -> None:
        state = self.catalog.state
        for t in segment.tables:
            if not rows_belong(state, segment.seq, t):
                continue  # the table was deleted (and maybe re-created since): these rows are not its
            self.tables.add(t.db, t.table, segment.seq, t.data, t.tags)
        for listener in self._listeners:
            try:
                listener.segment_committed(segment)
            except Exception:
                log.exception("WAL listener failed for segment %d", segment.seq)


@dataclass
class SnapshotPolicy:
    """When buffered rows go to Parquet: after `segments` WAL segments, past `buffered_bytes` of memory,
    or once the oldest buffered rows are `age` seconds old (the gen1 duration)."""

    segments: int = 600
    buffered_bytes: int = 256 * 1024 * 1024
    age: float = 600.0

    def due(self, *, segments: int, buffered_bytes: int, age: float) -> bool:
        return segments >= self.segments or buffered_bytes >= self.buffered_bytes or age >= self.age


def rows_belong(state: CatalogState, seq: int, t: WalTable) -> bool:
    """Whether the rows `t` of WAL segment `seq` (of any node) belong to the live table of their name: it
    exists and is the table they were written to, not an earlier one of the same name deleted since. Rows
    of segments without the table's identity (earlier versions, a single node) go by its WAL stamp."""
    db = state.live_db(t.db)
    tdef = db.tables.get(t.table) if db is not None else None
    if tdef is None:
        return False
    if t.table_seq is not None:
        return t.table_seq >= tdef.created_seq
    return seq >= tdef.since_wal_seq


def _merge(entries: list[_Pending]) -> list[WalTable]:
    """One WalTable per (db, table, table identity), in first-write order, rows in write order."""
    grouped: dict[tuple[str, str, int], list[tuple[pa.Table, tuple[str, ...]]]] = {}
    for e in entries:
        for name, data, table_tags, table_seq in e.tables:
            grouped.setdefault((e.db, name, table_seq), []).append((data, table_tags))
    out = []
    for (db, name, table_seq), parts in grouped.items():
        tags: list[str] = []
        for _, t in parts:
            tags.extend(x for x in t if x not in tags)
        data = parts[0][0] if len(parts) == 1 else pa.concat_tables(
            [p for p, _ in parts], promote_options="default")
        out.append(WalTable(db=db, table=name, data=data, tags=tuple(tags), table_seq=table_seq))
    return out
