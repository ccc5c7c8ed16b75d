"""The cluster compactor's manifests: `<cluster>/compaction/<seq>.json`, one put-if-absent object per
commit, cumulative like a node's snapshot manifests (the newest says everything).

A compaction manifest names
- `files`: every live compacted file (under `<cluster>/compacted/`), as `PersistedFile`s whose `wal_seq` is the
  compaction that wrote them; they are free of duplicate points and never overlap within a table;
- `absorbed`: per ingest node, the keys of its sealed files whose rows are in `files` and which that node's
  manifest `seen[node]` still listed (the node retires them; once it has, a later compaction drops them);
- `seen`: per ingest node, the snapshot manifest those keys are relative to: a reader pairs this compaction
  with a manifest of that node at least this new (an older one may hold an absorbed file's rows in its WAL
  tail instead of in a listed file);
- `retired`: compacted files a compaction replaced or dropped, each with the time it may be deleted
  (`--compaction-cleanup-wait` after it left `files`: a query planned on an older compaction manifest still
  finds it);
- `epoch` and `holder`: the compactor process that committed it. A compactor commits only on top of a
  manifest of its own epoch or an older one, and takes over with a manifest of a newer epoch, so a
  compactor that lost its place can never commit again (fencing, see compactor.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import orjson

from ..buffer.manifest import PersistedFile
from ..errors import Corrupt, Fenced, NotFound, Unavailable
from ..store import paths
from ..store.base import ObjectStore
from ..versioned import decode_versioned

log = logging.getLogger("lakeflux.cluster")
FORMAT_VERSION = 1
COMMIT_ATTEMPTS = 4


@dataclass(frozen=True)
class Retired:
    """A compacted file no manifest lists any more, deleted at `delete_at_ns`."""

    key: str
    delete_at_ns: int


@dataclass(frozen=True)
class CompactionManifest:
    seq: int = -1
    epoch: int = -1
    holder: str = ""  # the process (writer id) of the compactor holding `epoch`
    node: str = ""  # that compactor's node id
    files: tuple[PersistedFile, ...] = ()
    absorbed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    retired: tuple[Retired, ...] = ()
    # What this commit changed in `files` (the compacted tables' Delta commits publish it).
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    committed_ns: int = 0

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "version": FORMAT_VERSION, "seq": self.seq, "epoch": self.epoch, "holder": self.holder,
            "node": self.node, "files": [asdict(f) for f in self.files],
            "absorbed": {n: list(keys) for n, keys in sorted(self.absorbed.items())},
            "seen": dict(sorted(self.seen.items())), "retired": [asdict(r) for r in self.retired],
            "added": list(self.added), "removed": list(self.removed), "committed_ns": self.committed_ns})

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> CompactionManifest:
        return decode_versioned(data, FORMAT_VERSION, "compaction manifest", key, lambda d: cls(
            seq=int(d["seq"]), epoch=int(d["epoch"]), holder=str(d["holder"]), node=str(d["node"]),
            files=tuple(PersistedFile(**f) for f in d["files"]),
            absorbed={str(n): tuple(str(k) for k in keys) for n, keys in d["absorbed"].items()},
            seen={str(n): int(s) for n, s in d["seen"].items()},
            retired=tuple(Retired(**r) for r in d["retired"]),
            added=tuple(str(k) for k in d["added"]), removed=tuple(str(k) for k in d["removed"]),
            committed_ns=int(d["committed_ns"])))

    def files_of(self, db: str, table: str) -> list[PersistedFile]:
        return [f for f in self.files if f.db == db and f.table == table]

    def absorbed_of(self, node: str) -> frozenset[str]:
        """Keys of `node`'s files whose rows this compaction holds."""
        return frozenset(self.absorbed.get(node, ()))


def load_newest(store: ObjectStore, cluster: str) -> CompactionManifest:
    """The newest readable compaction manifest (an empty one when there is none): one listing, then GETs
    from the newest down past unreadable ones (logged)."""
    keys = [m.key for m in store.list(paths.compaction_prefix(cluster)) if paths.parse_seq(m.key) is not None]
    for key in reversed(keys):
        try:
            return CompactionManifest.from_bytes(store.get(key), key)
        except (Corrupt, NotFound) as e:
            log.error("skipping compaction manifest %s: %s", key, e)
    return CompactionManifest()


def newer(store: ObjectStore, cluster: str, after: int) -> list[CompactionManifest]:
    """The compaction manifests committed after `after`, in order: one GET each, and one that finds nothing
    (a slot that is never filled ends the probe; an unreadable one is logged and passed over)."""
    found = []
    seq = after + 1
    while True:
        key = paths.compaction_manifest(cluster, seq)
        try:
            found.append(CompactionManifest.from_bytes(store.get(key), key))
        except NotFound:
            return found
        except Corrupt as e:
            log.error("%s", e)
        seq += 1


def commit(store: ObjectStore, cluster: str, manifest: CompactionManifest) -> None:
    """Create compaction manifest `manifest.seq` with put-if-absent; returns once it is durable (see
    `create_once`). Raises Fenced when the slot holds another manifest, Unavailable when the outcome stays
    unknown (the caller reads the slot again before building on it)."""
    key = paths.compaction_manifest(cluster, manifest.seq)
    create_once(store, key, manifest.to_bytes(), f"fenced: compaction manifest {key} was committed by another "
                                                 "compactor")


def create_once(store: ObjectStore, key: str, data: bytes, fenced: str) -> None:
    """Create `key` holding `data` with put-if-absent; returns once it is durable. An unclear store error is
    retried with the same bytes (finding them there counts as done). Raises Fenced(`fenced`) when the key
    holds other bytes, Unavailable when the outcome stays unknown after COMMIT_ATTEMPTS tries."""
    last: Exception | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        if attempt:
            time.sleep(0.05 * 2 ** attempt)
        try:
            if store.put_if_absent(key, data) or store.get(key) == data:
                return
            raise Fenced(fenced)
        except Fenced:
            raise
        except Unavailable as e:
            last = e
    raise Unavailable(f"could not create {key}: {last}")
