"""Plugin log rows: per-database retention and persistence with compaction (CONTRACT §3)."""

from __future__ import annotations

from lakeflux.engine import logs as logs_module
from lakeflux.engine.logs import PluginLogs
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore


class StepClock:
    def __init__(self) -> None:
        self.t = 0

    def now_ns(self) -> int:
        self.t += 1
        return self.t

    def monotonic(self) -> float:
        return self.t / 1e9


def test_rows_are_kept_per_database_and_survive_a_reload():
    store = MemoryStore()
    logs = PluginLogs(store, "n", StepClock())
    logs.log("a", "t1", "INFO", "one")
    logs.log("b", "t2", "ERROR", "two")
    assert logs.flush() == 2
    logs.log("a", "t1", "WARN", "three")
    logs.flush()
    reloaded = PluginLogs(store, "n")
    assert reloaded.load("a") == 2
    assert reloaded.load("b") == 1
    assert [(r.trigger_name, r.log_level, r.log_text) for r in reloaded.rows("a")] == [
        ("t1", "INFO", "one"), ("t1", "WARN", "three")]
    table = reloaded.table("b")
    assert table.column_names == ["event_time", "trigger_name", "log_level", "log_text"]
    assert str(table.schema.field("event_time").type) == "timestamp[ns]"


def test_compaction_replaces_older_objects_and_retention_is_bounded(monkeypatch):
    monkeypatch.setattr(logs_module, "KEEP_PER_DB", 5)
    store = MemoryStore()
    logs = PluginLogs(store, "n", StepClock())
    for i in range(logs_module.COMPACT_AFTER + 3):
        logs.log("db", "t", "INFO", f"row {i}")
        logs.flush()
    objects = store.list(paths.plugin_logs_prefix("n", "db"))
    assert len(objects) < logs_module.COMPACT_AFTER
    reloaded = PluginLogs(store, "n")
    reloaded.load("db")
    texts = [r.log_text for r in reloaded.rows("db")]
    last = logs_module.COMPACT_AFTER + 2
    assert texts == [f"row {i}" for i in range(last - 4, last + 1)]


def test_drop_database_forgets_rows_and_objects():
    store = MemoryStore()
    logs = PluginLogs(store, "n", StepClock())
    logs.log("db", "t", "INFO", "x")
    logs.flush()
    logs.drop_database("db")
    assert logs.rows("db") == []
    assert store.list(paths.plugin_logs_prefix("n", "db")) == []
