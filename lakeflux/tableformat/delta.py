"""The Delta Lake log, as lakeflux writes it: JSON commits of add and remove actions (docs/open-tables.md).

Only what lakeflux needs of the Delta protocol (reader version 1, writer version 2): a table's first
commit carries `protocol` and `metaData`; every commit carries `commitInfo` (naming the lakeflux manifest
it publishes), `metaData` again when the schema changed, and the `remove` and `add` actions of one change.
No partition columns: each file is one UTC day of one table, and its `time` statistics let readers prune.

Column types (lakeflux → Delta): tag and string → string, int64 → long, float64 → double, bool → boolean,
uint64 → decimal(20,0) (Delta has no unsigned type; every uint64 fits), time → long nanoseconds since the
epoch, UTC (Delta's timestamp types hold microseconds: a cast would drop the last three digits).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import Corrupt
from ..model import ColumnKind

READER_VERSION = 1
WRITER_VERSION = 2
ENGINE_INFO = "lakeflux"
# The key in commitInfo under which lakeflux records which of its manifests a commit publishes.
MARKER = "lakeflux"

_DELTA_TYPES = {
    ColumnKind.TAG: "string",
    ColumnKind.STRING: "string",
    ColumnKind.INT64: "long",
    ColumnKind.UINT64: "decimal(20,0)",
    ColumnKind.FLOAT64: "double",
    ColumnKind.BOOL: "boolean",
    ColumnKind.TIME: "long",
}
_TIME_COMMENT = "nanoseconds since 1970-01-01T00:00:00Z (lakeflux time)"


@dataclass(frozen=True)
class DataFile:
    """One persisted Parquet file as the Delta log describes it."""

    key: str  # the object key; the log names it relative to the table root
    size: int
    rows: int
    min_time: int  # ns
    max_time: int  # ns


def schema_string(columns: dict[str, ColumnKind]) -> str:
    """The Delta `schemaString` of a table with these columns, sorted by name as lakeflux's `SELECT *`."""
    fields = []
    for name, kind in sorted(columns.items()):
        meta: dict[str, Any] = {"comment": _TIME_COMMENT} if kind is ColumnKind.TIME else {}
        fields.append({"name": name, "type": _DELTA_TYPES[kind], "nullable": kind is not ColumnKind.TIME,
                       "metadata": meta})
    return orjson.dumps({"type": "struct", "fields": fields}).decode()


def table_id(table_root: str) -> str:
    """The Delta table id: stable for a table prefix, so a re-published first commit is identical."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"lakeflux:{table_root}"))


def relative_path(table_root: str, key: str) -> str:
    """A data file's Delta `path`: relative to the table root, percent-encoded as a URI path."""
    if not key.startswith(table_root):
        raise ValueError(f"{key!r} is not under the table root {table_root!r}")
    return quote(key[len(table_root):], safe="/=-_.~")


@dataclass(frozen=True)
class Commit:
    """The actions of one Delta commit."""

    table_root: str
    marker: int  # the lakeflux manifest this commit publishes
    operation: str  # WRITE for snapshots and compactions, DELETE for retention and table deletes
    timestamp_ms: int
    adds: tuple[DataFile, ...] = ()
    removes: tuple[str, ...] = ()  # object keys
    schema: str | None = None  # a metaData action with this schema string
    first: bool = False  # version 0: protocol action too

    def to_bytes(self) -> bytes:
        """Newline-delimited JSON actions, commitInfo first."""
        info = {"timestamp": self.timestamp_ms, "operation": self.operation, "operationParameters": {},
                "engineInfo": ENGINE_INFO, "isBlindAppend": not self.removes, MARKER: {"manifest": self.marker}}
        actions: list[dict[str, Any]] = [{"commitInfo": info}]
        if self.first:
            actions.append({"protocol": {"minReaderVersion": READER_VERSION, "minWriterVersion": WRITER_VERSION}})
        if self.schema is not None:
            actions.append({"metaData": {
                "id": table_id(self.table_root), "format": {"provider": "parquet", "options": {}},
                "schemaString": self.schema, "partitionColumns": [], "configuration": {},
                "createdTime": self.timestamp_ms}})
        for key in self.removes:
            actions.append({"remove": {"path": relative_path(self.table_root, key),
                                       "deletionTimestamp": self.timestamp_ms, "dataChange": True}})
        for f in self.adds:
            stats = {"numRecords": f.rows, "minValues": {"time": f.min_time}, "maxValues": {"time": f.max_time},
                     "nullCount": {"time": 0}}
            actions.append({"add": {
                "path": relative_path(self.table_root, f.key), "partitionValues": {}, "size": f.size,
                "modificationTime": self.timestamp_ms, "dataChange": True, "stats": orjson.dumps(stats).decode()}})
        return b"".join(orjson.dumps(a) + b"\n" for a in actions)


@dataclass(frozen=True)
class LogHead:
    """What lakeflux needs to know of a table's newest commit."""

    version: int
    marker: int | None  # the lakeflux manifest it published (None: not a lakeflux commit)
    schema: str | None  # its metaData's schema string, if it carried one


def read_head(version: int, data: bytes, key: str) -> LogHead:
    """Parse commit `version` (the newest of its log). Raises Corrupt if it is not newline-delimited JSON."""
    marker = schema = None
    try:
        for line in data.splitlines():
            if not line.strip():
                continue
            action = orjson.loads(line)
            info = action.get("commitInfo")
            if isinstance(info, dict) and isinstance(info.get(MARKER), dict):
                marker = int(info[MARKER]["manifest"])
            meta = action.get("metaData")
            if isinstance(meta, dict):
                schema = str(meta["schemaString"])
    except (ValueError, KeyError, TypeError) as e:
        raise Corrupt(f"Delta commit {key} is unreadable: {e}") from e
    return LogHead(version, marker, schema)


def delta_type(kind: ColumnKind) -> str:
    """The Delta type a lakeflux column kind is declared as."""
    return _DELTA_TYPES[kind]


__all__ = ["Commit", "DataFile", "LogHead", "delta_type", "read_head", "relative_path", "schema_string",
           "table_id"]
