"""Dry runs over HTTP (CONTRACT §4.6): captured writes and logs, real queries, test caches, validation."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from runtime_support import PLUGINS, engine_config, log_rows

from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

WAL_ROUTE = "/api/v3/plugin_test/wal"
SCHEDULE_ROUTE = "/api/v3/plugin_test/schedule"


@pytest.fixture
def srv(tmp_path: Path):
    config = engine_config(tmp_path)
    assert config.plugin_dir is not None
    for name in ("dr_wal.py", "dr_schedule.py"):
        shutil.copy(PLUGINS / name, config.plugin_dir / name)
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db", "cpu,host=a usage=1.5\ncpu,host=b usage=2.5").status == 204
        yield server


def wal_test(srv, **extra):
    body = {"filename": "dr_wal.py", "database": "db", "input_lp": "mem,host=a free=3i 1000\nnew_table x=1 2000",
            **extra}
    reply = srv.request("POST", WAL_ROUTE, body)
    assert reply.status == 200, reply.body
    return reply.json()


def test_wal_dry_run_captures_writes_and_logs_and_applies_nothing(srv):
    result = wal_test(srv, input_arguments={"k": "v"})
    assert set(result) == {"log_lines", "database_writes", "errors"}
    assert result["errors"] == []
    assert result["log_lines"] == [
        "INFO: call 1 args {'k': 'v'}",
        "INFO: mem 1 ['free', 'host', 'time']",
        "INFO: new_table 1 ['time', 'x']",
        "INFO: existing cpu rows 2",
    ]
    assert result["database_writes"] == {"other": ["ping n=1i"], "db": ["summary,source=dry tables=2i"]}
    # Nothing was applied: no tables, no databases, no log rows.
    tables = srv.query("db", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'")
    assert [row["table_name"] for row in tables] == ["cpu"]
    assert srv.request("GET", "/api/v3/configure/database?format=json").json() == [
        {"iox::database": "_internal"}, {"iox::database": "db"}]
    assert log_rows(srv, "db") == []


def test_wal_dry_run_needs_no_existing_database(srv):
    reply = srv.request("POST", WAL_ROUTE, {"filename": "dr_schedule.py", "database": "fresh",
                                            "input_lp": "m v=1"})
    assert reply.status == 200
    assert "process_writes function is not present" in reply.json()["errors"][0]


def test_test_cache_is_named_and_persists_between_runs(srv):
    assert wal_test(srv, cache_name="one")["log_lines"][0].startswith("INFO: call 1")
    assert wal_test(srv, cache_name="one")["log_lines"][0].startswith("INFO: call 2")
    assert wal_test(srv, cache_name="two")["log_lines"][0].startswith("INFO: call 1")
    assert wal_test(srv)["log_lines"][0].startswith("INFO: call 1")  # default namespace


def test_type_clash_in_captured_writes_is_an_error(srv):
    result = wal_test(srv, input_arguments={"clash": "yes"})
    assert len(result["errors"]) == 1
    assert "invalid line in write to database db" in result["errors"][0]
    assert "usage" in result["errors"][0]


def test_plugin_exception_is_an_error_and_earlier_logs_are_kept(srv):
    result = wal_test(srv, input_arguments={"fail": "yes"})
    assert result["errors"] == ["ValueError: boom (dr_wal.py, line 21)"]
    assert result["log_lines"][0] == "INFO: call 1 args {'fail': 'yes'}"
    # write() lines are dropped after a raise; write_sync lines had already been "sent".
    assert result["database_writes"] == {"other": ["ping n=1i"]}


def test_bad_input_lines_are_reported(srv):
    result = wal_test(srv, input_lp="good v=1\nbad line here")
    assert result["errors"] == [result["errors"][0]]
    assert result["errors"][0].startswith("line 2: ")


@pytest.mark.parametrize(("body", "status"), [
    ({"filename": "../x.py", "database": "db", "input_lp": ""}, 400),
    ({"filename": "missing.py", "database": "db", "input_lp": ""}, 404),
    ({"filename": "dr_wal.py", "database": "db"}, 400),
    ({"filename": "dr_wal.py", "database": "db", "input_lp": "", "input_arguments": {"a": 1}}, 400),
])
def test_wal_bad_requests(srv, body, status):
    reply = srv.request("POST", WAL_ROUTE, body)
    assert reply.status == status, reply.body
    assert "error" in reply.json()


def test_schedule_dry_run_reports_trigger_time(srv):
    reply = srv.request("POST", SCHEDULE_ROUTE, {"filename": "dr_schedule.py", "database": "db",
                                                 "schedule": "0 0 0 1 1 *"})
    assert reply.status == 200, reply.body
    result = reply.json()
    year = dt.datetime.now(dt.UTC).year + 1
    assert result["trigger_time"] == f"{year}-01-01T00:00:00Z"
    assert result["log_lines"] == [f"INFO: called at {year}-01-01T00:00:00 tz None"]
    assert result["database_writes"] == {"db": [f'tick at="{year}-01-01T00:00:00"']}
    assert result["errors"] == []


def test_schedule_dry_run_default_schedule_and_missing_db(srv):
    reply = srv.request("POST", SCHEDULE_ROUTE, {"filename": "dr_schedule.py", "database": "db"})
    assert reply.status == 200
    fired = dt.datetime.strptime(reply.json()["trigger_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((fired - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    missing = srv.request("POST", SCHEDULE_ROUTE, {"filename": "dr_schedule.py", "database": "nope"})
    assert missing.status == 404
