"""The processing engine running real plugins inside an in-process server (CONTRACT §1–§3)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading

import pytest
from runtime_support import (
    ManualTimer,
    create_trigger,
    engine_config,
    global_cache,
    log_texts,
    wait_for,
)

from lakeflux.engine.cache import CacheStore
from lakeflux.engine.cursors import CursorStore
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

# 2001-09-09T01:46:40Z: a multiple of every period used below.
T0 = 1_000_000_000 * 1_000_000_000


@pytest.fixture
def srv(tmp_path):
    with InProcessServer(engine_config(tmp_path), store=MemoryStore()) as server:
        assert server.write("db", "setup v=1").status == 204
        yield server


def calls(srv, key="calls"):
    return list(global_cache(srv, key, []))


def write_ns(srv, db, lines):
    reply = srv.write(db, lines, precision="ns")
    assert reply.status == 204, reply.body


# -- WAL triggers ------------------------------------------------------------------------------------


def test_write_trigger_sees_every_row_per_segment_with_present_columns(srv):
    assert create_trigger(srv, "db", "w", "rt_recorder.py", "all_tables").status == 200
    write_ns(srv, "db", "cpu,host=a usage=1.5 100\ncpu,host=b idle=2i 200\nmem,host=a free=7u,ok=t 300")
    write_ns(srv, "db", 'cpu,host=c,zone=z msg="hi" 400')
    recorded = wait_for(lambda: len(calls(srv)) >= 2 and calls(srv), what="two calls")
    assert [c["batches"] for c in recorded] == [
        [
            {"table_name": "cpu", "rows": [{"host": "a", "usage": 1.5, "time": 100},
                                           {"host": "b", "idle": 2, "time": 200}]},
            {"table_name": "mem", "rows": [{"host": "a", "free": 7, "ok": True, "time": 300}]},
        ],
        [{"table_name": "cpu", "rows": [{"host": "c", "zone": "z", "msg": "hi", "time": 400}]}],
    ]
    assert recorded[0]["args"] is None
    assert all(type(row["time"]) is int for c in recorded for b in c["batches"] for row in b["rows"])


def test_concurrent_writes_all_rows_delivered_grouped_by_segment(srv):
    assert create_trigger(srv, "db", "w", "rt_recorder.py", "table:cpu").status == 200
    lines = [f"cpu,writer={i} n={i}i {1000 + i}" for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda line: write_ns(srv, "db", line), lines))
    write_ns(srv, "db", "other v=1 5")  # not a cpu segment: no call for it
    wait_for(lambda: sum(len(c["batches"][0]["rows"]) for c in calls(srv)) >= 40, what="all rows")
    recorded = calls(srv)
    seen = sorted(row["n"] for c in recorded for row in c["batches"][0]["rows"])
    assert seen == list(range(40))
    assert all([b["table_name"] for b in c["batches"]] == ["cpu"] for c in recorded)
    assert len(recorded) <= 40  # group commit: several writes may share one segment and one call
    segments = srv.services.buffer.stats.segments
    assert len(recorded) < segments  # the "other" segment and setup made no call


def test_table_trigger_with_args_query_and_multi_line_write_back(srv):
    args = {"key": "cpu_calls", "query": "SELECT count(*) AS n FROM cpu", "out": "derived"}
    assert create_trigger(srv, "db", "w", "rt_recorder.py", "table:cpu", trigger_arguments=args).status == 200
    write_ns(srv, "db", "cpu,host=a v=1 10\ncpu,host=b v=2 20\nmem v=1 30")
    recorded = wait_for(lambda: calls(srv, "cpu_calls"), what="cpu call")
    assert recorded[0]["args"] == args
    assert [b["table_name"] for b in recorded[0]["batches"]] == ["cpu"]
    # Queries inside process_writes see the triggering rows.
    assert recorded[0]["query"] == [{"n": 2}]
    rows = wait_for(lambda: srv.services.catalog.state.live_db("derived")
                    and srv.query("derived", "SELECT kind, n FROM seen ORDER BY kind"), what="write-back")
    assert rows == [{"kind": "calls", "n": 1}, {"kind": "rows", "n": 2}]
    texts = log_texts(srv, "db", "w")
    assert texts[0] == "starting execution of wal plugin."
    assert texts[1].startswith("finished execution in ")


def test_sync_trigger_calls_in_order(srv):
    assert create_trigger(srv, "db", "w", "rt_recorder.py", "table:seq").status == 200
    for i in range(10):
        write_ns(srv, "db", f"seq n={i}i {i + 1}")
    wait_for(lambda: len(calls(srv)) == 10, what="ten calls")
    assert [c["batches"][0]["rows"][0]["n"] for c in calls(srv)] == list(range(10))


def test_plugin_posting_back_to_the_server_from_process_writes(srv):
    assert create_trigger(srv, "db", "notify", "rt_request.py", "request:notify").status == 200
    args = {"base": srv.url, "path": "notify"}
    assert create_trigger(srv, "db", "w", "rt_callback.py", "table:alert", trigger_arguments=args).status == 200
    write_ns(srv, "db", "alert level=3i 1")
    reply = wait_for(lambda: global_cache(srv, "callback_reply"), what="callback reply")
    assert reply == {"body": '{"tables": ["alert"]}', "method_body_type": "bytes"}
    # The server kept serving meanwhile and the WAL trigger finished normally.
    wait_for(lambda: any(t.startswith("finished") for t in log_texts(srv, "db", "w")), what="finish row")


# -- error behaviours and containment -------------------------------------------------------------------


def test_log_behaviour_drops_writes_and_continues(srv):
    assert create_trigger(srv, "db", "f", "rt_fail.py", "table:x", trigger_arguments={"mode": "raise"}).status == 200
    write_ns(srv, "db", "x v=1 1")
    write_ns(srv, "db", "x v=2 2")
    errors = wait_for(lambda: len(log_texts(srv, "db", "f", "ERROR")) >= 2 and log_texts(srv, "db", "f", "ERROR"),
                      what="two errors")
    assert errors[0].startswith("error executing wal plugin: ValueError: boom 1 (rt_fail.py, line ")
    assert errors[1].startswith("error executing wal plugin: ValueError: boom 2")
    assert srv.services.catalog.state.live_db("failout") is None  # queued writes were dropped


@pytest.mark.parametrize("mode", ["exit", "interrupt"])
def test_system_exit_and_keyboard_interrupt_are_contained(srv, mode):
    assert create_trigger(srv, "db", "f", "rt_fail.py", "table:x", trigger_arguments={"mode": mode}).status == 200
    assert create_trigger(srv, "db", "ok", "rt_recorder.py", "table:x").status == 200
    write_ns(srv, "db", "x v=1 1")
    write_ns(srv, "db", "x v=2 2")
    name = "SystemExit: 3" if mode == "exit" else "KeyboardInterrupt"
    errors = wait_for(lambda: len(log_texts(srv, "db", "f", "ERROR")) >= 2 and log_texts(srv, "db", "f", "ERROR"),
                      what="errors")
    assert all(e.startswith(f"error executing wal plugin: {name}") for e in errors)
    wait_for(lambda: len(calls(srv)) == 2, what="the other trigger's calls")
    assert srv.request("GET", "/health").status == 200


def test_retry_behaviour_backs_off_then_gives_up(srv):
    sleeps: list[float] = []
    srv.services.engine.retry_sleep = sleeps.append
    settings = {"error_behavior": "retry"}
    reply = create_trigger(srv, "db", "f", "rt_fail.py", "table:x", trigger_arguments={"mode": "raise"},
                           trigger_settings=settings)
    assert reply.status == 200
    write_ns(srv, "db", "x v=1 1")
    errors = wait_for(lambda: len(log_texts(srv, "db", "f", "ERROR")) >= 5 and log_texts(srv, "db", "f", "ERROR"),
                      what="five attempts")
    assert [e.rsplit(" ", 1)[-1] for e in errors] == [f"{k}/5)" for k in range(1, 6)]
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert global_cache(srv, "attempts") == 5


def test_retry_behaviour_succeeds_on_a_later_attempt(srv):
    srv.services.engine.retry_sleep = lambda seconds: None
    args = {"mode": "raise", "succeed_at": "3"}
    reply = create_trigger(srv, "db", "f", "rt_fail.py", "table:x", trigger_arguments=args,
                           trigger_settings={"error_behavior": "retry"})
    assert reply.status == 200
    write_ns(srv, "db", "x v=1 1")
    wait_for(lambda: "succeeded at attempt 3" in log_texts(srv, "db", "f", "INFO"), what="success")
    assert len(log_texts(srv, "db", "f", "ERROR")) == 2


def test_disable_behaviour_persists_and_enable_revives(srv):
    reply = create_trigger(srv, "db", "f", "rt_fail.py", "table:x", trigger_arguments={"mode": "raise"},
                           trigger_settings={"error_behavior": "disable"})
    assert reply.status == 200
    write_ns(srv, "db", "x v=1 1")
    wait_for(lambda: srv.services.catalog.state.live_db("db").triggers["f"].disabled, what="disabled")
    errors = log_texts(srv, "db", "f", "ERROR")
    assert len(errors) == 1
    assert errors[0].startswith("trigger disabled after error: ValueError: boom 1 (rt_fail.py, line ")
    write_ns(srv, "db", "x v=2 2")  # no call while disabled
    enable = srv.request("POST", "/api/v3/configure/processing_engine_trigger/enable?db=db&trigger_name=f")
    assert enable.status == 200
    write_ns(srv, "db", "x v=3 3")
    wait_for(lambda: global_cache(srv, "attempts") == 2, what="call after enable")


# -- schedules ---------------------------------------------------------------------------------------------


@pytest.fixture
def timer(srv):
    manual = ManualTimer(T0 + 1)
    srv.services.engine.timer = manual
    return manual


def scheduled_times(srv):
    return [c["call_time"] for c in calls(srv)]


def test_every_trigger_fires_on_aligned_ticks_and_catches_up(srv, timer):
    assert create_trigger(srv, "db", "s", "rt_recorder.py", "every:10s", trigger_arguments={"key": "calls"}).status == 200
    wait_for(lambda: timer.waiters == 1, what="scheduler waiting")
    timer.advance(10)
    wait_for(lambda: len(calls(srv)) == 1, what="first tick")
    start = dt.datetime(2001, 9, 9, 1, 46, 40)
    assert scheduled_times(srv) == [start + dt.timedelta(seconds=10)]
    assert calls(srv)[0]["args"] == {"key": "calls"}
    # Far behind: the missed ticks fire back-to-back, each with its own call_time.
    timer.advance(30)
    wait_for(lambda: len(calls(srv)) == 4, what="catch-up ticks")
    assert scheduled_times(srv) == [start + dt.timedelta(seconds=s) for s in (10, 20, 30, 40)]
    texts = log_texts(srv, "db", "s", "INFO")
    assert "starting execution with scheduled time 2001-09-09 01:46:50 UTC" in texts


def test_ticks_missed_while_disabled_are_not_replayed(srv, timer):
    assert create_trigger(srv, "db", "s", "rt_recorder.py", "every:10s").status == 200
    route = "/api/v3/configure/processing_engine_trigger"
    assert srv.request("POST", f"{route}/disable?db=db&trigger_name=s").status == 200
    timer.advance(100)
    assert srv.request("POST", f"{route}/enable?db=db&trigger_name=s").status == 200
    wait_for(lambda: timer.waiters == 1, what="scheduler waiting")
    timer.advance(10)
    wait_for(lambda: calls(srv), what="tick after enable")
    assert scheduled_times(srv) == [dt.datetime(2001, 9, 9, 1, 48, 30)]


def test_exhausted_cron_ends_the_trigger(srv, timer):
    assert create_trigger(srv, "db", "c", "rt_recorder.py", "cron:0 0 0 1 1 * 2002").status == 200
    wait_for(lambda: timer.waiters == 1, what="scheduler waiting")
    timer.advance(200 * 86_400)
    wait_for(lambda: calls(srv), what="the one fire")
    assert scheduled_times(srv) == [dt.datetime(2002, 1, 1)]
    wait_for(lambda: "schedule has no further fire times; the trigger stopped" in log_texts(srv, "db", "c"),
             what="exhausted")


def test_schedule_error_is_logged_and_system_exit_contained(srv, timer):
    assert create_trigger(srv, "db", "s", "rt_fail.py", "every:5s", trigger_arguments={"mode": "exit"}).status == 200
    wait_for(lambda: timer.waiters == 1, what="scheduler waiting")
    timer.advance(10)
    errors = wait_for(lambda: len(log_texts(srv, "db", "s", "ERROR")) == 2 and log_texts(srv, "db", "s", "ERROR"),
                      what="two failed ticks")
    assert all(e.startswith("error executing schedule plugin: SystemExit: 3 (rt_fail.py, line ") for e in errors)
    wait_for(lambda: timer.waiters == 1, what="still scheduling")


def test_async_schedule_and_cache_ttl_with_fake_clock(srv, timer):
    srv.services.engine.caches = CacheStore(timer)
    reply = create_trigger(srv, "db", "s", "rt_recorder.py", "every:1s", trigger_settings={"run_async": True})
    assert reply.status == 200
    wait_for(lambda: timer.waiters == 1, what="scheduler waiting")
    timer.advance(3)
    wait_for(lambda: len(calls(srv)) == 3, what="three async ticks")
    assert sorted(scheduled_times(srv)) == [dt.datetime(2001, 9, 9, 1, 46, 40 + s) for s in (1, 2, 3)]


# -- caches ------------------------------------------------------------------------------------------------


def cache_op(srv, path, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    reply = srv.request("GET", f"/api/v3/engine/{path}?{query}")
    assert reply.status == 200, reply.body
    return reply.json()


def test_cache_namespaces_and_ttl(srv, timer):
    srv.services.engine.caches = CacheStore(timer)
    assert create_trigger(srv, "db", "c1", "rt_cache.py", "request:c1").status == 200
    assert create_trigger(srv, "db", "c2", "rt_cache.py", "request:c2").status == 200
    cache_op(srv, "c1", op="put", key="k", value="local", ttl="10")
    cache_op(srv, "c1", op="put", key="k", value="shared", ttl="20", **{"global": "1"})
    assert cache_op(srv, "c1", op="get", key="k") == {"value": "local"}
    assert cache_op(srv, "c2", op="get", key="k") == {"value": "missing"}  # trigger-scoped
    assert cache_op(srv, "c2", op="get", key="k", **{"global": "1"}) == {"value": "shared"}
    timer.advance(10)
    assert cache_op(srv, "c1", op="get", key="k") == {"value": "missing"}  # expired
    assert cache_op(srv, "c2", op="get", key="k", **{"global": "1"}) == {"value": "shared"}
    timer.advance(10)
    assert cache_op(srv, "c2", op="get", key="k", **{"global": "1"}) == {"value": "missing"}
    cache_op(srv, "c1", op="put", key="d", value="x")
    assert cache_op(srv, "c1", op="delete", key="d") == {"deleted": True}
    assert cache_op(srv, "c1", op="delete", key="d") == {"deleted": False}
    # Disabling drops the trigger's namespace.
    cache_op(srv, "c1", op="put", key="kept", value="x")
    route = "/api/v3/configure/processing_engine_trigger"
    assert srv.request("POST", f"{route}/disable?db=db&trigger_name=c1").status == 200
    assert srv.request("POST", f"{route}/enable?db=db&trigger_name=c1").status == 200
    assert cache_op(srv, "c1", op="get", key="kept") == {"value": "missing"}


# -- request triggers -----------------------------------------------------------------------------------


def test_request_mapping(srv):
    assert create_trigger(srv, "db", "r", "rt_request.py", "request:api/v1", trigger_arguments={"a": "b"}).status == 200
    reply = srv.request("GET", "/api/v3/engine/api/v1?x=1+2&x=3&flag", headers={"Authorization": "Bearer t",
                                                                            "X-Custom": "Yes"})
    assert reply.status == 200
    body = reply.json()
    assert body["params"] == {"x": "3", "flag": ""}
    assert body["headers"]["x-custom"] == "Yes" and "authorization" not in body["headers"]
    assert body["args"] == {"a": "b"}
    echo = srv.request("POST", "/api/v3/engine/api/v1?mode=echo", b"raw body")
    assert echo.json() == {"body": "raw body", "method_body_type": "bytes"}
    created = srv.request("GET", "/api/v3/engine/api/v1?mode=tuple")
    assert (created.status, created.headers["X-Plugin"], created.json()) == (201, "on", {"created": True})
    text = srv.request("GET", "/api/v3/engine/api/v1?mode=text")
    assert text.headers["Content-Type"].startswith("text/html") and text.body == b"<p>hello</p>"
    assert srv.request("GET", "/api/v3/engine/api/v1?mode=bytes").body == b"\x00\x01"
    flask = srv.request("GET", "/api/v3/engine/api/v1?mode=flask")
    assert (flask.status, flask.body, flask.headers["X-Flask"]) == (201, b"flask body", "yes")
    assert srv.request("GET", "/api/v3/engine/api/v1?mode=asyncio").json() == {"value": 42}
    none = srv.request("GET", "/api/v3/engine/api/v1?mode=none")
    assert none.status == 500 and none.json() == {"error": "Unsupported return type from Python function"}
    failed = srv.request("GET", "/api/v3/engine/api/v1?mode=bad")
    assert failed.status == 500
    assert failed.json() == {"error": "Python function call failed: ValueError: unknown mode bad"}
    errors = log_texts(srv, "db", "r", "ERROR")
    assert errors[-1].startswith("error running request plugin: ValueError: unknown mode bad (rt_request.py")
    assert srv.request("PUT", "/api/v3/engine/api/v1").status == 405
    missing = srv.request("GET", "/api/v3/engine/nothing")
    assert missing.status == 404 and missing.json() == {"error": "not found"}


def test_request_plugin_write_sync_and_import_time_line_builder(srv):
    assert create_trigger(srv, "db", "r", "rt_request.py", "request:w").status == 200
    reply = srv.request("GET", "/api/v3/engine/w?mode=write")
    assert (reply.body, reply.headers["Content-Type"]) == (b'{"written": true}', "text/html")
    assert srv.query("reqout", "SELECT n FROM hit") == [{"n": 1}]  # write_sync returned after commit
    assert create_trigger(srv, "db", "rec", "rt_recorder.py", "request:rec").status == 200
    assert srv.request("GET", "/api/v3/engine/rec").json()["loaded"] == "loaded,by=rt_recorder n=1i"


def test_request_exception_logged_with_request_wording(srv):
    assert create_trigger(srv, "db", "r", "rt_fail.py", "request:fail").status == 200
    reply = srv.request("GET", "/api/v3/engine/fail")
    assert reply.status == 500
    assert reply.json() == {"error": "Python function call failed: RuntimeError: request went wrong"}
    assert log_texts(srv, "db", "r", "ERROR")[0].startswith("error running request plugin: RuntimeError")


def test_async_request_trigger_runs_calls_concurrently(srv):
    srv.services.engine.caches.put(("global",), "barrier", threading.Barrier(3))
    reply = create_trigger(srv, "db", "b", "rt_barrier.py", "request:b", trigger_settings={"run_async": True})
    assert reply.status == 200
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: srv.request("GET", "/api/v3/engine/b"), range(3)))
    assert [r.json() for r in replies] == [{"met": True}] * 3


# -- restarts ----------------------------------------------------------------------------------------------


def test_triggers_logs_and_cursors_survive_a_restart(tmp_path):
    config = engine_config(tmp_path, object_store="file")
    with InProcessServer(config) as first:
        write_ns(first, "db", "cpu v=1 1")
        assert create_trigger(first, "db", "w", "rt_recorder.py", "table:cpu").status == 200
        assert create_trigger(first, "db", "r", "rt_request.py", "request:r", disabled=True).status == 200
        write_ns(first, "db", "cpu v=2 2")
        wait_for(lambda: calls(first), what="first delivery")
        wait_for(lambda: any(t.startswith("finished") for t in log_texts(first, "db", "w")), what="finish row")
        cursors = CursorStore(first.services.store, config.node_id)
        delivered = wait_for(lambda: cursors.get("db", "w"), what="cursor")
        # Pretend the server died before recording that segment as finished.
        cursors.put("db", "w", delivered - 1)
    with InProcessServer(config) as second:
        # Redelivered at boot, before anything new.
        redelivered = wait_for(lambda: calls(second), what="redelivery")
        assert redelivered[0]["batches"] == [{"table_name": "cpu", "rows": [{"v": 2.0, "time": 2}]}]
        write_ns(second, "db", "cpu v=3 3")
        wait_for(lambda: len(calls(second)) == 2, what="new delivery")
        assert calls(second)[1]["batches"][0]["rows"] == [{"v": 3.0, "time": 3}]
        rows = second.query("db", "SELECT trigger_name, disabled FROM system.processing_engine_triggers "
                                  "ORDER BY trigger_name")
        assert rows == [{"trigger_name": "r", "disabled": True}, {"trigger_name": "w", "disabled": False}]
        texts = log_texts(second, "db", "w")
        # One call before the restart (its rows were persisted), the redelivery and the new one after.
        assert texts.count("starting execution of wal plugin.") == 3


def test_boot_failure_is_logged_and_server_continues(tmp_path):
    config = engine_config(tmp_path, object_store="file")
    with InProcessServer(config) as first:
        write_ns(first, "db", "cpu v=1 1")
        assert create_trigger(first, "db", "w", "rt_recorder.py", "table:cpu").status == 200
    (config.plugin_dir / "rt_recorder.py").unlink()
    with InProcessServer(config) as second:
        errors = log_texts(second, "db", "w", "ERROR")
        assert errors[0].startswith("failed to start trigger at boot; continuing in degraded state")
        write_ns(second, "db", "cpu v=2 2")


def test_disable_interrupts_the_running_call(srv):
    assert create_trigger(srv, "db", "spin", "rt_spin.py", "request:spin").status == 200
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(srv.request, "GET", "/api/v3/engine/spin")
        wait_for(lambda: global_cache(srv, "spinning"), what="plugin running")
        route = "/api/v3/configure/processing_engine_trigger"
        assert srv.request("POST", f"{route}/disable?db=db&trigger_name=spin").status == 200
        reply = pending.result(timeout=30)
    assert reply.status == 500
    assert reply.json() == {"error": "Python function call failed: KeyboardInterrupt: "}
    assert log_texts(srv, "db", "spin", "ERROR")[0].startswith("error running request plugin: KeyboardInterrupt")


def test_plugin_timeout_interrupts_a_long_call(srv):
    srv.services.engine.plugin_timeout_s = 0.2
    assert create_trigger(srv, "db", "spin", "rt_spin.py", "request:spin").status == 200
    reply = srv.request("GET", "/api/v3/engine/spin")
    assert reply.status == 500
    assert reply.json() == {"error": "Python function call failed: TimeoutError: plugin call timed out after 0.2 s"}
