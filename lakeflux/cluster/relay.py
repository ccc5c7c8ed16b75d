"""A process node's relay: the one sequence of committed WAL segments, from every ingest node of the cluster
(itself included), that its WAL triggers read as they read a single node's WAL.

The engine's WAL triggers work over one sequence of segments and keep one cursor each. A process node
follows several ingest nodes, each with a WAL of its own, so it commits, in the order it reads them, one
small relay entry per segment that holds rows for a database with a WAL trigger: `<node>/relay/<seq>.json`,
put-if-absent, naming the source node and its segments (several, when the relay is behind), and each
source node's position (the newest of its
segments the relay has taken). A trigger's cursor is a relay sequence, so through the entries at and before
it the trigger has a persisted position in every source node's WAL; segments without rows for any WAL
trigger get no entry (they are passed, not relayed).

After a restart the relay reads on from each source's position in its newest entry: a segment taken but
not yet relayed when the process died is taken again (at least once, as on a single node). The relay
publishes `<node>/relay/floor.json`: per source node, the newest segment its WAL triggers no longer need;
an ingest node keeps its WAL segments after every process node's floor (bounded, as on one node, by the
plugin WAL backlog limit) so no trigger loses a segment it has not finished.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ..catalog import Catalog
from ..engine.ports import CommittedSegment, SegmentInfo, SegmentTable
from ..errors import Corrupt, Fenced, NotFound
from ..store import paths
from ..store.base import ObjectStore
from ..versioned import decode_versioned
from ..wal import Segment, Wal
from .compaction import create_once
from .registry import Registry

log = logging.getLogger("lakeflux.cluster")
FORMAT_VERSION = 1
# Segments of one node relayed as one entry at most (a follower that is behind, or this node's own queue).
BATCH = 16


@dataclass(frozen=True)
class RelayEntry:
    """One relayed batch: segments `source_seqs` of `node`, in order, with the rows' size, the relay time and
    every source node's position after it."""

    seq: int
    node: str
    source_seqs: tuple[int, ...]
    size: int
    committed_ns: int
    positions: dict[str, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"version": FORMAT_VERSION, "seq": self.seq, "node": self.node,
                             "source_seqs": list(self.source_seqs), "size": self.size,
                             "committed_ns": self.committed_ns, "positions": self.positions})

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> RelayEntry:
        return decode_versioned(data, FORMAT_VERSION, "relay entry", key,
                                lambda d: cls(**{**d, "source_seqs": tuple(d["source_seqs"])}))


class Relay:
    """The relay of process node `node` (a `lakeflux.engine.triggers.SegmentSource` for its WAL triggers)."""

    def __init__(self, store: ObjectStore, node: str, catalog: Catalog, *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.node = node
        self.catalog = catalog
        # Told of every relayed segment, in relay order (the engine's segment_committed): set before `start`.
        self.notify: Callable[[CommittedSegment], None] | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._entries: dict[int, RelayEntry] = {}
        self._positions: dict[str, int] = {}
        self._next = 0
        self._wals: dict[str, Wal] = {}
        self._local: queue.Queue[Segment | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._fresh = False

    # --- recovery ----------------------------------------------------------------------------------
    def recover(self) -> None:
        """Load the entries still kept (one listing, one GET each) and the source positions of the newest.
        Blocking; call before the engine starts."""
        for meta in self.store.list(paths.relay_prefix(self.node)):
            seq = paths.parse_seq(meta.key)
            if seq is None:
                continue
            try:
                entry = RelayEntry.from_bytes(self.store.get(meta.key), meta.key)
            except NotFound:
                continue
            self._entries[seq] = entry
        if self._entries:
            newest = self._entries[max(self._entries)]
            self._next = newest.seq + 1
            self._positions = dict(newest.positions)
            return
        # No entry yet (none had rows for a WAL trigger): the published floor says how far it had read.
        try:
            self._positions = {str(k): int(v) for k, v in orjson.loads(
                self.store.get(paths.relay_floor(self.node))).items()}
        except NotFound:
            self._fresh = True  # a new process node: it starts at each ingest node's newest segment
        except (ValueError, AttributeError) as e:
            raise Corrupt(f"relay floor of node {self.node!r} is unreadable: {e}") from e

    def begin(self, node: str, newest: int) -> None:
        """A new process node (no relay entry, no floor published yet) takes `node`'s segments after
        `newest` (its WAL triggers start with what is written from now on, as a new trigger does)."""
        with self._lock:
            if self._fresh and node not in self._positions:
                self._positions[node] = newest

    def position(self, node: str) -> int:
        """The newest segment of `node` the relay has taken (-1: none)."""
        with self._lock:
            return self._positions.get(node, -1)

    # --- taking segments -----------------------------------------------------------------------------
    def offer(self, node: str, segments: list[Segment]) -> None:
        """Take committed segments of `node` (consecutive, in that node's order): those with rows for a
        database with a WAL trigger become one relay entry, then the engine is told. Returns once the entry is
        durable. Raises Unavailable when the entry could not be committed (offer them again), Fenced when
        another process holds this relay's next slot."""
        with self._lock:
            fresh = [s for s in segments if s.seq > self._positions.get(node, -1)]
            if not fresh:
                return  # taken already (a source read again after a restart, or a retried offer)
            relevant = [s for s in fresh if self._relevant(s)]
            newest = fresh[-1].seq
            if not relevant:
                self._positions[node] = newest
                return
            size = sum(t.data.nbytes for s in relevant for t in s.tables)
            entry = RelayEntry(self._next, node, tuple(s.seq for s in relevant), size, self._clock(),
                               {**self._positions, node: newest})
            self._commit(entry)
            self._entries[entry.seq] = entry
            self._next += 1
            self._positions[node] = newest
            if self.notify is not None:
                databases: dict[str, list[SegmentTable]] = {}
                for segment in relevant:
                    for t in segment.tables:
                        databases.setdefault(t.db, []).append(SegmentTable(t.table, t.data, t.tags))
                self.notify(CommittedSegment(seq=entry.seq, databases=databases))

    def _relevant(self, segment: Segment) -> bool:
        state = self.catalog.state
        for t in segment.tables:
            db = state.live_db(t.db)
            if db is not None and any(not d.disabled and (d.spec.startswith("table:") or d.spec == "all_tables")
                                      for d in db.triggers.values()):
                return True
        return False

    def _commit(self, entry: RelayEntry) -> None:
        key = paths.relay_entry(self.node, entry.seq)
        create_once(self.store, key, entry.to_bytes(), f"fenced: relay slot {key} was written by another process "
                                                       f"with node id {self.node!r}")

    def segment_committed(self, segment: Segment) -> None:
        """WalListener of this node's own WAL: queued, relayed by the relay's thread (a write's
        acknowledgement never waits for the relay; a segment not relayed before a crash is read back from
        the WAL at the next start)."""
        self._local.put(segment)

    def start(self, own: Wal | None) -> None:
        """Take this node's own segments committed since its position (when it ingests), then start the
        thread that relays its new ones. Blocking until the catch-up is done."""
        if own is not None:
            self._wals[own.node] = own
            with self._lock:
                if self._fresh and own.node not in self._positions:
                    # A first start (a node that has just joined a cluster, or a single node becoming its first
                    # node): its WAL triggers' cursors count in its own WAL, so relay sequences start after its
                    # newest segment, and the segments already there are not taken again.
                    newest = max(own.list_seqs(), default=-1)
                    self._next = newest + 1
                    self._positions[own.node] = newest
            pending = own.list_seqs(self.position(own.node))
            for start in range(0, len(pending), BATCH):
                segments = []
                for seq in pending[start:start + BATCH]:
                    try:
                        segments.append(own.read(seq))
                    except Corrupt as e:
                        log.error("relay: skipping corrupt WAL segment: %s", e)
                self.offer(own.node, segments)
            self._worker = threading.Thread(target=self._relay_local, args=(own.node,), name="lakeflux-relay",
                                            daemon=True)
            self._worker.start()

    def _relay_local(self, node: str) -> None:
        while (first := self._local.get()) is not None:
            segments = [first]
            while len(segments) < BATCH and not self._local.empty():  # what queued meanwhile: one entry
                more = self._local.get()
                if more is None:
                    self._local.put(None)
                    break
                segments.append(more)
            while True:
                try:
                    self.offer(node, segments)
                    break
                except Fenced as e:
                    log.error("%s", e)
                    return
                except Exception:
                    log.exception("relay: could not relay segments %d-%d of node %s; retrying", segments[0].seq,
                                  segments[-1].seq, node)
                    time.sleep(1.0)

    def stop(self) -> None:
        self._local.put(None)
        if self._worker is not None:
            self._worker.join(timeout=30)

    # --- as the engine's segment source --------------------------------------------------------------
    def head(self) -> int:
        """The newest relay sequence (-1 if none)."""
        with self._lock:
            return self._next - 1

    def list_after(self, seq: int) -> list[SegmentInfo]:
        """Relayed segments after `seq`, ascending, with their rows' size and relay time."""
        with self._lock:
            return [SegmentInfo(e.seq, e.size, e.committed_ns) for s, e in sorted(self._entries.items()) if s > seq]

    def read(self, seq: int, db: str, table: str | None) -> list[SegmentTable]:
        """`db`'s tables of relayed segment `seq`, read from its source node's WAL (only `table`'s column
        chunks when given). NotFound when the entry or the segment is gone."""
        with self._lock:
            entry = self._entries.get(seq)
        if entry is None:
            raise NotFound(f"relay entry {seq} of node {self.node!r} is gone")
        wal = self._wals.get(entry.node)
        if wal is None:
            wal = self._wals[entry.node] = Wal(self.store, entry.node, writer_id="relay")
        out = []
        for source_seq in entry.source_seqs:
            segment = wal.read(source_seq, only={(db, table)} if table is not None else None)
            out += [SegmentTable(t.table, t.data, t.tags) for t in segment.tables if t.db == db]
        return out

    # --- what the triggers still need ----------------------------------------------------------------
    def floor(self, min_cursor: int | None) -> dict[str, int]:
        """Per source node, the newest segment no running WAL trigger still needs: the one before the oldest
        relayed after `min_cursor` (the slowest trigger's position; None: no WAL trigger runs), else every
        segment taken so far."""
        with self._lock:
            out = dict(self._positions)
            if min_cursor is None:
                return out
            for s, e in sorted(self._entries.items()):
                if s > min_cursor and e.node in out:
                    out[e.node] = min(out[e.node], e.source_seqs[0] - 1)
            return out

    def publish(self, min_cursor: int | None) -> None:
        """Write `floor.json` (durable on return) and forget entries every trigger has passed (the newest is
        kept: it holds the positions a restart reads on from)."""
        floor = self.floor(min_cursor)
        self.store.put(paths.relay_floor(self.node), orjson.dumps(floor))
        with self._lock:
            newest = self._next - 1
            done = [s for s in self._entries if s < newest and (min_cursor is None or s <= min_cursor)]
            for s in done:
                del self._entries[s]
        for s in done:
            self.store.delete(paths.relay_entry(self.node, s))


def needed_after(store: ObjectStore, process_nodes: list[str], node: str) -> int | None:
    """The newest WAL segment of `node` that every process node's WAL triggers have passed, from their
    published floors (-1 for a process node that has not published one naming `node`: it needs them all);
    None when there are no process nodes."""
    floors = []
    for p in process_nodes:
        try:
            floor = orjson.loads(store.get(paths.relay_floor(p)))
        except NotFound:
            floor = {}
        except ValueError as e:
            raise Corrupt(f"relay floor of node {p!r} is unreadable: {e}") from e
        floors.append(int(floor.get(node, -1)))
    return min(floors, default=None)


class WalFloor:
    """What an ingest node of a cluster may trim its WAL to (`Persister.wal_floor`): the oldest segment its own
    WAL triggers (`local()`) or any process node's (their published floors) still need; but never more WAL than
    `limit` bytes held back for them (None: no bound), as the plugin WAL backlog limit bounds it on one node."""

    def __init__(self, store: ObjectStore, registry: Registry, wal: Wal, local: Callable[[], int | None],
                 limit: int | None) -> None:
        self._store = store
        self._registry = registry
        self._wal = wal
        self._local = local
        self._limit = limit

    def __call__(self) -> int | None:
        me = self._registry.record.node_id
        others = [n.node_id for n in self._registry.nodes() if n.has_mode("process") and n.node_id != me]
        needed = [x for x in (self._local(), needed_after(self._store, others, me)) if x is not None]
        if not needed:
            return None
        floor = min(needed)
        if self._limit is not None:
            held = 0
            for seq, meta in reversed(self._wal.list_segments(floor)):
                held += meta.size
                if held > self._limit:
                    log.warning("keeping at most %d bytes of WAL for process nodes' WAL triggers: segments "
                                "through %d go", self._limit, seq)
                    return seq + 1
        return floor
