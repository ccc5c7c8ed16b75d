"""A node's view of the compacted files: a query source beneath the nodes' own rows, and the gate that keeps
every node's snapshot manifest and the compaction manifest a consistent pair while both move.

A query on a node of a cluster reads, per ingest node, that node's manifest files and WAL tail (its own
`Persister`'s, or a `Follower`'s), plus the compacted files of one compaction manifest C, with each node's
files that C absorbed left out (`CompactionManifest.absorbed`). For each ingest node A that pair of
manifests (M_A, C) counts every row once exactly when
- M_A is at least C.seen[A]: an older M_A may hold an absorbed file's rows in its WAL tail, where they would
  be counted beside C's copy; and
- M_A.compaction <= C.seq: M_A has retired the files of compactions up to M_A.compaction, whose rows an older
  C does not hold.
Both only ever move forward, so the view keeps the pair consistent by changing it in steps taken under one
lock (the cluster view lock, which queries hold while they capture their sources):
- a follower adopts a newer manifest of its node only if the view's compaction admits it (`admits`);
- the view adopts a newer compaction manifest together with, for each followed node that is not yet
  at C.seen[A], a manifest of that node that is (`advance`), all in one step;
- on an ingest node, a compaction that absorbed some of the node's own files is adopted in the very step
  in which the node retires them (`Persister.retire_absorbed`, under the node's own view lock): the node
  retires what the compactor absorbed, and its own queries switch to the compacted files atomically.
A follower that joins (a new ingest node, or one that was away) counts in queries only once its manifest is
consistent with the view (`consistent`); until then its node's rows are seen through the compacted files
only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..buffer.manifest import Manifest, PersistedFile
from ..buffer.persist import Persister
from ..buffer.tables import BufferedTables
from ..buffer.viewlock import ViewLock
from ..catalog import Catalog
from ..store.base import ObjectStore
from . import compaction
from .compaction import CompactionManifest

if TYPE_CHECKING:
    from .follower import Follower

log = logging.getLogger("lakeflux.cluster")
T = TypeVar("T")
# Rounds of `advance` between listings of the compaction manifests (probing finds the next one otherwise;
# a listing finds the newest when the ones after ours were deleted meanwhile).
LIST_EVERY = 30
# After IDLE_AFTER rounds that found no new compaction, only every IDLE_EVERY-th round looks (an idle cluster,
# or one without a compactor, costs a node one GET every IDLE_EVERY rounds).
IDLE_AFTER = 8
IDLE_EVERY = 4


class CompactedView:
    """The compacted files of one compaction manifest (`lakeflux.query.sources.TableSource`, merged beneath
    the other sources), and the gate described above."""

    node = "compactor"
    listing = False  # the compacted prefix also holds replaced files awaiting their delete
    base = True  # queries merge its rows beneath every node's: the nodes' rows are newer

    def __init__(self, store: ObjectStore, cluster: str, catalog: Catalog, lock: ViewLock, *,
                 persister: Persister | None = None) -> None:
        self.store = store
        self.cluster = cluster
        self.catalog = catalog
        self.lock = lock
        self.manifest = CompactionManifest()
        # The followers whose nodes count in queries (set by whoever follows nodes); none by default.
        self.followers: Callable[[], list[Follower]] = list
        self._persister = persister  # this node's own, when it ingests
        self._empty = BufferedTables()
        self._advancing = threading.Lock()
        self._rounds = 0
        self._quiet = 0  # rounds in a row that found nothing new
        self._absorbed: dict[str, frozenset[str]] = {}

    # --- as a query source ----------------------------------------------------------------------------
    def capture(self, db: str, table: str, buffered: Callable[[BufferedTables], T]) -> tuple[list[PersistedFile], T]:
        """The table's compacted files (not those of an earlier table of that name) and no buffered rows. Call
        with `lock` held for reading."""
        dbdef = self.catalog.state.live_db(db)
        tdef = dbdef.tables.get(table) if dbdef is not None else None
        files = [f for f in self.manifest.files_of(db, table)
                 if tdef is None or f.table_seq is None or f.table_seq >= tdef.created_seq]
        return files, buffered(self._empty)

    def refresh(self) -> None:
        """A compacted file a query planned with is gone: move on to the newest compaction manifest (and the
        node manifests it needs). Blocking."""
        self.advance(listing=True)

    # --- the gate (call with `lock` held) -----------------------------------------------------------------
    def absorbed_of(self, node: str) -> frozenset[str]:
        """Keys of `node`'s files the compacted files hold (queries leave them out of the node's files)."""
        found = self._absorbed.get(node)
        if found is None:
            found = self._absorbed[node] = self.manifest.absorbed_of(node)
        return found

    def admits(self, manifest: Manifest) -> bool:
        """Whether a node manifest may be paired with this view's compaction manifest."""
        return manifest.compaction <= self.manifest.seq

    def consistent(self, follower: Follower) -> bool:
        """Whether `follower`'s manifest pairs with this view's compaction manifest."""
        return self.admits(follower.manifest) and follower.manifest.seq >= self.manifest.seen.get(follower.node, -1)

    # --- moving on ------------------------------------------------------------------------------------
    def advance(self, *, listing: bool = False) -> bool:
        """Adopt the newest compaction manifest if every counted node can pair with it; on an ingest node,
        retiring the node's own files it absorbed in the same step. Returns whether the view moved.
        Blocking (a GET when nothing is new, in one round of IDLE_EVERY once idle; a listing now and then, or
        with `listing`)."""
        with self._advancing:
            self._rounds += 1
            if not listing and self._quiet >= IDLE_AFTER and self._rounds % IDLE_EVERY:
                return False
            target = self._newest(listing or self._rounds % LIST_EVERY == 1)
            self._quiet = 0 if target is not None else self._quiet + 1
            if target is None:
                return False
            plans: dict[str, Manifest] = {}
            for follower in self.followers():
                need = target.seen.get(follower.node, -1)
                if follower.manifest.seq < need:
                    candidate = follower.candidate(target.seq, need)
                    if candidate is None:
                        log.debug("compaction %d waits for node %s's manifest %d", target.seq, follower.node, need)
                        return False
                    plans[follower.node] = candidate
            if self._persister is not None:
                local = self._persister.manifest
                if local.seq < target.seen.get(self._persister.node, -1):
                    return False  # its swap is not finished yet: the next round
                mine = target.absorbed_of(self._persister.node) & {f.key for f in local.files}
                if mine:
                    self._persister.retire_absorbed(mine, target.seq, inside=lambda: self._switch(target, plans))
                    return True
            self._switch(target, plans)
            return True

    def _newest(self, listing: bool) -> CompactionManifest | None:
        """The newest compaction manifest after this view's, or None."""
        found = compaction.newer(self.store, self.cluster, self.manifest.seq)
        newest = found[-1] if found else None
        if newest is None and listing:
            newest = compaction.load_newest(self.store, self.cluster)
        return newest if newest is not None and newest.seq > self.manifest.seq else None

    def _switch(self, target: CompactionManifest, plans: dict[str, Manifest]) -> None:
        """Adopt `target`, moving the followers `plans` names to the manifests planned for them, in one step
        under the view lock. Never fails: a follower that still cannot pair with `target` (it joined after the
        plan was made) stops counting in queries until it can."""
        with self.lock.write():
            self._switch_locked(target, plans)

    def _switch_locked(self, target: CompactionManifest, plans: dict[str, Manifest]) -> None:
        for follower in self.followers():
            planned = plans.get(follower.node)
            if planned is not None:
                follower.switch(planned)
        self.manifest = target
        self._absorbed = {}
        for follower in self.followers():
            if not self.consistent(follower):
                log.warning("node %s counts in queries again once its manifest pairs with compaction %d",
                            follower.node, target.seq)
                follower.counted = False
