"""`lakeflux query` and `lakeflux show ...`: the SQL sent, the bytes printed, the refusals."""

from __future__ import annotations

import json
from pathlib import Path

from cli_fakes import FakeServer, Recorded, Reply
from typer.testing import CliRunner

from lakeflux.cli.main import app
from lakeflux.cli.show import follow_logs, format_log, logs_sql, system_table_sql

QUERY = "/api/v3/query_sql"


def test_query_posts_json_and_prints_bytes_verbatim(runner: CliRunner, server: FakeServer) -> None:
    csv = b"host,v\nh1,1.0\n\"a \"\"q\"\"\",\n"
    server.on("POST", QUERY, Reply(200, csv, "text/csv"))
    result = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "--format", "csv", "SELECT * FROM cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == csv
    assert server.last.json() == {"db": "db1", "q": "SELECT * FROM cpu", "format": "csv"}


def test_query_default_pretty_from_file_with_alias(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    table = b"+----+\n| v  |\n+----+\n| 1  |\n+----+"
    server.on("POST", QUERY, Reply(200, table, "text/plain; charset=utf-8"))
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT 1 AS v")
    result = runner.invoke(app, ["q", "-d", "db1", "-H", server.url, "-f", str(sql)])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == table + b"\n"  # text on stdout ends with a newline
    assert server.last.json()["format"] == "pretty"
    assert server.last.json()["q"] == "SELECT 1 AS v"


def test_query_parquet_to_file(runner: CliRunner, server: FakeServer, tmp_path: Path) -> None:
    server.on("POST", QUERY, Reply(200, b"PAR1\x00\x01PAR1", "application/vnd.apache.parquet"))
    target = tmp_path / "out.parquet"
    result = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "--format", "parquet", "-o", str(target),
                                 "SELECT 1"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == b"PAR1\x00\x01PAR1"
    assert result.stdout == ""


def test_query_influxql_goes_to_query_influxql(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", "/api/v3/query_influxql", Reply(200, b'[{"iox::measurement":"measurements","name":"cpu"}]'))
    result = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "-l", "influxql", "--format", "json",
                                 "SHOW MEASUREMENTS"])
    assert result.exit_code == 0, result.output
    assert result.stdout == '[{"iox::measurement":"measurements","name":"cpu"}]\n'
    assert server.requests[0].json() == {"db": "db1", "q": "SHOW MEASUREMENTS", "format": "json"}
    refused = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "-l", "flux", "from()"])
    assert refused.exit_code == 2 and "expected sql or influxql" in refused.stderr


def test_query_bad_format_and_sql_error(runner: CliRunner, server: FakeServer) -> None:
    bad = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "--format", "xml", "SELECT 1"])
    assert bad.exit_code == 2
    server.on("POST", QUERY, Reply.json({"error": "table 'nope' not found"}, 400))
    failed = runner.invoke(app, ["query", "-d", "db1", "-H", server.url, "SELECT * FROM nope"])
    assert failed.exit_code == 1
    assert "Error: table 'nope' not found (HTTP 400)" in failed.stderr


def test_query_host_overrides_host(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", QUERY, Reply(200, b"[]"))
    result = runner.invoke(app, ["query", "-d", "db1", "-H", "http://127.0.0.1:9", "--query-host", server.url,
                                 "--format", "json", "SELECT 1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "[]\n"


def test_show_databases(runner: CliRunner, server: FakeServer) -> None:
    server.on("GET", "/api/v3/configure/database", Reply(200, b'[{"iox::database":"db1"}]'))
    result = runner.invoke(app, ["show", "databases", "-H", server.url, "--format", "json", "--show-deleted"])
    assert result.exit_code == 0, result.output
    assert server.last.params == {"format": "json", "show_deleted": "true"}
    assert json.loads(result.stdout) == [{"iox::database": "db1"}]


def test_show_tables_triggers_plugins_tokens_sql(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", QUERY, Reply(200, b"ok"))
    for args in (["show", "tables", "-d", "db1"], ["show", "triggers", "-d", "db1"],
                 ["show", "plugins"], ["show", "tokens"]):
        assert runner.invoke(app, [*args, "-H", server.url]).exit_code == 0
    tables, triggers, plugins, tokens = [r.json() for r in server.requests]
    assert "information_schema.tables" in tables["q"] and "'iox'" in tables["q"]
    assert tables["db"] == "db1"
    # The database's own system table holds only its triggers: no filter, no parameters.
    assert "system.processing_engine_triggers" in triggers["q"] and "database_name" not in triggers["q"]
    assert triggers["db"] == "db1" and "params" not in triggers
    assert "system.plugin_files" in plugins["q"] and plugins["db"] == "_internal"
    assert tokens["q"] == "SELECT * FROM system.tokens" and tokens["db"] == "_internal"


def test_show_system_table_and_table_list(runner: CliRunner, server: FakeServer) -> None:
    server.on("POST", QUERY, Reply(200, b"rows"))
    result = runner.invoke(app, ["show", "system", "-d", "db1", "-H", server.url, "table", "queries",
                                 "-l", "5", "-o", "issue_time DESC", "-s", "query_text,success"])
    assert result.exit_code == 0, result.output
    assert server.last.json()["q"] == (
        'SELECT query_text,success FROM system."queries" ORDER BY issue_time DESC LIMIT 5'
    )
    listing = runner.invoke(app, ["show", "system", "-d", "db1", "-H", server.url, "table-list"])
    assert listing.exit_code == 0
    assert "table_schema = 'system'" in server.last.json()["q"]


def test_show_system_summary_queries_each_table(runner: CliRunner, server: FakeServer) -> None:
    def reply(request: Recorded) -> Reply:
        body = request.json()
        if body["format"] == "json":
            return Reply(200, b'[{"table_name":"queries"},{"table_name":"parquet_files"}]')
        return Reply(200, body["q"].encode() + b"\n")

    server.on("POST", QUERY, reply)
    result = runner.invoke(app, ["show", "system", "-d", "db1", "-H", server.url, "summary", "-l", "3"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "queries summary:",
        'SELECT * FROM system."queries" LIMIT 3',
        "parquet_files summary:",
        'SELECT * FROM system."parquet_files" LIMIT 3',
    ]


def test_system_table_sql_quotes_names() -> None:
    assert system_table_sql('we"ird', 1, None, None) == 'SELECT * FROM system."we""ird" LIMIT 1'


def test_show_logs_prints_oldest_first_with_bound_params(runner: CliRunner, server: FakeServer) -> None:
    rows = [  # the server returns newest first (ORDER BY event_time DESC)
        {"event_time": "2030-01-01T00:00:02", "trigger_name": "t1", "log_level": "ERROR", "log_text": "boom"},
        {"event_time": "2030-01-01T00:00:01", "trigger_name": "t1", "log_level": "INFO", "log_text": "start"},
    ]
    server.on("POST", QUERY, Reply(200, b"".join(json.dumps(r).encode() + b"\n" for r in rows), "application/jsonl"))
    result = runner.invoke(app, ["show", "logs", "-d", "db1", "-H", server.url, "--trigger", "t1", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2030-01-01T00:00:01 INFO t1: start",
        "2030-01-01T00:00:02 ERROR t1: boom",
    ]
    body = server.last.json()
    assert body["format"] == "jsonl"
    assert body["params"] == {"trigger": "t1"} and "database_name" not in body["q"]
    assert body["q"] == logs_sql(trigger=True, since=False, limit=2)
    assert "LIMIT 2" in body["q"] and "trigger_name = $trigger" in body["q"]


def test_follow_logs_prints_new_rows_once() -> None:
    def row(t: str, text: str) -> dict[str, str]:
        return {"event_time": t, "trigger_name": "t", "log_level": "INFO", "log_text": text}

    polls = [
        [row("T1", "a"), row("T2", "b")],
        [row("T2", "b"), row("T2", "c"), row("T3", "d")],  # same-time row c arrived after b was printed
        [row("T3", "d")],
    ]
    asked: list[str | None] = []
    printed: list[str] = []
    slept: list[float] = []

    def fetch(since: str | None) -> list[dict[str, str]]:
        asked.append(since)
        return polls[len(asked) - 1]

    follow_logs(fetch, printed.append, sleep=slept.append, interval=0.5, rounds=3)
    assert asked == [None, "T2", "T3"]
    assert printed == [format_log(r) for r in (row("T1", "a"), row("T2", "b"), row("T2", "c"), row("T3", "d"))]
    assert slept == [0.5, 0.5]
