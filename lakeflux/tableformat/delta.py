"""The Delta Lake log, as lakeflux writes it: JSON commits of add and remove actions (docs/open-tables.md).

Only what lakeflux needs of the Delta protocol (reader version 1, writer version 2): a table's first
commit carries `protocol` and `metaData`; every commit carries `commitInfo` (naming the lakeflux manifest
it publishes), `metaData` again when the schema changed, and the `remove` and `add` actions of one change.
No partition columns: each file is one UTC day of one table, and its `time` statistics let readers prune.

Every `CHECKPOINT_INTERVAL`th version also gets a checkpoint (`<version>.checkpoint.parquet`, then
`_last_checkpoint` naming it): the table's whole state at that version, so a reader replays at most that
many JSON commits however long the log grows. A checkpoint holds the protocol, the metaData and one `add`
per live file; no `remove` tombstones (lakeflux deletes removed files at once, so there is nothing for a
vacuum to find) and no `txn` (lakeflux is the only writer).

Log cleanup follows the protocol's "Metadata Cleanup" (`expired_log_files`): with the cut-off time now minus
the log retention, the cut-off commit is the newest commit written before it, the cut-off checkpoint the
newest checkpoint not newer than that commit; every log file of an older version goes, the cut-off
checkpoint, its commit and everything after stay. The retention is recorded in the metaData's configuration
as `delta.logRetentionDuration` (Delta's name for it; 30 days by default there and here), so a Delta tool
that cleans the log itself keeps as much as lakeflux does.

Column types (lakeflux → Delta): tag and string → string, int64 → long, float64 → double, bool → boolean,
uint64 → decimal(20,0) (Delta has no unsigned type; every uint64 fits), time → long nanoseconds since the
epoch, UTC (Delta's timestamp types hold microseconds: a cast would drop the last three digits).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import Corrupt
from ..model import ColumnKind
from ..store import paths
from ..store.base import ObjectMeta

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
# Delta's own default (`delta.checkpointInterval`): one checkpoint every ten versions.
CHECKPOINT_INTERVAL = 10
# Delta's default `delta.logRetentionDuration`: log files older than this may be deleted (after a checkpoint).
LOG_RETENTION_S = 30 * 86_400.0
RETENTION_KEY = "delta.logRetentionDuration"
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
    configuration: dict[str, str] = field(default_factory=dict)  # the metaData's table properties

    def to_bytes(self) -> bytes:
        """Newline-delimited JSON actions, commitInfo first."""
        info = {"timestamp": self.timestamp_ms, "operation": self.operation, "operationParameters": {},
                "engineInfo": ENGINE_INFO, "isBlindAppend": not self.removes, MARKER: {"manifest": self.marker}}
        actions: list[dict[str, Any]] = [{"commitInfo": info}]
        if self.first:
            actions.append({"protocol": {"minReaderVersion": READER_VERSION, "minWriterVersion": WRITER_VERSION}})
        if self.schema is not None:
            actions.append({"metaData": _metadata(self.table_root, self.schema, self.timestamp_ms,
                                                   self.configuration)})
        for key in self.removes:
            actions.append({"remove": {"path": relative_path(self.table_root, key),
                                       "deletionTimestamp": self.timestamp_ms, "dataChange": True}})
        for f in self.adds:
            actions.append({"add": _add(self.table_root, f, self.timestamp_ms)})
        return b"".join(orjson.dumps(a) + b"\n" for a in actions)


def _metadata(table_root: str, schema: str, created_ms: int | None,
              configuration: dict[str, str]) -> dict[str, Any]:
    return {"id": table_id(table_root), "format": {"provider": "parquet", "options": {}}, "schemaString": schema,
            "partitionColumns": [], "configuration": dict(configuration), "createdTime": created_ms}


def table_configuration(log_retention_s: float | None) -> dict[str, str]:
    """The table properties lakeflux records in a metaData action: its log retention, in Delta's interval
    syntax (`interval 30 days`; whole seconds otherwise), which Spark and delta-rs both parse; none when log
    cleanup is off (None)."""
    if log_retention_s is None:
        return {}
    seconds = max(0, round(log_retention_s))
    text = f"interval {seconds // 86_400} days" if seconds and seconds % 86_400 == 0 else f"interval {seconds} seconds"
    return {RETENTION_KEY: text}


def _add(table_root: str, f: DataFile, timestamp_ms: int) -> dict[str, Any]:
    stats = {"numRecords": f.rows, "minValues": {"time": f.min_time}, "maxValues": {"time": f.max_time},
             "nullCount": {"time": 0}}
    return {"path": relative_path(table_root, f.key), "partitionValues": {}, "size": f.size,
            "modificationTime": timestamp_ms, "dataChange": True, "stats": orjson.dumps(stats).decode()}


_STRING_MAP = pa.map_(pa.string(), pa.string())
# The checkpoint columns a reader of this protocol version looks for (the Delta protocol's checkpoint schema).
_CHECKPOINT_SCHEMA = pa.schema([
    ("txn", pa.struct([("appId", pa.string()), ("version", pa.int64()), ("lastUpdated", pa.int64())])),
    ("add", pa.struct([("path", pa.string()), ("partitionValues", _STRING_MAP), ("size", pa.int64()),
                       ("modificationTime", pa.int64()), ("dataChange", pa.bool_()), ("stats", pa.string()),
                       ("tags", _STRING_MAP)])),
    ("remove", pa.struct([("path", pa.string()), ("deletionTimestamp", pa.int64()), ("dataChange", pa.bool_()),
                          ("extendedFileMetadata", pa.bool_()), ("partitionValues", _STRING_MAP),
                          ("size", pa.int64())])),
    ("metaData", pa.struct([("id", pa.string()), ("name", pa.string()), ("description", pa.string()),
                            ("format", pa.struct([("provider", pa.string()), ("options", _STRING_MAP)])),
                            ("schemaString", pa.string()), ("partitionColumns", pa.list_(pa.string())),
                            ("configuration", _STRING_MAP), ("createdTime", pa.int64())])),
    ("protocol", pa.struct([("minReaderVersion", pa.int32()), ("minWriterVersion", pa.int32())])),
])


@dataclass(frozen=True)
class Checkpoint:
    """The state of a table at one version: what a checkpoint of that version holds."""

    table_root: str
    version: int
    schema: str  # the schemaString of the table's newest metaData
    files: tuple[DataFile, ...]  # every live file
    timestamp_ms: int
    configuration: dict[str, str] = field(default_factory=dict)  # the newest metaData's table properties

    def to_parquet(self) -> bytes:
        """The `<version>.checkpoint.parquet` object: one row per action, the other columns null."""
        def maps(d: dict[str, str]) -> list[tuple[str, str]]:
            return list(d.items())

        meta = _metadata(self.table_root, self.schema, None, self.configuration)
        meta["format"]["options"] = maps(meta["format"]["options"])
        meta["configuration"] = maps(meta["configuration"])
        actions: list[dict[str, Any]] = [
            {"protocol": {"minReaderVersion": READER_VERSION, "minWriterVersion": WRITER_VERSION}},
            {"metaData": meta}]
        for f in self.files:
            add = _add(self.table_root, f, self.timestamp_ms)
            add["partitionValues"] = maps(add["partitionValues"])
            actions.append({"add": add})
        rows = [{name: action.get(name) for name in _CHECKPOINT_SCHEMA.names} for action in actions]
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=_CHECKPOINT_SCHEMA), sink)
        return sink.getvalue()

    def pointer(self) -> bytes:
        """The `_last_checkpoint` object naming this checkpoint."""
        return orjson.dumps({"version": self.version, "size": len(self.files) + 2,
                             "numOfAddFiles": len(self.files)})


@dataclass(frozen=True)
class LogHead:
    """What lakeflux needs to know of a table's newest commit."""

    version: int
    marker: int | None  # the lakeflux manifest it published (None: not a lakeflux commit)
    schema: str | None  # its metaData's schema string, if it carried one
    configuration: dict[str, str] | None = None  # its metaData's table properties, if it carried one


def read_head(version: int, data: bytes, key: str) -> LogHead:
    """Parse commit `version` (the newest of its log). Raises Corrupt if it is not newline-delimited JSON."""
    marker = schema = None
    configuration: dict[str, str] | None = None
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
                configuration = {str(k): str(v) for k, v in (meta.get("configuration") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise Corrupt(f"Delta commit {key} is unreadable: {e}") from e
    return LogHead(version, marker, schema, configuration)


def expired_log_files(table_root: str, listing: list[ObjectMeta], until_version: int, cutoff_ns: int) -> list[str]:
    """The keys of a table's log files that cleanup deletes, oldest version first (the Delta protocol's
    metadata cleanup). `listing` is the log prefix as listed; `cutoff_ns` the newest modification time a
    file may have to count as past retention; `until_version` the newest checkpoint `_last_checkpoint`
    names (an older pointer, left by a failed put, must still find its checkpoint).

    The cut-off commit is the newest commit such that it and every older one were modified at or before
    the cut-off (a commit modified later, whatever the clocks did, keeps itself and what follows); the
    cut-off checkpoint is the newest single-file checkpoint not newer than it and `until_version` whose
    commit is listed too. Every file named `<version>.<anything>` of a lower version goes (commits,
    checkpoints, checksums); `_last_checkpoint` and subfolders are never touched. None without a cut-off
    checkpoint. So whoever listed the log less than the retention ago finds the checkpoint it started
    from, or a newer one, and every commit after it.
    """
    commits: dict[int, int] = {}
    checkpoints: set[int] = set()
    entries: list[tuple[int, str]] = []
    for meta in listing:
        parsed = paths.delta_log_file(table_root, meta.key)
        if parsed is None:
            continue
        version, rest = parsed
        entries.append((version, meta.key))
        if rest == "json":
            commits[version] = meta.last_modified_ns
        elif rest == "checkpoint.parquet":
            checkpoints.add(version)
    cutoff_commit = -1
    for version in sorted(commits):
        if commits[version] > cutoff_ns:
            break
        cutoff_commit = version
    candidates = [v for v in checkpoints if v <= min(cutoff_commit, until_version) and v in commits]
    if not candidates:
        return []
    keep_from = max(candidates)
    return [key for version, key in sorted(entries) if version < keep_from]


def delta_type(kind: ColumnKind) -> str:
    """The Delta type a lakeflux column kind is declared as."""
    return _DELTA_TYPES[kind]


__all__ = ["CHECKPOINT_INTERVAL", "LOG_RETENTION_S", "RETENTION_KEY", "Checkpoint", "Commit", "DataFile", "LogHead",
           "delta_type", "expired_log_files", "read_head", "relative_path", "schema_string", "table_configuration",
           "table_id"]
