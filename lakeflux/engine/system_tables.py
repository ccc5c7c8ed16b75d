"""The engine's system tables (CONTRACT §3): triggers, their arguments, the plugin logs, and (Δ) how
far each running WAL trigger is behind.

Each database sees its own rows. `_internal` sees every database's rows with a trailing
`database_name` column (Δ).

`processing_engine_wal_lag` (lakeflux only) has one row per running WAL trigger:
`segments_behind` / `rows_behind` (committed segments with rows for it that it has not finished, and
their rows as far as known: segments listed from the WAL after a restart count once read),
`seconds_behind` (since the oldest of them was committed; 0 when caught up), `position` (the newest
segment such that it and every earlier one are finished: delivered and written back) and
`skipped_segments` (given up past `--plugin-wal-backlog-limit` since the trigger started).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import pyarrow as pa

from ..catalog import INTERNAL_DB, CatalogState, TriggerDef
from .logs import PluginLogs, rows_to_table

TRIGGERS = "processing_engine_triggers"
TRIGGER_ARGUMENTS = "processing_engine_trigger_arguments"
LOGS = "processing_engine_logs"
WAL_LAG = "processing_engine_wal_lag"

TRIGGERS_SCHEMA = pa.schema([
    ("trigger_name", pa.string()),
    ("plugin_filename", pa.string()),
    ("trigger_specification", pa.string()),
    ("disabled", pa.bool_()),
    ("error_behavior", pa.string()),
    ("run_async", pa.bool_()),
])
WAL_LAG_SCHEMA = pa.schema([
    ("trigger_name", pa.string()),
    ("segments_behind", pa.int64()),
    ("rows_behind", pa.int64()),
    ("seconds_behind", pa.float64()),
    ("position", pa.int64()),
    ("skipped_segments", pa.int64()),
])
ARGUMENTS_SCHEMA = pa.schema([
    ("trigger_name", pa.string()),
    ("argument_key", pa.string()),
    ("argument_value", pa.string()),
])


class WalLagRow(NamedTuple):
    """One running WAL trigger's lag, as `processing_engine_wal_lag` shows it."""

    database: str
    trigger: str
    segments: int
    rows: int
    seconds: float
    position: int
    skipped_segments: int


def _triggers_of(state: CatalogState, db: str) -> list[TriggerDef]:
    if db == INTERNAL_DB:
        return [t for d in state.databases.values() if not d.deleted for t in d.triggers.values()]
    found = state.live_db(db)
    return list(found.triggers.values()) if found else []


def _with_database(table: pa.Table, names: Iterable[str]) -> pa.Table:
    return table.append_column("database_name", pa.array(list(names), pa.string()))


def triggers_table(triggers: list[TriggerDef], with_database: bool = False) -> pa.Table:
    """`system.processing_engine_triggers` rows of these triggers."""
    table = pa.table(
        [
            [t.name for t in triggers],
            [t.plugin_filename for t in triggers],
            [t.spec for t in triggers],
            [t.disabled for t in triggers],
            [t.error_behavior for t in triggers],
            [t.run_async for t in triggers],
        ],
        schema=TRIGGERS_SCHEMA,
    )
    return _with_database(table, [t.database for t in triggers]) if with_database else table


def arguments_table(triggers: list[TriggerDef], with_database: bool = False) -> pa.Table:
    """`system.processing_engine_trigger_arguments`: one row per argument."""
    rows = [(t, key, value) for t in triggers for key, value in (t.arguments or {}).items()]
    table = pa.table(
        [[t.name for t, _, _ in rows], [k for _, k, _ in rows], [v for _, _, v in rows]],
        schema=ARGUMENTS_SCHEMA,
    )
    return _with_database(table, [t.database for t, _, _ in rows]) if with_database else table


def logs_table(logs: PluginLogs, db: str) -> pa.Table:
    """`system.processing_engine_logs` of `db` (every database's for `_internal`)."""
    if db != INTERNAL_DB:
        return logs.table(db)
    names: list[str] = []
    rows = []
    for name in logs.databases():
        found = logs.rows(name)
        rows.extend(found)
        names.extend([name] * len(found))
    return _with_database(rows_to_table(rows), names)


def wal_lag_table(lags: Iterable[WalLagRow], db: str) -> pa.Table:
    """`system.processing_engine_wal_lag` of `db` (every database's for `_internal`), by trigger name."""
    internal = db == INTERNAL_DB
    rows = sorted((lag for lag in lags if internal or lag.database == db), key=lambda lag: (lag.database, lag.trigger))
    table = pa.table(
        [[r.trigger for r in rows], [r.segments for r in rows], [r.rows for r in rows], [r.seconds for r in rows],
         [r.position for r in rows], [r.skipped_segments for r in rows]],
        schema=WAL_LAG_SCHEMA,
    )
    return _with_database(table, [r.database for r in rows]) if internal else table


def engine_system_tables(state: CatalogState, logs: PluginLogs, db: str,
                         lags: Iterable[WalLagRow] = ()) -> dict[str, pa.Table]:
    """The engine's tables for `db`, ready to register under the `system` schema."""
    triggers = _triggers_of(state, db)
    internal = db == INTERNAL_DB
    return {
        TRIGGERS: triggers_table(triggers, internal),
        TRIGGER_ARGUMENTS: arguments_table(triggers, internal),
        LOGS: logs_table(logs, db),
        WAL_LAG: wal_lag_table(lags, db),
    }
