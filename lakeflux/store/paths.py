"""Every object-store key lakeflux uses is built and parsed here, and nowhere else.

Layout under the store root:

    <node>/wal/<seq:020>.parquet                   one committed WAL segment per flush
    <node>/catalog/log/<seq:020>.json              catalog change batches (append-only)
    <node>/catalog/checkpoint.json                 catalog state as of a log sequence it names
    <node>/snapshots/<seq:020>.json                snapshot manifests (the list of persisted files)
    <node>/staging/<wal seq>/<db>/<table>/...       snapshot files before their manifest commits
    <node>/deleted/<purge at ns|never>/<db>/<table>/...   files of deleted tables awaiting hard delete
    <node>/tables/<db>/<table>/date=<YYYY-MM-DD>/<name>.parquet   persisted table data (hive style)
    <node>/cursors/<db>/<trigger>.json             WAL trigger cursors
    <node>/plugin_logs/<db>/<seq:020>.parquet      persisted plugin log rows

Sequence numbers are zero-padded to 20 digits so lexical order equals numeric order.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

SEQ_WIDTH = 20
_SEQ_RE = re.compile(r"^(\d{20})\.(parquet|json)$")


def _seq(n: int) -> str:
    if n < 0:
        raise ValueError(f"sequence numbers are non-negative, got {n}")
    return f"{n:0{SEQ_WIDTH}d}"


def _name(part: str) -> str:
    """Escape a database/table/trigger name into one key segment ('/' and '%' are quoted)."""
    return quote(part, safe="-_.,=:@ ")


def unname(segment: str) -> str:
    """Inverse of the name escaping used in keys."""
    return unquote(segment)


def parse_seq(key: str) -> int | None:
    """The sequence number of a WAL, catalog-log or snapshot key, or None if `key` is not one."""
    m = _SEQ_RE.match(key.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


# --- WAL -----------------------------------------------------------------------------------------
def wal_prefix(node: str) -> str:
    return f"{node}/wal/"


def wal_segment(node: str, seq: int) -> str:
    return f"{node}/wal/{_seq(seq)}.parquet"


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
    """Prefix holding every persisted file of one table: point DuckDB at `<prefix>**/*.parquet`."""
    return f"{node}/tables/{_name(db)}/{_name(table)}/"


def table_file(node: str, db: str, table: str, date: str, name: str) -> str:
    """A persisted Parquet file; `date` is YYYY-MM-DD, `name` is deterministic from the WAL sequence."""
    return f"{table_prefix(node, db, table)}date={date}/{name}.parquet"


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
    return f"{node}/cursors/{_name(db)}/{_name(trigger)}.json"


def plugin_logs_prefix(node: str, db: str) -> str:
    return f"{node}/plugin_logs/{_name(db)}/"


def plugin_logs(node: str, db: str, seq: int) -> str:
    return f"{plugin_logs_prefix(node, db)}{_seq(seq)}.parquet"


# --- temp objects --------------------------------------------------------------------------------
TEMP_SUFFIX = ".lftmp"


def is_temp(key: str) -> bool:
    """Temp objects never end in .parquet/.json, so listing tables and readers skip them."""
    return key.endswith(TEMP_SUFFIX)
