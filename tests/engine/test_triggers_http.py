"""Trigger lifecycle over HTTP (CONTRACT §2.2, §4.5): checks, status codes, persistence, system tables."""

from __future__ import annotations

import pytest
from runtime_support import TRIGGER_ROUTE, create_trigger, engine_config, wait_for

from lakeflux.config import Config
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer


@pytest.fixture
def srv(tmp_path):
    with InProcessServer(engine_config(tmp_path), store=MemoryStore()) as server:
        assert server.write("db", "cpu,host=a usage=1").status == 204
        yield server


def triggers(srv, db="db"):
    return srv.query(db, "SELECT * FROM system.processing_engine_triggers ORDER BY trigger_name")


def test_create_defaults_and_system_tables(srv):
    reply = create_trigger(srv, "db", "t", "rt_recorder.py", "every:1h30m", trigger_arguments={"a": "1", "b": "x"})
    assert reply.status == 200, reply.body
    assert triggers(srv) == [{
        "trigger_name": "t", "plugin_filename": "rt_recorder.py", "trigger_specification": "every:1h 30m",
        "disabled": False, "error_behavior": "log", "run_async": False,
    }]
    arguments = srv.query("db", "SELECT * FROM system.processing_engine_trigger_arguments ORDER BY argument_key")
    assert arguments == [
        {"trigger_name": "t", "argument_key": "a", "argument_value": "1"},
        {"trigger_name": "t", "argument_key": "b", "argument_value": "x"},
    ]


def test_settings_path_alias_and_internal_view(srv):
    reply = create_trigger(srv, "db", "r", "rt_request.py", "path:/hello",
                           trigger_settings={"run_async": True, "error_behavior": "Retry"}, disabled=True)
    assert reply.status == 200, reply.body
    row = triggers(srv)[0]
    assert (row["trigger_specification"], row["run_async"], row["error_behavior"], row["disabled"]) == (
        "request:hello", True, "retry", True)
    internal = srv.query("_internal", "SELECT trigger_name, database_name FROM system.processing_engine_triggers")
    assert internal == [{"trigger_name": "r", "database_name": "db"}]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"trigger_specification": "bogus:x"}, 400, "failed to parse trigger from bogus:x"),
        ({"trigger_specification": "table:"}, 400, "table name is empty"),
        ({"plugin_filename": "../etc/passwd"}, 400, "Path traversal detected: ../etc/passwd"),
        ({"plugin_filename": "missing.py"}, 404, "Plugin not found: missing.py"),
        ({"db": "nope"}, 404, "nope"),
        ({"db": "_internal"}, 400, "cannot modify internal db"),
        ({"trigger_settings": {"error_behavior": "explode"}}, 400, "error_behavior"),
        ({"trigger_arguments": {"n": 1}}, 400, "trigger argument"),
    ],
)
def test_create_is_refused_with_a_reason(srv, body, status, message):
    request = {"db": "db", "trigger_name": "t", "plugin_filename": "rt_recorder.py",
               "trigger_specification": "all_tables", **body}
    reply = srv.request("POST", TRIGGER_ROUTE, request)
    assert reply.status == status, reply.body
    assert message in reply.json()["error"]
    assert triggers(srv) == []


def test_json_content_type_is_required(srv):
    reply = srv.request("POST", TRIGGER_ROUTE, b'{"db": "db"}', headers={"Content-Type": "text/plain"})
    assert reply.status == 415


def test_duplicate_name_per_db_and_request_path_per_server(srv):
    assert srv.write("other", "cpu v=1").status == 204
    assert create_trigger(srv, "db", "t", "rt_request.py", "request:p").status == 200
    duplicate = create_trigger(srv, "db", "t", "rt_recorder.py", "all_tables")
    assert duplicate.status == 409
    # The same name in another database is a different trigger...
    assert create_trigger(srv, "other", "t", "rt_recorder.py", "all_tables").status == 200
    # ...but a request path is served once per server.
    clash = create_trigger(srv, "other", "u", "rt_request.py", "request:/p")
    assert clash.status == 409
    assert "request path" in clash.json()["error"]


def test_enable_disable_delete(srv):
    assert create_trigger(srv, "db", "r", "rt_request.py", "request:r").status == 200
    assert srv.request("GET", "/api/v3/engine/r").status == 200
    refused = srv.request("DELETE", f"{TRIGGER_ROUTE}?db=db&trigger_name=r")
    assert refused.status == 409
    assert refused.json()["error"] == "Cannot delete running plugin r. Disable it first or use --force."
    for _ in range(2):  # repeats are fine
        assert srv.request("POST", f"{TRIGGER_ROUTE}/disable?db=db&trigger_name=r").status == 200
    assert triggers(srv)[0]["disabled"] is True
    assert srv.request("GET", "/api/v3/engine/r").status == 404
    enable = srv.request("POST", f"{TRIGGER_ROUTE}/enable", {"db": "db", "trigger_name": "r"})
    assert enable.status == 200
    assert triggers(srv)[0]["disabled"] is False
    assert srv.request("GET", "/api/v3/engine/r").status == 200
    assert srv.request("DELETE", TRIGGER_ROUTE, {"db": "db", "trigger_name": "r", "force": True}).status == 200
    assert triggers(srv) == []
    assert srv.request("DELETE", f"{TRIGGER_ROUTE}?db=db&trigger_name=r&force=true").status == 404
    assert srv.request("POST", f"{TRIGGER_ROUTE}/enable?db=db&trigger_name=r").status == 404


def test_update_in_place_keeps_omitted_fields(srv):
    assert create_trigger(srv, "db", "r", "rt_request.py", "request:one", trigger_arguments={"k": "v"}).status == 200
    reply = srv.request("PUT", TRIGGER_ROUTE, {"db": "db", "trigger_name": "r", "trigger_specification": "request:two",
                                               "trigger_settings": {"error_behavior": "disable"}})
    assert reply.status == 200, reply.body
    row = triggers(srv)[0]
    assert (row["trigger_specification"], row["error_behavior"], row["plugin_filename"]) == (
        "request:two", "disable", "rt_request.py")
    assert srv.request("GET", "/api/v3/engine/one").status == 404
    assert srv.request("GET", "/api/v3/engine/two").json()["args"] == {"k": "v"}
    missing = srv.request("PUT", TRIGGER_ROUTE, {"db": "db", "trigger_name": "zzz", "trigger_specification": "all_tables"})
    assert missing.status == 404


def test_restricted_trigger_types(tmp_path):
    config = engine_config(tmp_path, restrict_plugin_triggers_to=("wal",))
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db", "cpu v=1").status == 204
        refused = create_trigger(server, "db", "s", "rt_recorder.py", "every:1s")
        assert refused.status == 400
        assert refused.json()["error"] == "server is configured to reject Schedule plugin triggers"
        assert create_trigger(server, "db", "w", "rt_recorder.py", "all_tables").status == 200


def test_no_plugin_dir(tmp_path):
    config = Config(wal_flush_interval=0.02, object_store="memory", data_dir=tmp_path / "data")
    with InProcessServer(config, store=MemoryStore()) as server:
        assert server.write("db", "cpu v=1").status == 204
        reply = create_trigger(server, "db", "t", "rt_recorder.py", "all_tables")
        assert reply.status == 400
        assert reply.json()["error"] == "Node not configured with plugin directory"


def test_database_delete_stops_its_triggers(srv):
    assert create_trigger(srv, "db", "r", "rt_request.py", "request:gone").status == 200
    assert srv.request("GET", "/api/v3/engine/gone").status == 200
    assert srv.request("DELETE", "/api/v3/configure/database?db=db").status == 200
    wait_for(lambda: srv.request("GET", "/api/v3/engine/gone").status == 404, what="trigger stop")
    assert srv.services.engine.request_trigger("gone") is None
