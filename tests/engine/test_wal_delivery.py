"""WAL triggers under backlog (engine/waltrigger.py): batched calls in commit order, per-call limits, a
memory-bounded backlog read back from the WAL, lag in a system table and on /metrics, and the WAL
backlog limit that gives up the oldest segments with an ERROR row naming them."""

from __future__ import annotations

import threading

import pytest
from runtime_support import create_trigger, engine_config, global_cache, log_texts, wait_for

from lakeflux.engine.cache import GLOBAL_NAMESPACE
from lakeflux.engine.waltrigger import DeliveryLimits, WalTrigger
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


class Gate:
    """The rt_gate plugin's switch: its calls are recorded, and wait while the gate is closed."""

    def __init__(self, srv: InProcessServer) -> None:
        assert srv.services is not None
        self.srv = srv
        self.event = threading.Event()
        self.calls: list[list[dict]] = []
        caches = srv.services.engine.caches
        caches.put(GLOBAL_NAMESPACE, "gate", self.event)
        caches.put(GLOBAL_NAMESPACE, "gate_calls", self.calls)

    def wait_calls(self, count: int) -> list[list[dict]]:
        wait_for(lambda: len(self.calls) >= count, what=f"{count} calls")
        return self.calls

    def open(self) -> None:
        self.event.set()


def rows_of(call: list[dict]) -> list[tuple[str, int]]:
    return [(batch["table_name"], row["v"]) for batch in call for row in batch["rows"]]


def write_ns(srv: InProcessServer, lines: str, db: str = "db") -> None:
    reply = srv.write(db, lines, precision="ns")
    assert reply.status == 204, reply.body


def wal_trigger(srv: InProcessServer, name: str) -> WalTrigger:
    assert srv.services is not None
    found = [t for t, _ in srv.services.engine.wal_lag() if t.definition.name == name]
    assert found, f"no running WAL trigger {name}"
    return found[0]


def lag_rows(srv: InProcessServer, db: str = "db") -> list[dict]:
    return srv.query(db, "SELECT * FROM system.processing_engine_wal_lag ORDER BY trigger_name")


@pytest.fixture
def srv(tmp_path):
    with InProcessServer(engine_config(tmp_path), store=MemoryStore()) as server:
        write_ns(server, "setup v=0i 1")
        yield server


def test_a_trigger_behind_gets_every_waiting_segment_in_one_call_in_commit_order(srv):
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "all_tables").status == 200
    write_ns(srv, "a v=1i 1")
    gate.wait_calls(1)  # the first call waits at the gate: the next segments pile up
    write_ns(srv, "b v=2i 2\na v=3i 3")
    write_ns(srv, "c v=4i 4")
    write_ns(srv, "a v=5i 5\nb v=6i 6")
    gate.open()
    calls = gate.wait_calls(2)
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to finish")
    assert len(calls) == 2
    assert rows_of(calls[0]) == [("a", 1)]
    # One entry per table, tables in the order first written, each table's rows in commit order.
    assert [batch["table_name"] for batch in calls[1]] == ["b", "a", "c"]
    assert rows_of(calls[1]) == [("b", 2), ("b", 6), ("a", 3), ("a", 5), ("c", 4)]
    assert calls[1][0]["rows"][0] == {"v": 2, "time": 2}


def test_a_table_trigger_batch_keeps_only_its_table(srv):
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    write_ns(srv, "a v=1i 1")
    gate.wait_calls(1)
    write_ns(srv, "b v=2i 2\na v=3i 3")
    write_ns(srv, "c v=4i 4")  # no rows of `a`: no call, and no part of a call
    write_ns(srv, "a v=5i 5")
    gate.open()
    calls = gate.wait_calls(2)
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to finish")
    assert [rows_of(call) for call in calls] == [[("a", 1)], [("a", 3), ("a", 5)]]


def test_calls_are_bounded_by_rows_unless_one_segment_alone_is_larger(srv):
    assert srv.services is not None
    srv.services.engine.delivery = DeliveryLimits(call_rows=3)
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    write_ns(srv, "a v=0i 100")
    gate.wait_calls(1)
    for v in range(1, 6):
        write_ns(srv, f"a v={v}i {100 + v}")
    write_ns(srv, "\n".join(f"a v={v}i {100 + v}" for v in range(6, 11)))  # five rows in one segment
    write_ns(srv, "a v=11i 111")
    gate.open()
    wait_for(lambda: sum(len(rows_of(call)) for call in gate.calls) == 12, what="every row")
    sizes = [len(rows_of(call)) for call in gate.calls]
    assert sizes == [1, 3, 2, 5, 1]
    assert [v for call in gate.calls for _, v in rows_of(call)] == list(range(12))


def test_a_stuck_plugin_holds_bounded_memory_and_gets_the_rest_from_the_wal(srv):
    assert srv.services is not None
    srv.services.engine.delivery = DeliveryLimits(memory_bytes=4096)
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    write_ns(srv, "a,k=first v=0i 1")
    gate.wait_calls(1)
    trigger = wal_trigger(srv, "g")
    for n in range(1, 41):
        write_ns(srv, "\n".join(f"a,k=s{n} v={n * 100 + i}i {n * 100 + i}" for i in range(20)))
        assert trigger._backlog.memory <= 4096
    assert len(trigger._backlog) == 40
    assert trigger._backlog.rows == 800
    spilled = sum(1 for entry in trigger._backlog.front(100) if entry.tables is None)
    assert spilled > 30  # most of the backlog is only in the object store
    gate.open()
    wait_for(lambda: sum(len(rows_of(call)) for call in gate.calls) == 801, what="every row")
    seen = [v for call in gate.calls[1:] for _, v in rows_of(call)]
    assert seen == [n * 100 + i for n in range(1, 41) for i in range(20)]  # commit order, nothing twice
    assert gate.calls[1][0]["rows"][0] == {"k": "s1", "v": 100, "time": 100}


def test_lag_shows_in_the_system_table_and_on_metrics(srv):
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    assert srv.services is not None
    position = srv.services.engine.min_wal_cursor()
    assert lag_rows(srv) == [{"trigger_name": "g", "segments_behind": 0, "rows_behind": 0, "seconds_behind": 0.0,
                              "position": position, "skipped_segments": 0}]
    write_ns(srv, "a v=1i 1\na v=2i 2")
    gate.wait_calls(1)
    write_ns(srv, "a v=3i 3")
    write_ns(srv, "b v=4i 4")  # another table: not behind on it
    write_ns(srv, "a v=5i 5\na v=6i 6\na v=7i 7")
    [row] = lag_rows(srv)
    assert (row["segments_behind"], row["rows_behind"], row["skipped_segments"]) == (3, 6, 0)
    assert row["seconds_behind"] >= 0
    assert row["position"] == position  # the running call's segment is not finished
    metrics = srv.request("GET", "/metrics").body.decode().splitlines()
    labels = '{database="db",trigger="g"}'
    assert f"lakeflux_plugin_wal_backlog_segments{labels} 3" in metrics
    assert f"lakeflux_plugin_wal_backlog_rows{labels} 6" in metrics
    [internal] = srv.query("_internal", "SELECT trigger_name, database_name, rows_behind "
                                        "FROM system.processing_engine_wal_lag")
    assert internal == {"trigger_name": "g", "database_name": "db", "rows_behind": 6}
    gate.open()
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to catch up")
    [row] = lag_rows(srv)
    assert (row["rows_behind"], row["seconds_behind"]) == (0, 0.0)
    assert row["position"] >= position + 4  # past every segment, the one without rows for it too


def test_backlog_limit_skips_the_oldest_segments_with_an_error_naming_them(srv):
    assert srv.services is not None
    engine = srv.services.engine
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    write_ns(srv, "a v=0i 1")
    gate.wait_calls(1)
    stuck = wal_trigger(srv, "g").position() + 1  # the segment the plugin is stuck on
    for v in range(1, 9):
        write_ns(srv, f"a v={v}i {v + 1}")
    infos = engine._segments.list_after(stuck - 1)
    assert [info.seq for info in infos] == list(range(stuck, stuck + 9))
    engine.wal_backlog_limit = None
    assert engine.enforce_wal_backlog_limit() == 0
    # Room for the three newest segments only (each is smaller than the largest).
    engine.wal_backlog_limit = sum(sorted(info.size for info in infos)[-3:])
    assert engine.enforce_wal_backlog_limit() == 1
    cut = infos[-4].seq
    errors = log_texts(srv, "db", "g", "ERROR")
    assert len(errors) == 1
    assert f"skipped WAL segments {stuck} to {cut} (6 segments" in errors[0]
    assert "--plugin-wal-backlog-limit" in errors[0]
    [row] = lag_rows(srv)
    assert (row["skipped_segments"], row["position"], row["segments_behind"]) == (6, cut, 3)
    assert engine.cursors.get("db", "g") == cut
    assert engine.min_wal_cursor() == cut  # the next snapshot may trim the given-up segments
    assert engine.enforce_wal_backlog_limit() == 0  # within the limit now
    gate.open()
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to catch up")
    delivered = [v for call in gate.calls for _, v in rows_of(call)]
    assert delivered == [0, 6, 7, 8]  # the stuck call's own segment went on; 1-5 were given up


def test_an_async_trigger_batches_and_finishes_every_segment(srv):
    assert srv.services is not None
    srv.services.engine.delivery = DeliveryLimits(call_rows=4, async_calls_in_flight=2)
    gate = Gate(srv)
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a", trigger_settings={"run_async": True}).status == 200
    for v in range(12):
        write_ns(srv, f"a v={v}i {v + 1}")
    gate.wait_calls(2)
    assert len(gate.calls) == 2  # two calls in flight at most
    gate.open()
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="every segment finished")
    delivered = sorted(v for call in gate.calls for _, v in rows_of(call))
    assert delivered == list(range(12))
    assert all(len(rows_of(call)) <= 4 for call in gate.calls)


def test_write_backs_of_batched_calls_all_land(srv):
    gate = Gate(srv)
    args = {"out": "derived"}
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a", trigger_arguments=args).status == 200
    write_ns(srv, "a v=0i 1")
    gate.wait_calls(1)
    for v in range(1, 6):
        write_ns(srv, f"a v={v}i {v + 1}")
    gate.open()
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to finish")
    # Committed before the trigger's position passed the segments: the sum is there at once.
    assert srv.query("derived", "SELECT sum(rows) AS n, count(*) AS calls FROM seen") == [
        {"n": 6, "calls": len(gate.calls)}]
    assert len(gate.calls) == 2
    assert global_cache(srv, "gate_calls") is gate.calls


def test_catch_up_after_a_restart_is_batched_and_read_from_the_wal(tmp_path):
    store = MemoryStore()
    config = engine_config(tmp_path)
    with InProcessServer(config, store=store) as first:
        write_ns(first, "setup v=0i 1")
        gate = Gate(first)
        assert create_trigger(first, "db", "g", "rt_gate.py", "table:a").status == 200
        write_ns(first, "a v=0i 1")
        gate.wait_calls(1)
        for v in range(1, 5):
            write_ns(first, f"a v={v}i {v + 1}")
        write_ns(first, "b v=9i 9")
    # The stop interrupted the stuck call: its segment and the four after it are delivered again.
    with InProcessServer(config, store=store) as second:
        gate = Gate(second)
        gate.open()
        wait_for(lambda: lag_rows(second)[0]["segments_behind"] == 0 and gate.calls, what="the catch-up")
        assert [rows_of(call) for call in gate.calls] == [[("a", v) for v in range(5)]]


@pytest.mark.parametrize("busy_save_s", [0.0, 3600.0])
def test_the_cursor_is_written_at_most_every_busy_save_s_while_calls_finish(srv, busy_save_s):
    assert srv.services is not None
    engine = srv.services.engine
    engine.delivery = DeliveryLimits(busy_save_s=busy_save_s)
    gate = Gate(srv)
    gate.open()
    assert create_trigger(srv, "db", "g", "rt_gate.py", "table:a").status == 200
    created = engine.cursors.get("db", "g")
    for v in range(5):
        write_ns(srv, f"a v={v}i {v + 1}")
        gate.wait_calls(v + 1)
    wait_for(lambda: lag_rows(srv)[0]["segments_behind"] == 0, what="the trigger to finish")
    position = wal_trigger(srv, "g").position()
    if busy_save_s:
        assert engine.cursors.get("db", "g") == created  # five calls finished, none wrote the cursor yet
    else:
        wait_for(lambda: engine.cursors.get("db", "g") == position, what="the cursor")


def test_a_clean_stop_writes_the_position_the_throttled_saves_had_not(tmp_path):
    store = MemoryStore()
    config = engine_config(tmp_path)
    with InProcessServer(config, store=store) as first:
        assert first.services is not None
        engine = first.services.engine
        engine.delivery = DeliveryLimits(busy_save_s=3600.0)
        write_ns(first, "setup v=0i 1")
        gate = Gate(first)
        gate.open()
        assert create_trigger(first, "db", "g", "rt_gate.py", "table:a").status == 200
        created = engine.cursors.get("db", "g")
        for v in range(3):
            write_ns(first, f"a v={v}i {v + 1}")
            gate.wait_calls(v + 1)
        wait_for(lambda: lag_rows(first)[0]["segments_behind"] == 0, what="the trigger to finish")
        position = wal_trigger(first, "g").position()
        assert engine.cursors.get("db", "g") == created  # not written yet: the next save is an hour away
    with InProcessServer(config, store=store) as second:
        assert second.services is not None
        assert second.services.engine.cursors.get("db", "g") == position
        gate = Gate(second)
        gate.open()
        write_ns(second, "a v=7i 8")
        gate.wait_calls(1)
        assert [rows_of(call) for call in gate.calls] == [[("a", 7)]]  # nothing delivered twice
