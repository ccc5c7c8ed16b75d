"""Snapshot manifests: the committed list of persisted Parquet files and the WAL sequence they cover.

Each manifest is a new object `snapshots/<n>.json` created with put-if-absent; it lists every live
file (cumulative), so loading state needs only the newest one. Live files of one table never overlap
in time once their manifest is swapped in (a snapshot compacts overlapping files into one), except
groups too large to compact, and sealed files, which queries merge as they read.

In a cluster with a compactor (lakeflux/cluster/compactor.py) a node seals its files: `sealed` names the
WAL sequence through which its files are never rewritten again (late rows for their time ranges go to new
files), so the compactor can take them; `compaction` names the newest compaction whose absorbed files this
manifest has retired (a reader pairs it with that compaction manifest or a newer one).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ..errors import Corrupt, Fenced, NotFound
from ..store import paths
from ..store.base import ObjectStore
from ..versioned import decode_versioned

FORMAT_VERSION = 1
log = logging.getLogger("lakeflux.snapshot")


@dataclass(frozen=True)
class PersistedFile:
    db: str
    table: str
    key: str
    rows: int
    size: int
    min_time: int
    max_time: int
    wal_seq: int  # the snapshot that wrote it
    # The catalog sequence that created its table (TableDef.created_seq): rows of a table deleted and
    # re-created under the same name are told apart by it. None: written by an earlier version.
    table_seq: int | None = None


@dataclass(frozen=True)
class HeldTable:
    """A table a snapshot could not persist (it keeps being retried): its rows from WAL segment `since` on
    are in no file yet, whatever the manifest's `wal_seq` says."""

    db: str
    table: str
    since: int


@dataclass(frozen=True)
class Manifest:
    seq: int = -1  # manifest number
    wal_seq: int = -1  # every WAL segment ≤ this is persisted in `files`, except the rows of `held` tables
    files: tuple[PersistedFile, ...] = field(default_factory=tuple)
    # Table-file keys this manifest's commit replaced (compacted away) or removed (retention, deletes): they
    # must be gone from the table prefixes once it is swapped in. Only the manifest that retires them names
    # them: no later manifest is committed before its swap finished (recovery finishes it from here).
    retired: tuple[str, ...] = ()
    # Table-file keys this manifest's commit added (its snapshot's files): with `retired`, the change its
    # tables' Delta commits publish (lakeflux.tableformat).
    added: tuple[str, ...] = ()
    # Tables whose rows from some WAL segment ≤ wal_seq on are still only in the WAL (replay restores them).
    held: tuple[HeldTable, ...] = ()
    # Files with wal_seq <= sealed are sealed: this node never rewrites them (-1: none is). Never decreases.
    sealed: int = -1
    # The newest cluster compaction manifest whose absorbed files of this node are retired here (-1: none).
    compaction: int = -1

    def to_bytes(self) -> bytes:
        d = {"version": FORMAT_VERSION, "seq": self.seq, "wal_seq": self.wal_seq,
             "files": [_file_dict(f) for f in self.files], "retired": list(self.retired),
             "added": list(self.added), "held": [asdict(h) for h in self.held]}
        if self.sealed >= 0:  # a single node's manifests stay as they were
            d["sealed"] = self.sealed
        if self.compaction >= 0:
            d["compaction"] = self.compaction
        return orjson.dumps(d)

    def is_sealed(self, f: PersistedFile) -> bool:
        """Whether this node will never rewrite `f` (a compactor may take its rows)."""
        return f.wal_seq <= self.sealed

    @property
    def first_unpersisted(self) -> int:
        """The first WAL segment some of whose rows are in no file: replay and the WAL trim start there."""
        return min((h.since for h in self.held), default=self.wal_seq + 1)

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> Manifest:
        return decode_versioned(data, FORMAT_VERSION, "snapshot manifest", key, lambda d: cls(
            seq=d["seq"], wal_seq=d["wal_seq"], files=tuple(PersistedFile(**f) for f in d["files"]),
            retired=tuple(str(k) for k in d.get("retired", ())),
            added=tuple(str(k) for k in d.get("added", ())),
            held=tuple(HeldTable(**h) for h in d.get("held", ())),
            sealed=int(d.get("sealed", -1)), compaction=int(d.get("compaction", -1))))

    def files_of(self, db: str, table: str) -> list[PersistedFile]:
        return [f for f in self.files if f.db == db and f.table == table]

    def overlapping(self, db: str, table: str, min_time: int, max_time: int) -> list[PersistedFile]:
        """Unsealed files of `table` connected to [min_time, max_time] through overlapping time ranges
        (inclusive, transitively: a file overlapping a file that overlaps the range counts), in write order
        (wal_seq).

        These are the files a new file of that range must be merged with to keep the table's files
        free of overlaps; one sweep over the files sorted by start time finds them.
        """
        files = [f for f in self.files_of(db, table) if not self.is_sealed(f)]
        entries = sorted([(f.min_time, f.max_time, i) for i, f in enumerate(files)] + [(min_time, max_time, -1)])
        group: list[int] = []
        reach: int | None = None
        found = False
        for lo, hi, i in entries:
            if reach is not None and lo > reach:  # a new connected group starts here
                if found:
                    break
                group = []
            group.append(i)
            reach = hi if reach is None else max(reach, hi)
            found = found or i < 0
        return sorted((files[i] for i in group if i >= 0), key=lambda f: (f.wal_seq, f.key))


def _file_dict(f: PersistedFile) -> dict[str, Any]:
    d = asdict(f)
    if d["table_seq"] is None:
        del d["table_seq"]
    return d


def load_latest(store: ObjectStore, node: str) -> tuple[Manifest, list[str]]:
    """The newest readable manifest (or an empty one), plus the keys of all manifests listed."""
    keys = [m.key for m in store.list(paths.snapshot_prefix(node)) if paths.parse_seq(m.key) is not None]
    for key in reversed(keys):
        try:
            return Manifest.from_bytes(store.get(key), key), keys
        except (Corrupt, NotFound) as e:
            # An older manifest still describes a consistent lake; the newer one is named for the operator.
            log.error("skipping unreadable snapshot manifest %s: %s", key, e)
            continue
    return Manifest(), keys


def commit(store: ObjectStore, node: str, manifest: Manifest) -> None:
    """Create manifest `manifest.seq` with put-if-absent; returns once it is durable.

    Raises Fenced if another writer already holds that manifest slot with other content.
    """
    key = paths.snapshot_manifest(node, manifest.seq)
    data = manifest.to_bytes()
    if not store.put_if_absent(key, data) and store.get(key) != data:
        raise Fenced(f"fenced: snapshot manifest {key} was written by another server with node id {node!r}")
