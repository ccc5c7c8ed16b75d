"""Query nodes follow every ingest node: its snapshot manifests and the WAL segments after them.

A `Follower` keeps, for one ingest node, the newest snapshot manifest it has seen (whose files queries read
from the store) and the rows of every committed WAL segment after that manifest (held in memory like an
ingest node's own buffer), so a query sees exactly that node's persisted files plus its WAL tail: each row
once, the node's duplicate points merged as the node itself merges them.

It finds new segments by probing the next sequence number (one GET, which also fetches it), not by listing,
and looks for a newer manifest every MANIFEST_EVERY rounds while segments arrive (a snapshot follows them),
else every LIST_EVERY rounds. A node that has committed nothing for IDLE_AFTER rounds is probed every
IDLE_EVERY rounds until its next segment (with the default 250 ms interval: after 2 s of quiet, once a
second), so an idle node costs each follower about one GET a second.
An ingest node commits its segments one after another, so the next one appears only after the current one;
a sequence it skipped (a commit that failed) is found by an occasional listing, after first checking for a
newer manifest (whose snapshot may have covered segments the node has deleted since). A new manifest is
used once every file it adds is in place (the ingest node copies them in right after committing it); then
the rows it covers leave memory, under the cluster view lock, so no query sees them twice or not at all.
With a compactor, a manifest is adopted only when it pairs with the node's view of the compacted files
(view.py): the view may also move a follower to a newer manifest when it adopts a compaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..buffer.manifest import Manifest, PersistedFile
from ..buffer.manifest import load_latest as load_latest_manifest
from ..buffer.tables import BufferedTables
from ..buffer.viewlock import ViewLock
from ..buffer.writebuffer import rows_belong
from ..catalog import Catalog, CatalogState
from ..errors import Corrupt, NotFound
from ..store import paths
from ..store.base import ObjectStore
from ..wal import Segment, Wal, WalTable
from .node import Periodic
from .registry import NodeRecord, Registry
from .relay import Relay
from .view import CompactedView

log = logging.getLogger("lakeflux.cluster")
T = TypeVar("T")
# Probe rounds between manifest probes, and between listings that find skipped WAL sequences.
MANIFEST_EVERY = 4
LIST_EVERY = 40
# A node with no new segment for IDLE_AFTER rounds is probed every IDLE_EVERY rounds until its next one.
IDLE_AFTER = 8
IDLE_EVERY = 4
# Segments a follower that is behind fetches at once; and how many it reads before a node counts as followed.
MAX_FETCH = 16
START_LIMIT = 200
# Discoveries between two full reads of the registry (in between, only new records are read).
REREAD_EVERY = 15


class Follower:
    """One ingest node's data as a query source (`lakeflux.query.sources.TableSource`)."""

    listing = False  # its table prefixes may already hold files of a manifest not yet seen here

    def __init__(self, store: ObjectStore, node: str, catalog: Catalog, *,
                 manifest_every: int = MANIFEST_EVERY, list_every: int = LIST_EVERY,
                 pool: ThreadPoolExecutor | None = None, relay: Relay | None = None,
                 view: CompactedView | None = None, lock: ViewLock | None = None) -> None:
        self.store = store
        self.node = node
        self.catalog = catalog
        self.tables = BufferedTables()
        self.manifest = Manifest()
        # The cluster view lock: every follower of a node and its compacted view share it; queries hold it
        # (reading) while they capture their sources, manifests change under it (writing).
        self.lock = lock if lock is not None else ViewLock()
        self._view = view
        # Whether queries count this node's rows (false until its manifest pairs with the view's compaction).
        self.counted = True
        self._wal = Wal(store, node, writer_id="follower")
        self._next_seq = 0
        self._manifest_every = manifest_every
        self._list_every = list_every
        self._rounds = 0
        self._quiet = 0  # rounds in a row that found no new segment
        self._unprobed = 0  # segments read since the last manifest probe
        self._pool = pool  # fetches several segments at once when behind (None: one at a time)
        # A process node's relay takes every segment, before the rows reach queries (so a failed relay
        # commit leaves nothing half-done): reading starts at its position when that is older than the
        # manifest, and a newer manifest never makes it skip segments it has not read.
        self._relay = relay
        self._polling = threading.Lock()  # one poll at a time (the periodic job, or a query's refresh)
        self._started = False

    @property
    def next_seq(self) -> int:
        """The WAL sequence this follower reads next."""
        return self._next_seq

    # --- as a query source ---------------------------------------------------------------------------
    def capture(self, db: str, table: str, buffered: Callable[[BufferedTables], T]) -> tuple[list[PersistedFile], T]:
        """The table's files (but those the compacted files hold) and `buffered(its WAL tail)`. Call with
        `lock` held for reading."""
        files = self.manifest.files_of(db, table)
        if self._view is not None:
            absorbed = self._view.absorbed_of(self.node)
            if absorbed:
                files = [f for f in files if f.key not in absorbed]
        return files, buffered(self.tables)

    def refresh(self) -> None:
        """Use the node's newest manifest now, if one is in place (a query found a file gone)."""
        with self._polling:
            self._probe_manifests()

    # --- following -----------------------------------------------------------------------------------
    def poll(self, limit: int | None = None) -> int:
        """One round: start (the first time), read the new WAL segments (at most about `limit`), now and then
        look for a newer manifest and for skipped sequences. Returns how many segments were read. Blocking."""
        with self._polling:
            self._rounds += 1
            if self._started and self._quiet >= IDLE_AFTER and self._rounds % IDLE_EVERY:
                return 0  # idle node: looked at every IDLE_EVERY rounds only
            if self._relay is None:  # the view may have moved this follower to a newer manifest
                self._next_seq = max(self._next_seq, self.manifest.wal_seq + 1)
            read = 0 if self._started else self._start(limit)
            read += self._probe_wal(None if limit is None else max(0, limit - read))
            self._quiet = 0 if read else self._quiet + 1
            self._unprobed += read
            # A snapshot follows new segments: while none arrive, a new manifest (retention, a delete) is
            # looked for only at listing time, so an idle node costs one GET per round.
            if self._rounds % self._manifest_every == 0 and (self._unprobed or self._rounds % self._list_every == 0):
                self._probe_manifests()
                self._unprobed = 0
            if not read and self._rounds % self._list_every == 0:
                read += self._skip_gaps()
            return read

    def _start(self, limit: int | None) -> int:
        """Load the newest manifest and the segments after it (one listing of each; at most `limit`)."""
        manifest, _ = load_latest_manifest(self.store, self.node)
        self._adopt(manifest)  # unless its files are not in place yet: then its WAL segments are read
        if self.manifest.seq < manifest.seq and self._view is not None:
            older = self.candidate(self._view.manifest.seq, -1)  # the newest that pairs with the view
            if older is not None:
                self._adopt(older)
        after = self.manifest.wal_seq
        if self._relay is not None:
            listed = self._wal.list_seqs()
            self._relay.begin(self.node, max(listed, default=after))
            after = min(after, self._relay.position(self.node))
            seqs = [seq for seq in listed if seq > after and seq >= self._next_seq][:limit]
        else:
            seqs = [seq for seq in self._wal.list_seqs(after) if seq >= self._next_seq][:limit]
        read = 0
        for start in range(0, len(seqs), MAX_FETCH):
            chunk = seqs[start:start + MAX_FETCH]
            # A segment gone meanwhile (snapshotted and deleted) is in the next manifest's files.
            found = [segment for segment in self._fetch(chunk) if segment is not None]
            self._apply(found)
            self._next_seq = chunk[-1] + 1
            read += len(found)
        self._started = True
        return read

    def _probe_wal(self, limit: int | None = None) -> int:
        """Read the next segments until one is missing (or about `limit` were read). Caught up, that is one
        GET; behind, it fetches the next ones several at a time (doubling up to MAX_FETCH)."""
        read = 0
        width = 1
        while limit is None or read < limit:
            fetched = self._fetch(list(range(self._next_seq, self._next_seq + width)))
            found = fetched[:fetched.index(None)] if None in fetched else fetched
            self._apply(found)  # type: ignore[arg-type]
            self._next_seq += len(found)
            read += len(found)
            if len(found) < width:
                return read
            width = min(2 * width, MAX_FETCH)
        return read

    def _fetch(self, seqs: list[int]) -> list[Segment | None]:
        """Committed segments `seqs` (at once, on the pool), None for each that is not there; a corrupt one
        is logged and comes back empty, passed over as replay does."""
        if self._pool is None or len(seqs) == 1:
            return [self._fetch_one(seq) for seq in seqs]
        return list(self._pool.map(self._fetch_one, seqs))

    def _fetch_one(self, seq: int) -> Segment | None:
        try:
            return self._wal.read(seq)
        except NotFound:
            return None
        except Corrupt as e:
            log.error("follower of node %s: skipping corrupt WAL segment: %s", self.node, e)
            return Segment(seq=seq, writer_id="", tables=[])

    def _apply(self, segments: list[Segment]) -> None:
        """Hand consecutive segments to the relay (first: a failed relay commit leaves nothing half-done, and
        they are read again next round), then hold their rows for queries."""
        if self._relay is not None and segments:
            self._relay.offer(self.node, segments)
        for segment in segments:
            if segment.seq > self.manifest.wal_seq:  # else read for the relay: its rows are in the files
                self._hold(segment)

    def _hold(self, segment: Segment) -> None:
        state = self.catalog.state
        if any(_newer_than(state, t) for t in segment.tables):
            # The node changed the catalog for these rows (a new table or column) after this node's last
            # sync: catch up first, or the rows would look like a deleted table's.
            self.catalog.sync()
            state = self.catalog.state
        # Under the view lock (the catalog sync above must not be: its listeners may wait for a snapshot that
        # waits for this lock): the view may have moved this follower past the segment meanwhile.
        with self.lock.read():
            if segment.seq <= self.manifest.wal_seq:
                return
            for t in segment.tables:
                if rows_belong(state, segment.seq, t):
                    self.tables.add(t.db, t.table, segment.seq, t.data, t.tags)

    def _probe_manifests(self) -> None:
        """Use the newest manifest after ours whose new files are all in place (and which the view admits)."""
        found: list[Manifest] = []
        seq = self.manifest.seq + 1
        while True:
            key = paths.snapshot_manifest(self.node, seq)
            try:
                found.append(Manifest.from_bytes(self.store.get(key), key))
            except NotFound:
                break
            except Corrupt as e:
                log.error("follower of node %s: %s", self.node, e)
            seq += 1
        for manifest in reversed(found):
            if self._view is None or self._view.admits(manifest):
                self._adopt(manifest)
                return

    def _adopt(self, manifest: Manifest) -> None:
        if manifest.seq <= self.manifest.seq or (self._view is not None and not self._view.admits(manifest)):
            return
        if not self._in_place(manifest):
            return  # committed, not yet swapped in by its node: tried again at the next probe
        with self.lock.write():
            if self._view is not None and not self._view.admits(manifest):
                return
            self._switch_locked(manifest)
        if self._relay is None:
            self._next_seq = max(self._next_seq, manifest.wal_seq + 1)

    def _in_place(self, manifest: Manifest) -> bool:
        """Whether every file `manifest` adds to ours is in the node's table prefixes (one request each)."""
        known = {f.key for f in self.manifest.files}
        return all(self.store.exists(f.key) for f in manifest.files if f.key not in known)

    def _switch_locked(self, manifest: Manifest) -> None:
        if manifest.seq > self.manifest.seq:
            self.manifest = manifest
            self.tables.drop_upto(manifest.wal_seq)

    def switch(self, manifest: Manifest) -> None:
        """Use `manifest` (newer than ours, its files in place) from now on. Call with `lock` held for writing
        (the view moves followers this way when it adopts a compaction); the next poll reads on after it."""
        self._switch_locked(manifest)

    def candidate(self, max_compaction: int, at_least: int) -> Manifest | None:
        """The node's newest manifest with seq >= `at_least` that pairs with compaction `max_compaction`, newer
        than ours and with its files in place; None when there is none. Reads only (a listing, GETs)."""
        keys = [m.key for m in self.store.list(paths.snapshot_prefix(self.node))
                if (seq := paths.parse_seq(m.key)) is not None and seq > self.manifest.seq and seq >= at_least]
        for key in reversed(keys):
            try:
                manifest = Manifest.from_bytes(self.store.get(key), key)
            except (NotFound, Corrupt):
                continue
            if manifest.compaction <= max_compaction and self._in_place(manifest):
                return manifest
        return None

    def _skip_gaps(self) -> int:
        """The next segment is missing: if the node has committed later ones, either a newer manifest covers
        it (it was snapshotted and deleted) or its commit failed; go on after it. Returns segments read."""
        if not self._wal.list_seqs(self._next_seq):
            return 0  # nothing after it either: the node has simply not committed it yet
        manifest, _ = load_latest_manifest(self.store, self.node)
        self._adopt(manifest)
        read = self._probe_wal()
        # Listed after the probe failed: a segment committed meanwhile is listed too (it lands before any later).
        later = self._wal.list_seqs(self._next_seq - 1)
        if later and later[0] == self._next_seq:
            return read + self._probe_wal()
        if later:
            log.info("follower of node %s: WAL sequences %d-%d were never committed; going on at %d", self.node,
                     self._next_seq, later[0] - 1, later[0])
            self._next_seq = later[0]
            read += self._probe_wal()
        return read

    def drop(self, db: str, table: str | None = None) -> None:
        """Forget buffered rows of a deleted database or table."""
        if table is None:
            self.tables.drop_database(db)
        else:
            self.tables.drop_table(db, table)


def _newer_than(state: CatalogState, t: WalTable) -> bool:
    """Whether WAL rows `t` need a catalog newer than `state`: their table or a column is unknown, or they
    were written to a later table of that name."""
    db = state.live_db(t.db)
    tdef = db.tables.get(t.table) if db is not None else None
    if tdef is None:
        return True
    if t.table_seq is not None and t.table_seq > tdef.created_seq:
        return True
    return any(c not in tdef.columns for c in t.data.column_names)


class Followers:
    """Every ingest node of the cluster but this one, each followed every `interval` seconds on its own
    thread; found in the node registry (`discover`, run at start and then periodically)."""

    def __init__(self, store: ObjectStore, catalog: Catalog, registry: Registry, interval: float,
                 relay: Relay | None = None, view: CompactedView | None = None) -> None:
        self._store = store
        self._catalog = catalog
        self._registry = registry
        self._interval = interval
        self._relay = relay
        self._records: dict[str, NodeRecord] = {}  # registry records read so far, by key
        self._discoveries = 0
        self._lock = threading.Lock()
        self._followers: dict[str, tuple[Follower, Periodic]] = {}
        self._stopped = False
        # Shared by the followers to fetch several segments at once when one is behind.
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="lakeflux-follow")
        # The cluster view lock, shared by every follower and the compacted view (view.py).
        self._view = view
        self.lock = view.lock if view is not None else ViewLock()
        if view is not None:
            view.followers = self.sources

    def sources(self) -> list[Follower]:
        """The followed nodes that count in queries, ordered by node id (query sources)."""
        with self._lock:
            return [f for _, (f, _) in sorted(self._followers.items()) if f.counted]

    def _all(self) -> list[Follower]:
        with self._lock:
            return [f for _, (f, _) in sorted(self._followers.items())]

    def _count(self, follower: Follower) -> None:
        """Let `follower` count in queries if its manifest pairs with the view's compaction (under the view lock,
        so no compaction is adopted in between)."""
        if follower.counted:
            return
        if self._view is None:
            follower.counted = True
            return
        with self.lock.write():
            follower.counted = self._view.consistent(follower)
        if follower.counted:
            log.info("node %s counts in queries again", follower.node)

    def discover(self) -> None:
        """Follow every ingest node the registry names that is not followed yet (read up to date before it
        counts as a source); stop following nodes whose record was removed. Blocking."""
        me = self._registry.record.node_id
        self._discoveries += 1
        if self._discoveries % REREAD_EVERY == 0:
            self._records.clear()  # now and then every record again: a node may restart with other modes
        records = self._registry.nodes(self._records)
        ingest = {n.node_id for n in records if n.has_mode("ingest") and n.node_id != me}
        with self._lock:
            gone = [node for node in self._followers if node not in ingest]
            new = [node for node in sorted(ingest) if node not in self._followers]
        for node in gone:
            with self._lock:
                _, job = self._followers.pop(node)
            job.stop()
        for follower in self._all():
            self._count(follower)
        for node in new:
            follower = Follower(self._store, node, self._catalog, pool=self._pool, relay=self._relay,
                                view=self._view, lock=self.lock)
            # Caught up before it counts as a source (bounded: a node far ahead is caught up by its job).
            follower.poll(limit=START_LIMIT)
            follower.counted = False
            self._count(follower)
            job = Periodic(f"follow-{node}", self._interval, follower.poll)
            with self._lock:
                if self._stopped:
                    return
                self._followers[node] = (follower, job)
            job.start()
            log.info("following node %s from WAL segment %d", node, follower.next_seq)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            jobs = [job for _, job in self._followers.values()]
        for job in jobs:
            job.stop()
        self._pool.shutdown(wait=False)

    def catalog_changed(self, ops: list[dict[str, Any]]) -> None:
        """A deleted database or table leaves every follower's buffered rows."""
        for op in ops:
            if op.get("op") in ("delete_database", "delete_table"):
                for follower in self._all():
                    follower.drop(op["db"], op.get("table"))
