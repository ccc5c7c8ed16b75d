"""Helpers for the engine runtime tests: servers with a plugin dir, a manual timer, polling."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakeflux.config import Config
from lakeflux.engine.cache import GLOBAL_NAMESPACE
from lakeflux.testing.server import InProcessServer

PLUGINS = Path(__file__).parent / "plugins"
TRIGGER_ROUTE = "/api/v3/configure/processing_engine_trigger"


def copy_plugins(target: Path) -> Path:
    """Copy the runtime test plugins (rt_*.py) into `target` and return it."""
    target.mkdir(parents=True, exist_ok=True)
    for source in PLUGINS.glob("rt_*.py"):
        shutil.copy(source, target / source.name)
    return target


def engine_config(tmp_path: Path, **changes: Any) -> Config:
    plugin_dir = copy_plugins(tmp_path / "plugins")
    base = Config(plugin_dir=plugin_dir, wal_flush_interval=0.02, object_store="memory", without_auth=True,
                  data_dir=tmp_path / "data")
    return base.with_changes(**changes)


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def create_trigger(srv: InProcessServer, db: str, name: str, plugin: str, spec: str, **extra: Any) -> Any:
    body = {"db": db, "trigger_name": name, "plugin_filename": plugin, "trigger_specification": spec, **extra}
    return srv.request("POST", TRIGGER_ROUTE, body)


def global_cache(srv: InProcessServer, key: str, default: Any = None) -> Any:
    """A value the plugins put in the process-wide cache namespace."""
    assert srv.services is not None
    return srv.services.engine.caches.get(GLOBAL_NAMESPACE, key, default)


def log_rows(srv: InProcessServer, db: str, trigger: str | None = None) -> list[dict[str, Any]]:
    """Plugin log rows of `db` (of one trigger if given), via SQL on the system table."""
    sql = "SELECT trigger_name, log_level, log_text FROM system.processing_engine_logs ORDER BY event_time"
    rows = srv.query(db, sql)
    return [row for row in rows if trigger is None or row["trigger_name"] == trigger]


def log_texts(srv: InProcessServer, db: str, trigger: str, level: str | None = None) -> list[str]:
    return [row["log_text"] for row in log_rows(srv, db, trigger) if level is None or row["log_level"] == level]


class ManualTimer:
    """Clock and Timer whose time moves only when a test calls `advance` (never sleeps for timing)."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns
        self._cond = threading.Condition()
        self.waiters = 0

    def now_ns(self) -> int:
        with self._cond:
            return self._now

    def monotonic(self) -> float:
        return self.now_ns() / 1e9

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += round(seconds * 1e9)
            self._cond.notify_all()

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        with self._cond:
            self.waiters += 1
            try:
                while self._now < t_ns:
                    if stop.is_set():
                        return False
                    self._cond.wait(0.05)  # re-check the stop flag now and then
            finally:
                self.waiters -= 1
        return not stop.is_set()
