"""Plugin faults (issue 7): busy loops (interrupted by --plugin-timeout), a terabyte allocation
(MemoryError, contained), raising from every entry point, garbage writes, and a trigger that feeds on its
own writes — all at once, on one server. Ingest, queries and a healthy trigger keep working throughout."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from lakeflux.config import Config
from lakeflux.engine.cache import GLOBAL_NAMESPACE
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

PLUGINS = Path(__file__).parent / "plugins"
TRIGGERS = {  # name: (plugin, spec)
    "loop_w": ("rf_loop.py", "table:loop"), "loop_s": ("rf_loop.py", "every:1s"),
    "loop_r": ("rf_loop.py", "request:loop"), "alloc_w": ("rf_alloc.py", "table:alloc"),
    "alloc_r": ("rf_alloc.py", "request:alloc"), "raise_w": ("rf_raise.py", "table:raise"),
    "raise_s": ("rf_raise.py", "every:1s"), "raise_r": ("rf_raise.py", "request:raise"),
    "garbage": ("rf_garbage.py", "table:garbage"), "echo": ("rf_echo.py", "table:echo"),
    "good": ("rf_good.py", "table:good"), "good_r": ("rf_good.py", "request:good"),
}


def wait_for(condition, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def srv(tmp_path):
    plugin_dir = tmp_path / "plugins"
    shutil.copytree(PLUGINS, plugin_dir)
    config = Config(object_store="memory", data_dir=tmp_path / "data", wal_flush_interval=0.01, without_auth=True,
                    plugin_dir=plugin_dir, plugin_timeout=0.3)
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db", "good,k=a v=0i 1").status == 204
        for name, (plugin, spec) in TRIGGERS.items():
            reply = server.request("POST", "/api/v3/configure/processing_engine_trigger", {
                "db": "db", "trigger_name": name, "plugin_filename": plugin, "trigger_specification": spec})
            assert reply.status == 200, (name, reply.body)
        yield server


def errors_of(srv: InProcessServer, trigger: str) -> list[str]:
    rows = srv.query("db", "SELECT trigger_name, log_level, log_text FROM system.processing_engine_logs")
    return [r["log_text"] for r in rows if r["trigger_name"] == trigger and r["log_level"] == "ERROR"]


def cache(srv: InProcessServer, key: str) -> int:
    assert srv.services is not None
    return srv.services.engine.caches.get(GLOBAL_NAMESPACE, key, 0)


def test_bad_plugins_do_not_take_the_server_down(srv):
    for table in ("loop", "alloc", "raise", "garbage", "echo"):
        assert srv.write("db", f"{table},k=a v=1i").status == 204
    # Request triggers answer 500 with the error, and the server keeps answering.
    for path, text in (("loop", "TimeoutError"), ("alloc", "MemoryError"), ("raise", "RecursionError")):
        reply = srv.request("GET", f"/api/v3/engine/{path}", timeout=30)
        assert reply.status == 500 and text in reply.json()["error"], (path, reply.body)
    # Every faulty WAL and schedule trigger logged its error (and so was contained).
    wait_for(lambda: any("timed out" in t for t in errors_of(srv, "loop_w")), "the WAL busy loop to time out")
    wait_for(lambda: any("timed out" in t for t in errors_of(srv, "loop_s")), "the scheduled busy loop")
    wait_for(lambda: any("MemoryError" in t for t in errors_of(srv, "alloc_w")), "the allocation to fail")
    wait_for(lambda: any("process_writes" in t for t in errors_of(srv, "raise_w")), "process_writes to raise")
    wait_for(lambda: any("ZeroDivisionError" in t for t in errors_of(srv, "raise_s")), "a scheduled call to raise")
    # The self-feeding trigger keeps going (each generation is one more WAL segment), and ingest is not starved.
    wait_for(lambda: cache(srv, "echo_generations") >= 5, "the echo trigger to feed on its own writes")
    for i in range(1, 21):
        assert srv.write("db", f"good,k=a v={i}i {i + 1}").status == 204
    assert srv.query("db", "SELECT count(*) AS n FROM good") == [{"n": 21}]
    # Its trigger was created after the first row: it sees the 20 written since.
    wait_for(lambda: cache(srv, "good_rows") >= 20, "the healthy trigger to see every row")
    assert cache(srv, "good_rows") == 20
    assert srv.request("GET", "/api/v3/engine/good").json() == {"ok": True}
    # Garbage written by a plugin was refused, and nothing of it became a table in an invalid place.
    tables = set(srv.services.catalog.state.databases["db"].tables)  # type: ignore[union-attr]
    assert {"good", "echo", "loop"} <= tables
    assert srv.request("GET", "/health").status == 200
