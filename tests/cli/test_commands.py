"""Each configuration command sends exactly the contract request and prints a readable result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_fakes import FakeServer, Reply
from typer.testing import CliRunner

from lakeflux.cli.main import app

TRIGGER = "/api/v3/configure/processing_engine_trigger"


def run(runner: CliRunner, server: FakeServer, *args: str, input: str | None = None):  # noqa: A002
    return runner.invoke(app, [*args, "-H", server.url], input=input)


def test_create_database_posts_name_and_retention(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/configure/database", Reply())
    result = run(runner, server, "create", "database", "sensors", "--retention-period", "30d")
    assert result.exit_code == 0, result.output
    assert server.last.method == "POST"
    assert server.last.json() == {"db": "sensors", "retention_period": "30d"}
    assert server.last.headers["content-type"] == "application/json"
    assert 'Database "sensors" created successfully' in result.stdout


def test_conflict_error_is_printed_from_json_body(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/configure/database", Reply.json({"error": "attempted to create a database that already exists"}, 409))
    result = run(runner, server, "create", "database", "sensors")
    assert result.exit_code == 1
    assert "Error: attempted to create a database that already exists (HTTP 409)" in result.stderr
    assert "Traceback" not in result.output


def test_create_table_sends_tags_and_typed_fields(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/configure/table", Reply())
    result = run(runner, server, "create", "table", "cpu", "-d", "db1", "--tags", "host,region",
                 "-f", "usage:float64,count:int64,ok:bool,name:utf8")
    assert result.exit_code == 0, result.output
    assert server.last.json() == {
        "db": "db1",
        "table": "cpu",
        "tags": ["host", "region"],
        "fields": [
            {"name": "usage", "type": "float64"},
            {"name": "count", "type": "int64"},
            {"name": "ok", "type": "bool"},
            {"name": "name", "type": "utf8"},
        ],
    }


def test_create_table_rejects_unknown_field_type_without_request(runner: CliRunner, server: FakeServer) -> None:
    result = run(runner, server, "create", "table", "cpu", "-d", "db1", "-f", "usage:decimal")
    assert result.exit_code == 2
    assert "invalid field 'usage:decimal'" in result.stderr
    assert server.requests == []


def test_create_trigger_body_has_spec_arguments_and_settings(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", TRIGGER, Reply())
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "every:1h 30m",
                 "--plugin-filename", "p.py", "--trigger-arguments", "a=1,url=http://x?y=z",
                 "--run-asynchronous", "--error-behavior", "retry", "--disabled")
    assert result.exit_code == 0, result.output
    assert server.last.json() == {
        "db": "db1",
        "plugin_filename": "p.py",
        "trigger_name": "t1",
        "trigger_specification": "every:1h 30m",
        "trigger_arguments": {"a": "1", "url": "http://x?y=z"},
        "trigger_settings": {"run_async": True, "error_behavior": "retry"},
        "disabled": True,
    }
    assert 'Trigger "t1" created successfully' in result.stdout


def test_create_trigger_defaults_omit_arguments(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", TRIGGER, Reply())
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "all_tables",
                 "--path", "p.py")
    assert result.exit_code == 0, result.output
    body = server.last.json()
    assert "trigger_arguments" not in body
    assert body["trigger_settings"] == {"run_async": False, "error_behavior": "log"}
    assert body["disabled"] is False


def test_create_trigger_bad_spec_is_refused_client_side(runner: CliRunner, server: FakeServer) -> None:
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "tables:cpu",
                 "--path", "p.py")
    assert result.exit_code == 2
    assert "failed to parse trigger from tables:cpu" in result.stderr
    assert server.requests == []


def test_create_trigger_upload_posts_directory_files_first(
    runner: CliRunner, server: FakeServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "myplug"
    (plugin / "sub").mkdir(parents=True)
    (plugin / "__pycache__").mkdir()
    (plugin / "__init__.py").write_text("from .sub.x import *\n")
    (plugin / "sub" / "x.py").write_text("def process_writes(a, b, c): pass\n")
    (plugin / "__pycache__" / "junk.py").write_text("ignored")
    (plugin / "notes.txt").write_text("ignored")
    server.on("POST", "/api/v3/plugins/files", Reply())
    server.on("POST", TRIGGER, Reply())
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "table:cpu",
                 "--path", str(plugin), "--upload")
    assert result.exit_code == 0, result.output
    uploads = [r.json() for r in server.requests if r.path == "/api/v3/plugins/files"]
    assert uploads == [
        {"plugin_name": "myplug/__init__.py", "content": "from .sub.x import *\n"},
        {"plugin_name": "myplug/sub/x.py", "content": "def process_writes(a, b, c): pass\n"},
    ]
    assert server.last.path == TRIGGER
    assert server.last.json()["plugin_filename"] == "myplug"


def test_create_admin_token_text_and_json(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/configure/token/admin", Reply.json({"token": "apiv3_abc", "name": "_admin"}, 201))
    server.on("POST", "/api/v3/configure/token/admin/regenerate", Reply.json({"token": "apiv3_new"}, 201))
    text = run(runner, server, "create", "token", "--admin")
    assert text.exit_code == 0, text.output
    assert "Token: apiv3_abc" in text.stdout
    as_json = run(runner, server, "create", "token", "--admin", "--regenerate", "--format", "json")
    assert json.loads(as_json.stdout) == {"token": "apiv3_new"}
    assert server.last.path == "/api/v3/configure/token/admin/regenerate"


def test_create_token_needs_admin(runner: CliRunner, server: FakeServer) -> None:
    result = run(runner, server, "create", "token")
    assert result.exit_code == 2
    assert "--admin" in result.stderr


def test_delete_database_asks_then_sends_hard_delete(runner: CliRunner, server: FakeServer) -> None:
    server.on("DELETE", "/api/v3/configure/database", Reply())
    cancelled = run(runner, server, "delete", "database", "db1", input="no\n")
    assert cancelled.exit_code == 1
    assert server.requests == []
    confirmed = run(runner, server, "delete", "database", "db1", "--hard-delete", "now", input="yes\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert (server.last.method, server.last.params) == ("DELETE", {"db": "db1", "hard_delete_at": "now"})


def test_delete_table_with_yes_and_rfc3339(runner: CliRunner, server: FakeServer) -> None:
    server.on("DELETE", "/api/v3/configure/table", Reply())
    result = run(runner, server, "delete", "table", "cpu", "-d", "db1", "-y",
                 "--hard-delete", "2030-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert server.last.params == {"db": "db1", "table": "cpu", "hard_delete_at": "2030-01-01T00:00:00Z"}


def test_delete_table_bad_hard_delete(runner: CliRunner, server: FakeServer) -> None:
    result = run(runner, server, "delete", "table", "cpu", "-d", "db1", "-y", "--hard-delete", "tomorrow")
    assert result.exit_code == 2
    assert "invalid --hard-delete 'tomorrow'" in result.stderr


def test_delete_trigger_force_and_conflict_message(runner: CliRunner, server: FakeServer) -> None:
    message = "Cannot delete running plugin t1. Disable it first or use --force."
    server.on("DELETE", TRIGGER, lambda r: Reply() if r.params.get("force") == "true" else Reply.json({"error": message}, 409))
    refused = run(runner, server, "delete", "trigger", "t1", "-d", "db1")
    assert refused.exit_code == 1
    assert message in refused.stderr
    forced = run(runner, server, "delete", "trigger", "t1", "-d", "db1", "--force")
    assert forced.exit_code == 0
    assert server.last.params == {"db": "db1", "trigger_name": "t1", "force": "true"}


def test_delete_token(runner: CliRunner, server: FakeServer) -> None:
    server.on("DELETE", "/api/v3/configure/token", Reply())
    result = run(runner, server, "delete", "token", "-y")
    assert result.exit_code == 0, result.output
    assert server.last.params == {"token_name": "_admin"}


def test_enable_and_disable_trigger(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", f"{TRIGGER}/enable", Reply())
    server.on("POST", f"{TRIGGER}/disable", Reply())
    assert run(runner, server, "enable", "trigger", "t1", "-d", "db1").exit_code == 0
    assert (server.last.path, server.last.params) == (f"{TRIGGER}/enable", {"db": "db1", "trigger_name": "t1"})
    result = run(runner, server, "disable", "trigger", "t1", "-d", "db1")
    assert server.last.path == f"{TRIGGER}/disable"
    assert 'Trigger "t1" disabled successfully' in result.stdout


def test_update_database_retention(runner: CliRunner, server: FakeServer) -> None:
    server.on("PUT", "/api/v3/configure/database", Reply())
    result = run(runner, server, "update", "database", "-d", "db1", "-r", "none")
    assert result.exit_code == 0, result.output
    assert server.last.json() == {"db": "db1", "retention_period": "none"}


def test_update_trigger_code_file_then_settings(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    code = tmp_path / "new.py"
    code.write_text("def process_writes(a, b, c): return None\n")
    server.on("PUT", "/api/v3/plugins/files", Reply())
    server.on("PUT", TRIGGER, Reply())
    result = run(runner, server, "update", "trigger", "-d", "db1", "-t", "t1", "-p", str(code),
                 "--trigger-spec", "cron:0 * * * * *", "--trigger-arguments", "k=v",
                 "--no-run-asynchronous")
    assert result.exit_code == 0, result.output
    first, second = server.requests
    assert (first.method, first.path) == ("PUT", "/api/v3/plugins/files")
    assert first.json() == {"plugin_name": "t1", "content": "def process_writes(a, b, c): return None\n"}
    assert (second.method, second.path) == ("PUT", TRIGGER)
    assert second.json() == {
        "db": "db1",
        "trigger_name": "t1",
        "trigger_specification": "cron:0 * * * * *",
        "trigger_arguments": {"k": "v"},
        "trigger_settings": {"run_async": False},
    }


def test_update_trigger_directory_uses_plugins_directory(
    runner: CliRunner, server: FakeServer, tmp_path: Path
) -> None:
    (tmp_path / "__init__.py").write_text("X = 1\n")
    (tmp_path / "helper.py").write_text("Y = 2\n")
    server.on("PUT", "/api/v3/plugins/directory", Reply())
    result = run(runner, server, "update", "trigger", "-d", "db1", "-t", "t1", "-p", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert [r.path for r in server.requests] == ["/api/v3/plugins/directory"]
    assert server.last.json() == {
        "plugin_name": "t1",
        "files": [{"relative_path": "__init__.py", "content": "X = 1\n"},
                  {"relative_path": "helper.py", "content": "Y = 2\n"}],
    }


def test_update_trigger_needs_something(runner: CliRunner, server: FakeServer) -> None:
    result = run(runner, server, "update", "trigger", "-d", "db1", "-t", "t1")
    assert result.exit_code == 2
    assert "nothing to update" in result.stderr


def test_install_packages_and_requirements(runner: CliRunner, server: FakeServer) -> None:
    base = "/api/v3/configure/plugin_environment"
    server.on("POST", f"{base}/install_packages", Reply())
    server.on("POST", f"{base}/install_requirements", Reply())
    result = run(runner, server, "install", "package", "pandas", "requests==2.32.0", "-r", "/srv/req.txt")
    assert result.exit_code == 0, result.output
    assert [(r.path, r.json()) for r in server.requests] == [
        (f"{base}/install_packages", {"packages": ["pandas", "requests==2.32.0"]}),
        (f"{base}/install_requirements", {"requirements_location": "/srv/req.txt"}),
    ]


def test_install_failure_shows_pip_output(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/configure/plugin_environment/install_packages",
              Reply.json({"error": "pip failed: ERROR: No matching distribution found for nope"}, 500))
    result = run(runner, server, "install", "package", "nope")
    assert result.exit_code == 1
    assert "No matching distribution found for nope" in result.stderr


def test_test_wal_plugin_posts_lp_and_prints_json(runner: CliRunner, server: FakeServer) -> None:
    reply = {"log_lines": ["INFO: hi"], "database_writes": {"db1": ["out v=1i"]}, "errors": []}
    server.on("POST", "/api/v3/plugin_test/wal", Reply.json(reply))
    result = run(runner, server, "test", "wal_plugin", "p.py", "-d", "db1", "--lp", "cpu v=1",
                 "--input-arguments", "x=1,y=a=b", "--cache-name", "c1")
    assert result.exit_code == 0, result.output
    assert server.last.json() == {"filename": "p.py", "database": "db1", "input_lp": "cpu v=1",
                                  "input_arguments": {"x": "1", "y": "a=b"}, "cache_name": "c1"}
    assert json.loads(result.stdout) == reply


def test_test_schedule_plugin_default_schedule(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/plugin_test/schedule",
              Reply.json({"log_lines": [], "database_writes": {}, "errors": [], "trigger_time": "2030-01-01T00:00:00Z"}))
    result = run(runner, server, "test", "schedule_plugin", "s.py", "-d", "db1")
    assert result.exit_code == 0, result.output
    assert server.last.json() == {"filename": "s.py", "database": "db1", "schedule": "* * * * * *"}
    help_text = runner.invoke(app, ["test", "schedule_plugin", "--help"]).stdout
    assert "* * * * * *" in help_text


def test_create_trigger_upload_single_file(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    code = tmp_path / "alerts.py"
    code.write_text("def process_scheduled_call(a, b, c): pass\n")
    server.on("POST", "/api/v3/plugins/files", Reply())
    server.on("POST", TRIGGER, Reply())
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "every:10s",
                 "-p", str(code), "--upload")
    assert result.exit_code == 0, result.output
    upload, create = server.requests
    assert upload.json() == {"plugin_name": "alerts.py", "content": "def process_scheduled_call(a, b, c): pass\n"}
    assert create.json()["plugin_filename"] == "alerts.py"


def test_upload_of_missing_path_fails_before_any_request(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    result = run(runner, server, "create", "trigger", "t1", "-d", "db1", "--trigger-spec", "all_tables",
                 "-p", str(tmp_path / "absent.py"), "--upload")
    assert result.exit_code == 1
    assert "plugin path not found" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize("command", [["create", "database"], ["write"], ["query"], ["show", "databases"],
                                     ["show", "logs"], ["delete", "token"]])
def test_token_flag_and_its_env_var_are_in_help(runner: CliRunner, command: list[str]) -> None:
    help_text = " ".join(runner.invoke(app, [*command, "--help"], terminal_width=200).stdout.split())
    assert "--host" in help_text
    assert "--token" in help_text and "LAKEFLUX_AUTH_TOKEN" in help_text
