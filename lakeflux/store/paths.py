"""Every object-store key lakeflux uses is built and parsed here, and nowhere else.

Layout under the store root:

    <node>/wal/<seq:020>.parquet                   one committed WAL segment per flush
    <node>/catalog/log/<seq:020>.json              catalog change batches (append-only)
    <node>/catalog/checkpoint.json                 catalog state as of a log sequence it names
    <node>/snapshots/<seq:020>.json                snapshot manifests (the list of persisted files)
    <node>/staging/<wal seq>/<db>/<table>/...       snapshot files before their manifest commits
    <node>/deleted/<purge at ns|never>/<db>/<table>/...   files of deleted tables awaiting hard delete
    <node>/tables/<db>/<table>/date=<YYYY-MM-DD>/<name>.parquet   persisted table data (hive style)
    <node>/tables/<db>/<table>/_delta_log/<version:020>.json      the table's Delta Lake log (docs/open-tables.md)
    <node>/tables/<db>/<table>/_delta_log/<version:020>.checkpoint.parquet   its state at every 10th version
    <node>/tables/<db>/<table>/_delta_log/_last_checkpoint         which checkpoint is the newest
    <node>/cursors/<db>/<trigger>.json             WAL trigger cursors
    <node>/plugin_logs/<db>/<seq:020>.parquet      persisted plugin log rows
    <cluster>/nodes/<node>.json                    the node registry: one record per node of a cluster
    <node>/relay/<seq:020>.json                    a process node's relay: which (node, WAL segment) is next
    <node>/relay/floor.json                        per source node, the WAL its WAL triggers no longer need
    <cluster>/compaction/<seq:020>.json            the cluster compactor's manifests (its files, what it absorbed)
    <cluster>/compacted/<db>/<table>/date=<YYYY-MM-DD>/<seq:020>-<epoch>-<n>.parquet   compacted table data

A cluster's catalog is `<cluster>/catalog/...`, shared by its nodes; each node keeps the rest under its own
prefix. A single node is the cluster named after it (its catalog is `<node>/catalog/...`, as always).

Sequence numbers are zero-padded to 20 digits so lexical order equals numeric order.

Names of databases, tables and triggers become one key segment each (`name_segment`): percent-escaped,
readable for ASCII names and identical to the keys of earlier versions for every name whose keys worked
there; `.` and `..` are escaped as `%2E`; a name whose escaped form is too long for a file name keeps a
readable head and ends in `!` and a hash of the whole name. So every name a catalog accepts gives a valid
key of bounded length on every store (file names at most 255 bytes, S3 keys well under 1024).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

SEQ_WIDTH = 20
_SEQ_RE = re.compile(r"^(\d{20})\.(parquet|json)$")

# The longest file or directory name local filesystems take (ext4, xfs, btrfs: 255 bytes).
MAX_SEGMENT = 255
# A file store writes an object through a temp file named `<name>.<32 hex><TEMP_SUFFIX>` beside it.
_TEMP_NAME_EXTRA = 1 + 32 + 6
# Characters kept as they are in a name's segment; everything else is %XX-escaped (UTF-8 bytes).
_SAFE = "-_.,=:@ "
# Starts the hash of a shortened name: quote() escapes it, so no plain escaped name contains it.
_HASH_MARK = "!"
_HASH_HEX = 32


def _seq(n: int) -> str:
    if n < 0:
        raise ValueError(f"sequence numbers are non-negative, got {n}")
    return f"{n:0{SEQ_WIDTH}d}"


def name_segment(name: str, limit: int = MAX_SEGMENT) -> str:
    """The key segment of a database, table or trigger name: at most `limit` bytes, never empty, '.' or
    '..', never holding '/'; distinct names give distinct segments.

    The escaped name (readable for ASCII names) when it fits, which is the segment every earlier version
    used for it; '.' and '..' with their dots escaped; else the escaped name cut to fit (never inside an
    escape), '!' and the first 128 bits of the SHA-256 of the name.
    """
    escaped = _escaped(name)
    if escaped in (".", ".."):
        return escaped.replace(".", "%2E")
    return _bounded(name, escaped, limit)


def _escaped(name: str) -> str:
    if not name:
        raise ValueError("names are never empty")
    return quote(name, safe=_SAFE)


def _bounded(name: str, escaped: str, limit: int) -> str:
    if len(escaped) <= limit:  # escaped text is ASCII: characters are bytes
        return escaped
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    head = escaped[: limit - len(_HASH_MARK) - _HASH_HEX]
    cut = head.find("%", len(head) - 2)
    if cut >= 0:
        head = head[:cut]
    return f"{head}{_HASH_MARK}{digest}"


def _file_name(part: str, extension: str) -> str:
    """A name as the last segment of an object key, `extension` appended: its temp twin fits too."""
    return _bounded(part, _escaped(part), MAX_SEGMENT - _TEMP_NAME_EXTRA - len(extension)) + extension


def _legacy_name(part: str) -> str:
    """The segment versions before name_segment gave a name (unbounded; '.' and '..' unescaped)."""
    return _escaped(part)


def parse_seq(key: str) -> int | None:
    """The sequence number of a WAL, catalog-log or snapshot key, or None if `key` is not one."""
    m = _SEQ_RE.match(key.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


# --- WAL -----------------------------------------------------------------------------------------
def wal_prefix(node: str) -> str:
    return f"{node}/wal/"


def wal_segment(node: str, seq: int) -> str:
    return f"{node}/wal/{_seq(seq)}.parquet"


# --- cluster -------------------------------------------------------------------------------------
def node_registry_prefix(cluster: str) -> str:
    return f"{cluster}/nodes/"


def node_record(cluster: str, node: str) -> str:
    """The registry record of `node`: its modes, address and heartbeat (rewritten in place)."""
    return f"{node_registry_prefix(cluster)}{_file_name(node, '.json')}"


def relay_prefix(node: str) -> str:
    """A process node's relay: its one sequence of the cluster's WAL segments its WAL triggers read."""
    return f"{node}/relay/"


def relay_entry(node: str, seq: int) -> str:
    return f"{node}/relay/{_seq(seq)}.json"


def relay_floor(node: str) -> str:
    """Per source node, the newest WAL segment a process node's WAL triggers no longer need (rewritten)."""
    return f"{node}/relay/floor.json"


def compaction_prefix(cluster: str) -> str:
    """The cluster compactor's manifests: one put-if-absent object per compaction (lakeflux.cluster.compaction)."""
    return f"{cluster}/compaction/"


def compaction_manifest(cluster: str, seq: int) -> str:
    return f"{cluster}/compaction/{_seq(seq)}.json"


def compacted_prefix(cluster: str) -> str:
    """Every compacted table file of the cluster lies under here."""
    return f"{cluster}/compacted/"


def compacted_table_prefix(cluster: str, db: str, table: str) -> str:
    """Prefix of one table's compacted files (and of its Delta log, as for a node's table prefix)."""
    return f"{cluster}/compacted/{name_segment(db)}/{name_segment(table)}/"


def compacted_file(cluster: str, db: str, table: str, date: str, seq: int, epoch: int, n: int) -> str:
    """A compacted file written by compaction `seq` of compactor epoch `epoch` (its n-th of the table's day)."""
    return f"{compacted_table_prefix(cluster, db, table)}date={date}/{_seq(seq)}-{epoch}-{n}.parquet"


# --- catalog -------------------------------------------------------------------------------------
def catalog_log_prefix(node: str) -> str:
    return f"{node}/catalog/log/"


def catalog_log(node: str, seq: int) -> str:
    return f"{node}/catalog/log/{_seq(seq)}.json"


def catalog_checkpoint(node: str) -> str:
    return f"{node}/catalog/checkpoint.json"


# --- snapshots and persisted tables --------------------------------------------------------------
def snapshot_prefix(node: str) -> str:
    return f"{node}/snapshots/"


def snapshot_manifest(node: str, seq: int) -> str:
    return f"{node}/snapshots/{_seq(seq)}.json"


def tables_prefix(node: str) -> str:
    return f"{node}/tables/"


def table_prefix(node: str, db: str, table: str) -> str:
    """Prefix holding every persisted file of one table: point DuckDB at `<prefix>date=*/*.parquet` (not
    `**/*.parquet`, which also matches the Delta log's checkpoints)."""
    return f"{node}/tables/{name_segment(db)}/{name_segment(table)}/"


def table_file(node: str, db: str, table: str, date: str, name: str) -> str:
    """A persisted Parquet file; `date` is YYYY-MM-DD, `name` is deterministic from the WAL sequence."""
    return f"{table_prefix(node, db, table)}date={date}/{name}.parquet"


def current_table_file(node: str, db: str, table: str, key: str) -> str:
    """The key the current layout gives table file `key` of `db`.`table` (itself, unless an earlier
    version wrote it under the unbounded name escaping: S3 stores may hold such files)."""
    return table_prefix(node, db, table) + "/".join(key.split("/")[-2:])


def table_root_of(key: str) -> str:
    """The table prefix a table file key (`table_file`) lies under."""
    root, date, _ = key.rsplit("/", 2)
    if not date.startswith("date="):
        raise ValueError(f"not a table file key: {key!r}")
    return f"{root}/"


def delta_log_prefix(table_root: str) -> str:
    """The Delta Lake log of the table at `table_root` (a `table_prefix`): one JSON commit per version."""
    return f"{table_root}_delta_log/"


def delta_commit(table_root: str, version: int) -> str:
    """Delta commit `version` of the table at `table_root`, as the Delta protocol names it."""
    return f"{delta_log_prefix(table_root)}{_seq(version)}.json"


def delta_checkpoint(table_root: str, version: int) -> str:
    """The Delta checkpoint of `version`: the whole table state as of that version, in Parquet."""
    return f"{delta_log_prefix(table_root)}{_seq(version)}.checkpoint.parquet"


def delta_last_checkpoint(table_root: str) -> str:
    """The Delta `_last_checkpoint` pointer: readers start from the checkpoint it names."""
    return f"{delta_log_prefix(table_root)}_last_checkpoint"


_DELTA_LOG_FILE_RE = re.compile(r"^(\d{20})\.([^/]+)$")


def delta_log_file(table_root: str, key: str) -> tuple[int, str] | None:
    """(version, the rest of the name) of a file directly in the table's Delta log named for a version:
    `json` for a commit, `checkpoint.parquet` for a checkpoint, others for what other writers add
    (checksums, multi-part checkpoints). None for `_last_checkpoint`, subfolders and anything else."""
    prefix = delta_log_prefix(table_root)
    if not key.startswith(prefix):
        return None
    m = _DELTA_LOG_FILE_RE.match(key[len(prefix):])
    return (int(m.group(1)), m.group(2)) if m else None


def staging_prefix(node: str, seq: int | None = None) -> str:
    """Snapshot files before their manifest commits; never read by queries or external engines."""
    return f"{node}/staging/" if seq is None else f"{node}/staging/{_seq(seq)}/"


def staging_file(node: str, seq: int, final_key: str) -> str:
    """The staging twin of a table file written by the snapshot at WAL sequence `seq`."""
    tail = final_key[len(tables_prefix(node)):]
    return f"{staging_prefix(node, seq)}{tail}"


def staging_seq(key: str) -> int | None:
    """The snapshot sequence a staging key belongs to."""
    parts = key.split("/")
    if len(parts) > 2 and parts[1] == "staging" and parts[2].isdigit():
        return int(parts[2])
    return None


def snapshot_file_name(wal_seq: int) -> str:
    """Persisted files are named by the WAL sequence their snapshot covers: a replay rewrites, not adds."""
    return _seq(wal_seq)


def trash_prefix(node: str) -> str:
    return f"{node}/deleted/"


def trash_file(node: str, purge_at_ns: int | None, final_key: str) -> str:
    """Where a deleted table's files wait for their hard delete (None: kept until removed by hand)."""
    when = "never" if purge_at_ns is None else f"{purge_at_ns:020d}"
    return f"{trash_prefix(node)}{when}/{final_key[len(tables_prefix(node)):]}"


def trash_purge_at(key: str) -> int | None:
    """The hard-delete time (ns) of a trash key; None for 'never' or a key that is not trash."""
    parts = key.split("/")
    if len(parts) > 2 and parts[1] == "deleted" and parts[2].isdigit():
        return int(parts[2])
    return None


# --- engine state --------------------------------------------------------------------------------
def trigger_cursor(node: str, db: str, trigger: str) -> str:
    return f"{node}/cursors/{name_segment(db)}/{_file_name(trigger, '.json')}"


def legacy_trigger_cursor(node: str, db: str, trigger: str) -> str | None:
    """Where an earlier version kept the cursor of a trigger whose name now gives another key (S3 and
    memory stores could hold those), or None when the key is the same."""
    key = f"{node}/cursors/{_legacy_name(db)}/{_legacy_name(trigger)}.json"
    return None if key == trigger_cursor(node, db, trigger) else key


def plugin_logs_prefix(node: str, db: str) -> str:
    return f"{node}/plugin_logs/{name_segment(db)}/"


def plugin_logs(node: str, db: str, seq: int) -> str:
    return f"{plugin_logs_prefix(node, db)}{_seq(seq)}.parquet"


# --- temp objects --------------------------------------------------------------------------------
TEMP_SUFFIX = ".lftmp"


def is_temp(key: str) -> bool:
    """Temp objects never end in .parquet/.json, so listing tables and readers skip them."""
    return key.endswith(TEMP_SUFFIX)
