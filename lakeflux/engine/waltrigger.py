"""WAL triggers (`table:<t>`, `all_tables`): committed segments become `process_writes` calls that keep
pace with ingest (CONTRACT §2.4, §2.5).

Under heavy ingest the WAL commits many segments a second, so a trigger that paid a fixed price per
segment — the call, its log rows, its plugin's queries, and above all waiting for its write-back to
commit, which the group commit holds for up to the flush interval — fell further behind every second.
Three choices make a trigger drain its backlog at the rate of its plugin's own work:

- **Batched delivery.** A trigger that is behind gets every waiting segment in one call, up to
  `DeliveryLimits.call_rows` rows and `call_bytes` bytes, merged as the plugin API describes one call
  (`rows.merged_table_batches`: one entry per table with rows, tables in the order they were first
  written, rows in commit order). The fixed costs are paid once per batch, so the batch size adapts to
  the ingest rate: a trigger that keeps up still gets one segment per call.
- **Pipelined write-back.** The lines a call queued with `write`/`write_to_db` are handed to the write
  path when it returns (`BackgroundWriteSink.submit_lines`) and the next call starts at once; the lines
  commit with the next WAL flush like any other write, in call order (the write path keeps arrival
  order). A trigger's position passes a call's segments only once that call's write-backs are committed
  and every earlier segment is finished, so at-least-once holds at every instant: a SIGKILL mid-call,
  between a call and its write-back's commit, or between that commit and the cursor write redelivers
  the segments after the persisted cursor, and no write-back is lost. Calls waiting for their write-back
  are bounded (`write_backs_in_flight`). Sync triggers still run one call at a time in commit order;
  async triggers run up to `async_calls_in_flight` calls at once on the shared pool, in no order.
- **Write-backs never hold back clients.** Write-backs are background writes for the write buffer: a
  commit holding only them does not count for the spacing of client commits, so a trigger that writes
  one line per call no longer makes the next client write wait for the flush interval. Committing
  write-backs at once instead was rejected: under load every call would add a small WAL segment that is
  delivered again (ingest pays for the extra commits), and a plugin whose write-backs trigger itself
  would spin as fast as the store commits; spaced by the interval it loops at most once per interval,
  as on InfluxDB.

"finished execution in <duration>" is logged when the plugin function returns (its own time); a
write-back that fails to commit is logged when that is known, as an ERROR row of the trigger.

Memory and storage stay bounded while a plugin is slow or stuck: the backlog keeps segments' rows in
memory only up to `memory_bytes` and reads the rest back from the WAL in the object store when their
turn comes (backlog.py). The WAL itself is kept for a lagging trigger up to the engine's backlog limit
(runtime.py); past it the engine calls `skip_through`, which gives up the oldest segments with an
ERROR row naming their range.

Position: the newest segment such that it and every earlier one are finished (delivered and written
back, or without rows for the trigger). The engine trims the WAL below the slowest trigger's position;
the trigger persists it as its cursor at most every `busy_save_s` while calls settle (a cursor write is
a durable object-store put, and under load calls settle dozens of times a second, so writing one per
call cost ingest more than the calls did), and every `idle_save_s` while segments without rows for it
go by. A clean stop writes the position that was still due; after a crash up to about `busy_save_s` of
finished calls are delivered again, which at-least-once allows.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..catalog import TriggerDef
from ..errors import LakefluxError
from ..failpoints import failpoint
from .api import PluginApi, database_name_problem, write_back_failure
from .backlog import Backlog, Pending, tables_nbytes
from .execution import START_MESSAGES, CallOutcome, call_plugin, record
from .ports import BackgroundWriteSink, SegmentTable, WriteSink
from .rows import merged_table_batches
from .specs import TriggerSpec
from .triggers import RunningTrigger, TriggerServices

log = logging.getLogger("lakeflux.engine")

# Entries looked at per batch (each has at least one row or is an empty segment read from the store).
_FRONT_SCAN = 4096


@dataclass(frozen=True)
class DeliveryLimits:
    """What one WAL trigger takes per call and holds while it is behind."""

    call_rows: int = 50_000  # rows per call, unless one segment alone has more
    call_bytes: int = 64 * 2**20  # Arrow bytes per call, likewise
    memory_bytes: int = 32 * 2**20  # segments' rows kept in memory; the rest is read back from the WAL
    write_backs_in_flight: int = 64  # calls taken and not finished (most wait for their write-back's commit)
    async_calls_in_flight: int = 8  # async: calls running at once
    busy_save_s: float = 1.0  # how often, at most, the position is persisted while calls finish
    idle_save_s: float = 5.0  # how often a moved position is persisted when no call finishes


@dataclass(frozen=True)
class Lag:
    """How far a WAL trigger is behind."""

    segments: int  # committed segments with rows for it (or not read yet) that it has not finished
    rows: int  # their rows, as far as known (a segment listed after a restart counts once read)
    oldest_committed_ns: int | None  # commit time of the oldest of them
    position: int  # newest segment such that it and every earlier one are finished
    skipped_segments: int  # given up by the WAL backlog limit since the trigger started
    rows_finished: int = 0  # rows of the calls finished since the trigger started (its throughput)

    def seconds(self, now_ns: int) -> float:
        """Seconds since the oldest unfinished segment was committed; 0 when caught up."""
        if self.oldest_committed_ns is None:
            return 0.0
        return max(0.0, (now_ns - self.oldest_committed_ns) / 1e9)


class _Call:
    """Segments taken by one call, from the take until the call returned and its write-backs committed."""

    __slots__ = ("first", "last", "segments", "rows", "committed_ns", "running", "write_backs", "interrupted")

    def __init__(self, entries: list[Pending]) -> None:
        self.first = entries[0].seq
        self.last = entries[-1].seq
        self.segments = len(entries)
        self.rows = sum(entry.rows or 0 for entry in entries)
        self.committed_ns = entries[0].committed_ns
        self.running = True
        self.write_backs: list[tuple[str, Future[None]]] = []
        # Cut short by a stop: never finished, so the position stays before it (delivered again later).
        self.interrupted = False

    @property
    def counts(self) -> bool:
        """Whether some of its segments are still owed (retention may have skipped them all)."""
        return self.first <= self.last

    def finished(self) -> bool:
        return not self.running and not self.interrupted and all(f.done() for _, f in self.write_backs)


def submit_write_back(writer: WriteSink, db: str, lines: list[str]) -> Future[None]:
    """Send one database's write-back; the future resolves at its commit (or fails naming the cause)."""
    problem = database_name_problem(db)
    if problem is not None:
        return _failed(ValueError(problem))
    text = "\n".join(lines)
    if isinstance(writer, BackgroundWriteSink):
        try:
            return writer.submit_lines(db, text)
        except Exception as exc:
            return _failed(exc)
    future: Future[None] = Future()  # a writer that can only block (fakes): the call waits after all
    try:
        writer.write_lines(db, text, no_sync=False)
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(None)
    return future


def _failed(exc: BaseException) -> Future[None]:
    future: Future[None] = Future()
    future.set_exception(exc)
    return future


class WalTrigger(RunningTrigger):
    """One `table:`/`all_tables` trigger: its backlog, its calls in flight and its delivery thread."""

    def __init__(self, definition: TriggerDef, spec: TriggerSpec, services: TriggerServices,
                 start_cursor: int | None) -> None:
        """`start_cursor`: deliver the segments after it from the WAL first (None: from the WAL head on)."""
        super().__init__(definition, spec, services)
        self.limits = services.delivery or DeliveryLimits()
        self._lock = threading.Lock()  # backlog, calls and positions
        self._save_lock = threading.Lock()  # one cursor write at a time, never an older one after a newer
        self._signal = threading.Event()  # new segment, a call or write-back finished, or stop
        self._backlog = Backlog(self.limits.memory_bytes)
        self._calls: list[_Call] = []
        self._catching_up = start_cursor is not None
        start = start_cursor if start_cursor is not None else services.segments.head()
        self._seen = start  # newest segment observed (live or listed)
        self._floor = start  # nothing at or below it is delivered (done before the start, or skipped)
        self._first_live: int | None = None
        self._saved = start  # newest position written as the cursor
        self._last_save = time.monotonic()
        self._save_due: float | None = None  # when finished calls' position is to be written (delivery thread)
        self._unsaved_write_backs = False  # finished calls with write-backs since the last cursor write
        self._closed = False  # stop() returned: no cursor write any more (a delete may remove the cursor next)
        self._skipped = 0
        self._rows_finished = 0

    # -- fed by the engine ---------------------------------------------------------------------------

    def observe(self, seq: int, committed_ns: int, tables: list[SegmentTable] | None) -> None:
        """A committed segment, with this trigger's database's tables (None: none); never blocks.

        The engine calls it for every segment, in commit order, so the trigger knows how far the WAL
        went even while no segment has rows for it.
        """
        mine = self._mine(tables) if tables else []
        nbytes = tables_nbytes(mine)
        with self._lock:
            if seq <= self._seen:
                return  # already listed from the store while catching up (or before our start)
            self._seen = seq
            if self._first_live is None:
                self._first_live = seq
            if not mine:
                return
            self._backlog.add(seq, committed_ns, mine, sum(t.data.num_rows for t in mine), nbytes)
        self._signal.set()

    def _mine(self, tables: list[SegmentTable]) -> list[SegmentTable]:
        """The tables of a segment this trigger is called for (Δ a `table:` trigger needs rows of its table)."""
        if self.spec.table is None:
            return [t for t in tables if t.data.num_rows]
        return [t for t in tables if t.table == self.spec.table and t.data.num_rows]

    # -- what the engine reads -----------------------------------------------------------------------

    def position(self) -> int:
        """The newest segment such that it and every earlier one are finished."""
        with self._lock:
            return self._position_locked()

    def _position_locked(self) -> int:
        if self._catching_up:
            return self._floor
        firsts = [call.first for call in self._calls if call.counts]
        waiting = self._backlog.first_seq()
        if waiting is not None:
            firsts.append(waiting)
        position = min(firsts) - 1 if firsts else self._seen
        return max(position, self._floor)

    def lag(self) -> Lag:
        with self._lock:
            owed = [call for call in self._calls if call.counts]
            oldest = [call.committed_ns for call in owed]
            waiting = self._backlog.oldest_committed_ns()
            if waiting is not None:
                oldest.append(waiting)
            return Lag(segments=len(self._backlog) + sum(call.segments for call in owed),
                       rows=self._backlog.rows + sum(call.rows for call in owed),
                       oldest_committed_ns=min(oldest) if oldest else None,
                       position=self._position_locked(), skipped_segments=self._skipped,
                       rows_finished=self._rows_finished)

    def skip_through(self, seq: int, first: int, segments: int, reason: str) -> None:
        """Give up every segment up to `seq` (the WAL backlog limit): ERROR row, position and cursor past it.

        `first` and `segments` describe the WAL range given up, for the log row. A call running on
        those segments goes on, but its end no longer holds the position back.
        """
        with self._lock:
            if seq <= self._floor:
                return
            _, rows = self._backlog.drop_through(seq)
            for call in self._calls:
                if call.first <= seq:
                    rows += call.rows if call.last <= seq else 0
                    call.first = seq + 1
                    if not call.counts:
                        call.rows = 0
            self._floor = seq
            self._seen = max(self._seen, seq)
            self._skipped += segments
        record(self.services.ports, self.target, "ERROR",
               f"{reason}: skipped WAL segments {first} to {seq} ({segments} segments, {rows} rows known) "
               "without delivering them")
        self._save()

    # -- the delivery thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._start_thread(self._run, "wal")

    def _wake(self) -> None:
        self._signal.set()

    def _wake_on_done(self, _: Future[None]) -> None:
        self._signal.set()

    def _run(self) -> None:
        if self._catching_up:
            self._load_stored()
        while not self.stopped.is_set():
            self._signal.clear()
            self._save_settled(self._settle())
            if self._has_room():
                call, segments = self._take()
                if call is not None:
                    self._deliver(call, segments)
                    continue
            due = self._save_due
            self._signal.wait(self.limits.idle_save_s if due is None else max(0.0, due - time.monotonic()))
        # A clean stop keeps what finished: the position the throttled saves had not written yet is
        # written now, so a restart does not deliver those calls again.
        self._settle()
        self._save(stopping=True)

    def stop(self, *, interrupt: bool = True) -> None:
        """Stop as every trigger does; the delivery thread writes the finished position before it ends.
        After this returns the cursor is never written again (a stuck call that ends later does not)."""
        super().stop(interrupt=interrupt)
        with self._save_lock:
            self._closed = True

    def _load_stored(self) -> None:
        """Catch up after a (re)start: the segments after the cursor join the backlog, read when their turn comes."""
        while not self.stopped.is_set():
            with self._lock:
                after = self._floor
            try:
                infos = self.services.segments.list_after(after)
                break
            except LakefluxError as exc:
                log.warning("trigger %s/%s: could not list the WAL to catch up (retrying): %s", *self.key, exc)
                self.stopped.wait(1.0)
        else:
            return
        with self._lock:
            live = self._first_live
            stored = [info for info in infos if info.seq > self._floor and (live is None or info.seq < live)]
            self._backlog.add_stored(stored)
            if stored:
                self._seen = max(self._seen, stored[-1].seq)
            self._catching_up = False

    def _has_room(self) -> bool:
        with self._lock:
            if len(self._calls) >= self.limits.write_backs_in_flight:
                return False
            if self.definition.run_async:
                return sum(1 for call in self._calls if call.running) < self.limits.async_calls_in_flight
            return True

    def _take(self) -> tuple[_Call | None, list[list[SegmentTable]]]:
        """The next call's segments, oldest first, within the per-call limits (at least one segment)."""
        with self._lock:
            candidates = self._backlog.front(_FRONT_SCAN)
        chosen: list[Pending] = []
        rows = nbytes = 0
        for entry in candidates:
            if entry.tables is None:
                tables = self._read(entry.seq)
                with self._lock:
                    self._backlog.loaded(entry, tables)
            if chosen and (rows + (entry.rows or 0) > self.limits.call_rows
                           or nbytes + entry.nbytes > self.limits.call_bytes):
                break
            chosen.append(entry)
            rows += entry.rows or 0
            nbytes += entry.nbytes
        with self._lock:
            taken = []
            for entry in chosen:
                if not self._backlog.take(entry):
                    break  # skipped by the backlog limit meanwhile
                taken.append(entry)
            if not taken:
                return None, []
            call = _Call(taken)
            self._calls.append(call)
        return call, [entry.tables or [] for entry in taken]

    def _read(self, seq: int) -> list[SegmentTable]:
        try:
            tables = self.services.segments.read(seq, self.definition.database, self.spec.table)
        except LakefluxError as exc:
            record(self.services.ports, self.target, "WARN",
                   f"WAL segment {seq} could not be read; its rows were not delivered: {exc}")
            return []
        return self._mine(tables)

    def _deliver(self, call: _Call, segments: list[list[SegmentTable]]) -> None:
        if call.rows == 0:  # segments read back from the store without rows for this trigger
            with self._lock:
                call.running = False
            return
        if not self.definition.run_async:
            self._invoke(call, segments)
            return
        try:
            self.services.async_pool.submit(self._invoke, call, segments)
        except RuntimeError:  # the pool is shut down: the engine is stopping
            with self._lock:
                call.running = False
                call.interrupted = True

    def _invoke(self, call: _Call, segments: list[list[SegmentTable]]) -> None:
        """Call the plugin (under the error behaviour), then send its write-backs without waiting."""
        outcomes: list[CallOutcome] = []
        table_name = self.spec.table

        def invoke(api: PluginApi) -> Any:
            function = self.plugin.entry_point("process_writes")
            # Fresh rows per attempt: plugins pop keys and mutate rows.
            return function(api, merged_table_batches(segments, table_name), self.args())

        def make_call() -> CallOutcome:
            outcome = call_plugin(self.services.ports, self.target, "wal", START_MESSAGES["wal"], invoke,
                                  self.plugin_file, defer_writes=True)
            outcomes.append(outcome)
            return outcome

        ok = False
        write_backs: list[tuple[str, Future[None]]] = []
        try:
            ok = self._run_with_behaviour("wal", make_call)
            if ok and outcomes[-1].writes:
                failpoint("engine.called")
                writer = self.services.ports.writer
                write_backs = [(db, submit_write_back(writer, db, lines)) for db, lines in outcomes[-1].writes.items()]
        finally:
            with self._lock:
                call.write_backs = write_backs
                call.running = False
                call.interrupted = not ok and self.stopped.is_set()
            for _, future in write_backs:
                future.add_done_callback(self._wake_on_done)
            self._signal.set()

    def _settle(self) -> list[_Call]:
        """Retire finished calls (logging failed write-backs); returns them."""
        with self._lock:
            done = [call for call in self._calls if call.finished()]
            if done:
                self._calls = [call for call in self._calls if call not in done]
                self._rows_finished += sum(call.rows for call in done)
        for call in done:
            for db, future in call.write_backs:
                exc = future.exception()
                if exc is not None:
                    record(self.services.ports, self.target, "ERROR", write_back_failure("wal", db, exc))
        if any(call.write_backs for call in done):
            failpoint("engine.written_back")
        return done

    def _save_settled(self, finished: list[_Call]) -> None:
        """Persist the position after calls finished (at most every busy_save_s), else every idle_save_s."""
        now = time.monotonic()
        if finished:
            if self._save_due is None:
                self._save_due = self._last_save + self.limits.busy_save_s
            self._unsaved_write_backs |= any(call.write_backs for call in finished)
        if self._save_due is not None:
            if now < self._save_due:
                return
            self._save_due = None
            self._save()
            if self._unsaved_write_backs:
                self._unsaved_write_backs = False
                failpoint("engine.cursor_saved")
        elif now - self._last_save >= self.limits.idle_save_s:
            self._save()

    def _save(self, *, stopping: bool = False) -> None:
        """Persist the position as the cursor now if it moved; durable on return. Once the trigger is
        stopping only the delivery thread's last save writes, and never after stop() returned."""
        if self.stopped.is_set() and not stopping:
            return
        with self._save_lock:
            if self._closed:
                return
            with self._lock:
                position = self._position_locked()
            self._last_save = time.monotonic()
            if position <= self._saved:
                return
            self.services.cursors.put(self.definition.database, self.definition.name, position)
            self._saved = position

