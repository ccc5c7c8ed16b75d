"""Per-trigger plugin call counters on GET /metrics (CONTRACT §4.7), through the in-process server."""

from __future__ import annotations

import itertools

from runtime_support import TRIGGER_ROUTE, create_trigger, engine_config, global_cache, wait_for

from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

PREFIX = "lakeflux_plugin_"


def plugin_samples(srv: InProcessServer) -> list[str]:
    """The sample lines of the plugin families, in exposition order (HELP/TYPE lines left out)."""
    reply = srv.request("GET", "/metrics")
    assert reply.status == 200
    return [line for line in reply.body.decode().splitlines() if line.startswith(PREFIX)]


def family_types(srv: InProcessServer) -> list[str]:
    text = srv.request("GET", "/metrics").body.decode()
    return [line for line in text.splitlines() if line.startswith(f"# TYPE {PREFIX}")]


def engine_call(srv: InProcessServer, path: str) -> int:
    return srv.request("GET", f"/api/v3/engine/{path}").status


def switch(srv: InProcessServer, action: str, name: str) -> None:
    assert srv.request("POST", f"{TRIGGER_ROUTE}/{action}", {"db": "db", "trigger_name": name}).status == 200


def test_request_calls_and_failures_are_counted_per_trigger(tmp_path):
    with InProcessServer(engine_config(tmp_path), store=MemoryStore()) as srv:
        assert srv.services is not None
        ticks = itertools.count()
        # Every read moves a quarter second: each (sequential) call lasts exactly 0.25 s.
        srv.services.engine.stats.perf_counter = lambda: next(ticks) * 0.25
        assert srv.write("db", "cpu,host=a usage=1").status == 204
        assert family_types(srv) == [
            "# TYPE lakeflux_plugin_calls_total counter",
            "# TYPE lakeflux_plugin_call_failures_total counter",
            "# TYPE lakeflux_plugin_call_seconds_total counter",
            "# TYPE lakeflux_plugin_wal_backlog_segments gauge",
            "# TYPE lakeflux_plugin_wal_backlog_rows gauge",
            "# TYPE lakeflux_plugin_wal_lag_seconds gauge",
            "# TYPE lakeflux_plugin_wal_skipped_segments_total counter",
            "# TYPE lakeflux_plugin_wal_rows_total counter",
        ]
        assert plugin_samples(srv) == []
        assert create_trigger(srv, "db", "ok", "rt_request.py", "request:ok").status == 200
        assert create_trigger(srv, "db", "bad", "rt_fail.py", "request:bad").status == 200
        assert [engine_call(srv, "ok"), engine_call(srv, "ok"), engine_call(srv, "bad")] == [200, 200, 500]
        bad = 'database="db",trigger="bad",trigger_type="request"'
        ok = 'database="db",trigger="ok",trigger_type="request"'
        assert plugin_samples(srv) == [
            f"lakeflux_plugin_calls_total{{{bad}}} 1",
            f"lakeflux_plugin_calls_total{{{ok}}} 2",
            f"lakeflux_plugin_call_failures_total{{{bad}}} 1",
            f"lakeflux_plugin_call_failures_total{{{ok}}} 0",
            f"lakeflux_plugin_call_seconds_total{{{bad}}} 0.25",
            f"lakeflux_plugin_call_seconds_total{{{ok}}} 0.5",
        ]

        # Process counters: disable/enable keeps them; delete drops them.
        switch(srv, "disable", "ok")
        switch(srv, "enable", "ok")
        assert engine_call(srv, "ok") == 200
        switch(srv, "disable", "bad")
        assert srv.request("DELETE", f"{TRIGGER_ROUTE}?db=db&trigger_name=bad").status == 200
        assert plugin_samples(srv) == [
            f"lakeflux_plugin_calls_total{{{ok}}} 3",
            f"lakeflux_plugin_call_failures_total{{{ok}}} 0",
            f"lakeflux_plugin_call_seconds_total{{{ok}}} 0.75",
        ]


def test_wal_trigger_counts_and_backlog(tmp_path):
    with InProcessServer(engine_config(tmp_path), store=MemoryStore()) as srv:
        assert srv.write("db", "cpu,host=a usage=1").status == 204
        reply = create_trigger(srv, "db", "w", "rt_recorder.py", "table:cpu", trigger_arguments={"key": "w"})
        assert reply.status == 200
        assert srv.write("db", "cpu,host=a usage=2").status == 204
        wait_for(lambda: global_cache(srv, "w"), what="the WAL call")
        lag = 'database="db",trigger="w"'
        # The segment counts as behind until the call returned (and its write-back, if any, committed).
        wait_for(lambda: f"lakeflux_plugin_wal_backlog_segments{{{lag}}} 0" in plugin_samples(srv),
                 what="the trigger to finish the segment")
        labels = 'database="db",trigger="w",trigger_type="wal"'
        samples = plugin_samples(srv)
        assert f"lakeflux_plugin_calls_total{{{labels}}} 1" in samples
        assert f"lakeflux_plugin_call_failures_total{{{labels}}} 0" in samples
        assert f"lakeflux_plugin_wal_backlog_rows{{{lag}}} 0" in samples
        assert f"lakeflux_plugin_wal_lag_seconds{{{lag}}} 0" in samples
        assert f"lakeflux_plugin_wal_skipped_segments_total{{{lag}}} 0" in samples
        assert f"lakeflux_plugin_wal_rows_total{{{lag}}} 1" in samples
        # Deleting the database drops its triggers' series.
        assert srv.request("DELETE", "/api/v3/configure/database?db=db").status == 200
        assert plugin_samples(srv) == []
