"""Snapshot manifests: the committed list of persisted Parquet files and the WAL sequence they cover.

Each manifest is a new object `snapshots/<n>.json` created with put-if-absent; it lists every live
file (cumulative), so loading state needs only the newest one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ..errors import Corrupt, Fenced, NotFound
from ..store import paths
from ..store.base import ObjectStore

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


@dataclass(frozen=True)
class Manifest:
    seq: int = -1  # manifest number
    wal_seq: int = -1  # every WAL segment ≤ this is persisted in `files`
    files: tuple[PersistedFile, ...] = field(default_factory=tuple)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"version": FORMAT_VERSION, "seq": self.seq, "wal_seq": self.wal_seq,
                             "files": [asdict(f) for f in self.files]})

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> Manifest:
        try:
            d: dict[str, Any] = orjson.loads(data)
            if d.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {d.get('version')}")
            return cls(seq=d["seq"], wal_seq=d["wal_seq"], files=tuple(PersistedFile(**f) for f in d["files"]))
        except (ValueError, KeyError, TypeError) as e:
            raise Corrupt(f"snapshot manifest {key} is unreadable: {e}") from e

    def files_of(self, db: str, table: str) -> list[PersistedFile]:
        return [f for f in self.files if f.db == db and f.table == table]


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
