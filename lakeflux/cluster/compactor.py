"""The cluster compactor: one node in `compact` mode merges the ingest nodes' files across nodes and time
into larger, time-sorted, duplicate-free files, committed in its own put-if-absent sequence
(compaction.py); the ingest nodes then retire what it absorbed (retire.py) and queries switch to the
compacted files (view.py).

**Why sealing.** An ingest node's snapshot merges a late write with the live files its time range overlaps
and retires them; had the compactor already taken such a file, its rows would be counted twice (once in the
compactor's file, once in the node's merged one). Two ways out were weighed: (a) the compactor takes files
from one node manifest and the node retires them only if no snapshot rewrote them meanwhile, undoing the
compaction otherwise; (b) the node never rewrites a file once the compactor may take it. (b) is chosen: a
node of a cluster with a compactor *seals* every file its snapshots write (`Manifest.sealed`, committed in
the node's own manifest before the compactor can read it), so a late write goes to a new small file beside
the sealed one (queries merge the two, as they do for files too large to compact) and the compactor
merges them later. Nothing the compactor reads can change under it, no compaction is ever undone, and the
ingest node's snapshot stops paying for late-write compaction (the compactor does that work instead).
Sealing starts with the first snapshot after a compact-mode node appears in the registry and never
stops; the compactor takes only sealed files.

**What one round does** (every `--compaction-check-interval`):
1. read the newest compaction manifest; take over (below) or stand by if another compactor holds it;
2. read every ingest node's newest manifest, then sync the catalog (so it knows every table those files
   belong to);
3. per (table, day): the sealed files not yet absorbed, of every node, with the compacted files their
   time range meets, are merged: compacted rows first, then each node's files in node-id order, each node's
   in write order (`wal_seq`), duplicate points merged with the later row winning each field; the result
   is cut into files of at most `row_limit` rows at time boundaries (merged one time window at a time,
   so memory stays bounded); a round starts no new (table, day) once it wrote ROUND_GROUPS_ROWS times the
   row limit, leaving the rest to the next round;
4. write them under `<cluster>/compacted/` (failpoint `compactor.written`), commit the next compaction
   manifest (`compactor.committed`), publish the compacted tables' Delta commits (`compactor.published`),
   delete replaced files whose cleanup wait is over and old manifests (`compactor.cleaned`).
Compacted files of tables deleted (or deleted and re-created) and files past their database's retention
leave `files` the same way. A crash at any step is harmless: files of an uncommitted round are orphans,
deleted when a compactor takes over (and every SWEEP_EVERY rounds); a committed manifest is published
again by the next round.

**Cross-node order.** The same point written to two ingest nodes is merged once the compactor took both:
the node whose id sorts later wins each field it wrote (within one node, the later write wins, as on a
single node). Node-id order is the one order every node can apply alike, at compaction and at query time
(a query merges compacted rows with the nodes' newer rows the same way), and within a node it agrees with
write order. Before the compactor takes them, the two writes are two rows, as without a compactor.

**Fencing.** A compactor holds the compaction while the newest manifest names its process as `holder`. A
compactor that finds another holder stands by while that holder's registry record shows it running (the
same process, heartbeating); otherwise it takes over by committing a manifest of the next epoch naming
itself. Every commit goes to the slot after the newest manifest and only on top of a manifest of its own
epoch or older, so once a takeover is committed the previous holder's next commit finds its slot taken or
a newer epoch, and it stands by: two compactors never both commit. A restarted compactor (a new process)
takes over from its predecessor at once and goes on from the newest manifest.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..buffer.dedupe import dedupe, time_values
from ..buffer.manifest import PersistedFile
from ..buffer.manifest import load_latest as load_node_manifest
from ..buffer.sqltypes import conform, table_schema
from ..buffer.tablefiles import NS_PER_DAY, encode_parquet, read_parquet_within
from ..catalog import Catalog, CatalogState, TableDef
from ..errors import Fenced, LakefluxError, NotFound
from ..failpoints import failpoint
from ..store import paths
from ..store.base import ObjectStore
from ..tableformat import LOG_RETENTION_S, DataFile, Publisher, TableChange
from . import compaction
from .compaction import CompactionManifest, Retired
from .registry import RUNNING, Registry

log = logging.getLogger("lakeflux.cluster")
# Rows per compacted file at most (and per time window merged in memory at once).
ROW_LIMIT = 1_000_000
# A round starts no new (table, day) once it wrote this many times the row limit.
ROUND_GROUPS_ROWS = 20
# Compaction manifests kept (older ones are deleted; readers need only the newest).
MANIFESTS_TO_KEEP = 20
# Rounds between sweeps of files no manifest names (a round that failed after writing its files).
SWEEP_EVERY = 60

Group = tuple[str, str, int]  # (db, table, day)


class Compactor:
    """The compactor role of node `node` (process `process`) in cluster `cluster`: `run_once` is one round."""

    def __init__(self, store: ObjectStore, cluster: str, node: str, process: str, catalog: Catalog,
                 registry: Registry, *, cleanup_wait_s: float = 600.0, row_limit: int = ROW_LIMIT,
                 clock: Callable[[], int] = time.time_ns, delta_log_retention_s: float | None = LOG_RETENTION_S) -> None:
        self.store = store
        self.cluster = cluster
        self.node = node
        self.process = process
        self.catalog = catalog
        self.registry = registry
        self.cleanup_wait_ns = int(cleanup_wait_s * 1e9)
        self.row_limit = max(1, row_limit)
        self.clock = clock
        self.publisher = Publisher(store, log_retention_s=delta_log_retention_s)
        self.current: CompactionManifest | None = None  # the newest committed manifest known
        self._rounds = 0
        self._standing_by: str | None = None

    @property
    def holding(self) -> bool:
        """Whether this process held the compaction at its last look."""
        return self.current is not None and self.current.holder == self.process

    # --- one round ------------------------------------------------------------------------------------
    def run_once(self) -> CompactionManifest | None:
        """One round (see the module docstring); returns the manifest it committed, if any. Blocking; returns
        once that manifest, its files and its Delta commits are durable. Raises Fenced when another compactor
        took over meanwhile (the next round stands by), Unavailable when the store fails."""
        self._rounds += 1
        current = self._newest()
        if current.holder != self.process:
            if not self._may_take_over(current):
                return None
            current = self._take_over(current)
        elif self._rounds % SWEEP_EVERY == 0:
            self._sweep(current)
        self._publish(current)  # a crash after its commit left it unpublished
        self._clean(current)
        new = self._compact(current)
        if new is None:
            return None
        failpoint("compactor.written")
        try:
            compaction.commit(self.store, self.cluster, new)
        except Fenced:
            self.current = None  # read the newest again next round
            self._drop_files(new.added)
            raise
        except Exception:
            self.current = None  # the commit may have landed: read the slot again before building on it
            raise
        self.current = new
        failpoint("compactor.committed")
        self._publish(new)
        failpoint("compactor.published")
        self._clean(new)
        failpoint("compactor.cleaned")
        log.info("compaction %d: %d files written from %d absorbed files of %d nodes; %d compacted files "
                 "replaced", new.seq, len(new.added), sum(len(set(new.absorbed.get(n, ())) - set(
                     current.absorbed.get(n, ()))) for n in new.absorbed), len(new.absorbed), len(new.removed))
        return new

    def _newest(self) -> CompactionManifest:
        """The newest committed compaction manifest: listed the first time, then probed after the last."""
        if self.current is None:
            self.current = compaction.load_newest(self.store, self.cluster)
        found = compaction.newer(self.store, self.cluster, self.current.seq)
        if found:
            self.current = found[-1]
        return self.current

    def _may_take_over(self, current: CompactionManifest) -> bool:
        """Whether this compactor may take over from `current`'s holder: there is none, or its node's registry
        record does not show that process running (stopped, silent, or restarted as another process)."""
        if current.seq < 0:
            return True
        record = self.registry.record_of(current.node)
        alive = record is not None and record.process == current.holder and \
            record.state(self.clock()) == RUNNING
        if alive:
            if self._standing_by != current.holder:
                log.info("compactor: node %s holds the compaction (epoch %d); node %s stands by", current.node,
                         current.epoch, self.node)
                self._standing_by = current.holder
            return False
        return True

    def _take_over(self, current: CompactionManifest) -> CompactionManifest:
        """Commit the next manifest, of the next epoch, naming this process; then delete files no manifest
        names. Raises Fenced when another compactor committed that slot first."""
        new = replace(current, seq=current.seq + 1, epoch=current.epoch + 1, holder=self.process, node=self.node,
                      added=(), removed=(), committed_ns=self.clock())
        try:
            compaction.commit(self.store, self.cluster, new)
        except Exception:
            self.current = None
            raise
        self.current = new
        self._standing_by = None
        log.info("compactor: node %s holds the compaction from epoch %d (manifest %d)", self.node, new.epoch,
                 new.seq)
        self._sweep(new)
        return new

    def _sweep(self, manifest: CompactionManifest) -> None:
        """Delete compacted files `manifest` neither lists nor keeps for their cleanup wait (written by a round
        that never committed). Call only as the holder, between rounds: no commit of another epoch can name
        them any more, and no round of this one is under way."""
        keep = {f.key for f in manifest.files} | {r.key for r in manifest.retired}
        orphans = [m.key for m in self.store.list(paths.compacted_prefix(self.cluster))
                   if m.key.endswith(".parquet") and "/_delta_log/" not in m.key and m.key not in keep]
        for key in orphans:
            self.store.delete(key)
        if orphans:
            log.info("compactor: deleted %d compacted files of rounds that never committed", len(orphans))

    def _clean(self, manifest: CompactionManifest) -> None:
        """Delete the retired compacted files whose cleanup wait is over, manifests older than the kept ones,
        and the compacted tables' expired Delta log files; durable on return (deleting again after a crash is
        harmless; a failed log delete is logged and retried at the next round)."""
        now = self.clock()
        self.publisher.clean_logs(now)
        for r in manifest.retired:
            if r.delete_at_ns <= now:
                self.store.delete(r.key)
        if manifest.seq >= MANIFESTS_TO_KEEP and manifest.seq % MANIFESTS_TO_KEEP == 0:
            for m in self.store.list(paths.compaction_prefix(self.cluster)):
                seq = paths.parse_seq(m.key)
                if seq is not None and seq <= manifest.seq - MANIFESTS_TO_KEEP:
                    self.store.delete(m.key)

    def _drop_files(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            try:
                self.store.delete(key)
            except LakefluxError as e:
                log.warning("compactor: could not delete %s of a lost commit (the next sweep will): %s", key, e)

    # --- planning and merging -----------------------------------------------------------------------------
    def _compact(self, current: CompactionManifest) -> CompactionManifest | None:
        """The next manifest after `current` with its new files written (durable), or None when nothing
        changes."""
        now = self.clock()
        nodes = sorted({n.node_id for n in self.registry.nodes() if n.has_mode("ingest")} | set(current.seen))
        manifests = {node: load_node_manifest(self.store, node)[0] for node in nodes}
        self.catalog.sync()  # after the manifests: it knows every table their files were written to
        state = self.catalog.state
        kept: list[PersistedFile] = []
        dropped: list[str] = []
        for f in current.files:
            if self._gone(f, now):
                dropped.append(f.key)
            else:
                kept.append(f)
        absorbed = {node: set(current.absorbed.get(node, ())) & {f.key for f in m.files}
                    for node, m in manifests.items()}
        todo: dict[Group, dict[str, list[PersistedFile]]] = {}
        for node, m in manifests.items():
            for f in m.files:
                if f.key in absorbed[node] or not m.is_sealed(f):
                    continue
                tdef = _table(state, f.db, f.table)
                if tdef is None or (f.table_seq is not None and f.table_seq != tdef.created_seq):
                    continue  # a deleted table's file (its node trashes it), or a table not synced yet
                todo.setdefault((f.db, f.table, f.min_time // NS_PER_DAY), {}).setdefault(node, []).append(f)
        seq = current.seq + 1
        written: list[PersistedFile] = []
        replaced: set[str] = set()
        for (db, table, day), by_node in sorted(todo.items()):
            if sum(f.rows for f in written) >= ROUND_GROUPS_ROWS * self.row_limit:
                break  # the rest next round: a round's uncommitted work stays bounded (a lake's first compaction)
            tdef = _table(state, db, table)
            assert tdef is not None
            same_day = [f for f in kept if f.db == db and f.table == table and f.min_time // NS_PER_DAY == day
                        and f.key not in replaced]
            result = self._merge(seq, current.epoch, tdef, db, table, day, same_day, by_node, len(written))
            if result is None:
                continue
            files, chosen = result
            written += files
            replaced |= chosen
            for node, taken in by_node.items():
                absorbed[node] |= {f.key for f in taken}
        if not written and not dropped:
            return None
        seen = dict(current.seen)
        for node, m in manifests.items():
            if set(current.absorbed.get(node, ())) != absorbed[node]:
                seen[node] = max(m.seq, seen.get(node, -1))
        gone = [*dropped, *sorted(replaced)]
        retired = tuple(r for r in current.retired if r.delete_at_ns > now) + tuple(
            Retired(key, now + self.cleanup_wait_ns) for key in gone)
        return replace(current, seq=seq, files=tuple(f for f in kept if f.key not in replaced) + tuple(written),
                       absorbed={n: tuple(sorted(keys)) for n, keys in absorbed.items() if keys},
                       seen=seen, retired=retired, added=tuple(f.key for f in written), removed=tuple(gone),
                       committed_ns=now)

    def _gone(self, f: PersistedFile, now: int) -> bool:
        """Whether compacted file `f` leaves: its table was deleted (or re-created since), or every row is past
        its database's retention period."""
        state = self.catalog.state
        db = state.live_db(f.db)
        tdef = db.tables.get(f.table) if db is not None else None
        if tdef is None or (f.table_seq is not None and tdef.created_seq > f.table_seq):
            return True
        return bool(db is not None and db.retention_ns and f.max_time < now - db.retention_ns)

    def _merge(self, seq: int, epoch: int, tdef: TableDef, db: str, table: str, day: int,
               compacted: list[PersistedFile], by_node: dict[str, list[PersistedFile]],
               numbered: int) -> tuple[list[PersistedFile], set[str]] | None:
        """Merge one table's day: the new files of every node with the compacted files their time range
        meets. Returns the files written (durable) and the keys of the compacted files they replace; None
        (logged) when a file is unreadable: the group waits for a later round."""
        inputs = [f for node in sorted(by_node) for f in sorted(by_node[node], key=lambda f: (f.wal_seq, f.key))]
        lo, hi = min(f.min_time for f in inputs), max(f.max_time for f in inputs)
        chosen: list[PersistedFile] = []
        grew = True
        while grew:  # compacted files never overlap: take every one the merged range reaches
            grew = False
            for f in compacted:
                if f not in chosen and f.min_time <= hi and f.max_time >= lo:
                    chosen.append(f)
                    lo, hi = min(lo, f.min_time), max(hi, f.max_time)
                    grew = True
        sources = sorted(chosen, key=lambda f: f.min_time) + inputs  # write order: older rows first
        try:
            bodies = [self.store.get(f.key) for f in sources]
        except NotFound as e:
            log.warning("compactor: not merging %s.%s yet: %s", db, table, e)
            return None
        schema = table_schema(tdef.columns)
        tags = tdef.tags
        date = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%d")
        rows = sum(f.rows for f in sources)
        windows = max(1, math.ceil(rows / self.row_limit))
        edges = [lo + (hi - lo + 1) * i // windows for i in range(windows)] + [hi + 1]
        written: list[PersistedFile] = []
        try:
            for w_lo, w_end in zip(edges, edges[1:], strict=False):
                if w_end <= w_lo:
                    continue
                parts = [conform(_within(body, w_lo, w_end - 1), schema) for body in bodies]
                merged = dedupe(pa.concat_tables(parts), tags)
                if not merged.num_rows:
                    continue
                merged = merged.take(pc.sort_indices(merged, sort_keys=[("time", "ascending")]))
                for piece in _cut(merged, self.row_limit):
                    key = paths.compacted_file(self.cluster, db, table, date, seq, epoch, numbered + len(written))
                    body = encode_parquet(piece, tags)
                    self.store.put(key, body)
                    times = time_values(piece)
                    written.append(PersistedFile(db=db, table=table, key=key, rows=piece.num_rows, size=len(body),
                                                 min_time=int(times[0]), max_time=int(times[-1]), wal_seq=seq,
                                                 table_seq=tdef.created_seq))
        except LakefluxError:
            self._drop_files(tuple(f.key for f in written))
            raise
        except Exception as e:  # pyarrow raises several kinds for garbled files
            self._drop_files(tuple(f.key for f in written))
            log.error("compactor: not merging %s.%s: a file is unreadable (%s)", db, table, e)
            return None
        return written, {f.key for f in chosen}

    # --- publishing -----------------------------------------------------------------------------------
    def _publish(self, manifest: CompactionManifest) -> None:
        """The compacted tables' Delta commits for `manifest` (each table it changed); durable on return, and
        nothing is written twice (found by the manifest they name)."""
        changed = {paths.table_root_of(k) for k in (*manifest.added, *manifest.removed)}
        if not changed:
            return
        live: dict[str, list[PersistedFile]] = {}
        for f in manifest.files:
            live.setdefault(paths.table_root_of(f.key), []).append(f)
        state = self.catalog.state
        added = set(manifest.added)
        changes = []
        for root in sorted(changed):
            files = live.get(root, [])
            tdef = _table(state, files[0].db, files[0].table) if files else None
            changes.append(TableChange(
                root=root, columns=dict(tdef.columns) if tdef is not None else None,
                live=tuple(_data_file(f) for f in files), added=tuple(_data_file(f) for f in files if f.key in added),
                removed=tuple(k for k in manifest.removed if paths.table_root_of(k) == root),
                operation="WRITE" if files else "DELETE"))
        self.publisher.publish(manifest.seq, changes)


def _table(state: CatalogState, db: str, table: str) -> TableDef | None:
    dbdef = state.live_db(db)
    return dbdef.tables.get(table) if dbdef is not None else None


def _within(body: bytes, lo: int, hi: int) -> pa.Table:
    """The rows of a table file with lo <= time <= hi (only the row groups that can hold them are decoded)."""
    rows = read_parquet_within(body, np.array([lo], dtype=np.int64), np.array([hi], dtype=np.int64))
    times = time_values(rows)
    inside = (times >= lo) & (times <= hi)
    return rows if inside.all() else rows.filter(pa.array(inside))


def _cut(rows: pa.Table, limit: int) -> list[pa.Table]:
    """Time-sorted rows in pieces of at most about `limit` rows, never splitting one timestamp's rows."""
    if rows.num_rows <= limit:
        return [rows]
    times = time_values(rows)
    pieces = []
    start = 0
    while start < rows.num_rows:
        end = min(start + limit, rows.num_rows)
        while end < rows.num_rows and times[end] == times[end - 1]:
            end += 1
        pieces.append(rows.slice(start, end - start))
        start = end
    return pieces


def _data_file(f: PersistedFile) -> DataFile:
    return DataFile(key=f.key, size=f.size, rows=f.rows, min_time=f.min_time, max_time=f.max_time)


def seals(registry: Registry) -> Callable[[], bool]:
    """`Persister.seal` for an ingest node of a cluster: whether the registry names a node in compact mode
    (one listing and a GET per record; asked once per snapshot)."""
    def any_compactor() -> bool:
        return any(n.has_mode("compact") for n in registry.nodes())

    return any_compactor


__all__ = ["Compactor", "seals"]
