"""`lakeflux show ...`: list databases, tables, triggers, plugins, tokens, nodes, system tables and plugin logs.

Everything but `show databases` is SQL over `information_schema` and the `system` tables (CONTRACT §3),
sent through /api/v3/query_sql, so the output formats are the query formats.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from .client import Client, ParamValue
from .options import DatabaseOpt, HostOpt, TlsCaOpt, TlsNoVerifyOpt, TokenOpt, connect, resolve_database
from .output import info
from .query import check_format, print_result, run_sql

INTERNAL_DB = "_internal"

show_app = typer.Typer(help="List databases, tables, triggers, plugins, tokens, system tables, logs",
                       no_args_is_help=True)
system_app = typer.Typer(help="Inspect a database's system tables", no_args_is_help=True)
show_app.add_typer(system_app, name="system")

FormatOpt = Annotated[str, typer.Option("--format", help="pretty | json | jsonl | csv | parquet")]


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes (embedded quotes doubled), so any table name is safe to splice."""
    return '"' + name.replace('"', '""') + '"'


def _show_sql(client: Client, database: str, sql: str, fmt: str, params: dict[str, Any] | None = None) -> None:
    print_result(run_sql(client, database, sql, check_format(fmt), params), fmt, None)


@show_app.command("databases")
def show_databases(
    fmt: FormatOpt = "pretty",
    show_deleted: Annotated[bool, typer.Option("--show-deleted", help="Include soft-deleted databases")] = False,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """List databases."""
    params: dict[str, ParamValue] = {"format": check_format(fmt), "show_deleted": show_deleted}
    response = connect(host, token, tls_ca, tls_no_verify).request("GET", "/api/v3/configure/database", params=params)
    print_result(response.body, fmt, None)


@show_app.command("tables")
def show_tables(
    database: DatabaseOpt = None,
    fmt: FormatOpt = "pretty",
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """List a database's tables."""
    sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox' "
           "ORDER BY table_name")
    _show_sql(connect(host, token, tls_ca, tls_no_verify), resolve_database(database), sql, fmt)


@show_app.command("triggers")
def show_triggers(
    database: DatabaseOpt = None,
    fmt: FormatOpt = "pretty",
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """List a database's triggers."""
    # A database's system tables hold only its own triggers (`_internal`'s hold every database's).
    sql = ("SELECT trigger_name, plugin_filename, trigger_specification, disabled, error_behavior, run_async "
           "FROM system.processing_engine_triggers ORDER BY trigger_name")
    _show_sql(connect(host, token, tls_ca, tls_no_verify), resolve_database(database), sql, fmt)


@show_app.command("files")
def show_files(
    database: DatabaseOpt = None,
    table: Annotated[str | None, typer.Option("-t", "--table", help="Only this table's files")] = None,
    fmt: FormatOpt = "pretty",
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """List the live Parquet files of a database's tables with the Delta version of their table that lists
    exactly them (system.parquet_files), for engines that take a list of files."""
    where = " WHERE table_name = $table" if table is not None else ""
    sql = ("SELECT table_name, delta_version, path, row_count, size_bytes, min_time, max_time "
           f"FROM system.parquet_files{where} ORDER BY table_name, path")
    params = {"table": table} if table is not None else None
    _show_sql(connect(host, token, tls_ca, tls_no_verify), resolve_database(database), sql, fmt, params)


@show_app.command("plugins")
def show_plugins(
    database: DatabaseOpt = None,
    fmt: FormatOpt = "pretty",
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """List plugin files on the server (system.plugin_files)."""
    sql = "SELECT * FROM system.plugin_files ORDER BY plugin_name, file_name"
    _show_sql(connect(host, token, tls_ca, tls_no_verify), database or INTERNAL_DB, sql, fmt)


def _internal_table_command(sql: str, doc: str) -> Callable[..., None]:
    """A `show` command printing the result of `sql` on `_internal` (cluster-wide tables: tokens, nodes)."""

    def command(
        fmt: FormatOpt = "pretty",
        host: HostOpt = None,
        token: TokenOpt = None,
        tls_ca: TlsCaOpt = None,
        tls_no_verify: TlsNoVerifyOpt = False,
    ) -> None:
        _show_sql(connect(host, token, tls_ca, tls_no_verify), INTERNAL_DB, sql, fmt)

    command.__doc__ = doc
    return command


show_tokens = show_app.command("tokens")(_internal_table_command(
    "SELECT * FROM system.tokens", "List tokens (system.tokens of `_internal`)."))
show_nodes = show_app.command("nodes")(_internal_table_command(
    "SELECT * FROM system.nodes ORDER BY node_id",
    "List the nodes of the server's cluster: modes, address, state, heartbeat (system.nodes of `_internal`)."))


# --- show system ------------------------------------------------------------------------------------


@system_app.callback()
def system_options(
    ctx: typer.Context,
    database: DatabaseOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Options for every `show system` subcommand."""
    ctx.obj = (connect(host, token, tls_ca, tls_no_verify), resolve_database(database))


def system_table_names(client: Client, database: str) -> list[str]:
    """Names of the database's system tables, from information_schema."""
    sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'system' "
           "ORDER BY table_name")
    rows = json.loads(run_sql(client, database, sql, "json") or b"[]")
    return [row["table_name"] for row in rows]


@system_app.command("table-list")
def system_table_list(ctx: typer.Context, fmt: FormatOpt = "pretty") -> None:
    """List the system tables."""
    client, database = ctx.obj
    sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = 'system' "
           "ORDER BY table_name")
    _show_sql(client, database, sql, fmt)


def system_table_sql(table: str, limit: int, order_by: str | None, select: str | None) -> str:
    """`SELECT <select|*> FROM system."<table>" [ORDER BY <order_by>] LIMIT <limit>`."""
    sql = f"SELECT {select or '*'} FROM system.{quote_ident(table)}"
    if order_by:
        sql += f" ORDER BY {order_by}"
    return sql + f" LIMIT {limit}"


@system_app.command("table")
def system_table(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="System table name, e.g. queries")],
    limit: Annotated[int, typer.Option("-l", "--limit", min=1, help="Rows to show")] = 100,
    order_by: Annotated[str | None, typer.Option("-o", "--order-by", help="ORDER BY expression")] = None,
    select: Annotated[str | None, typer.Option("-s", "--select", help="Columns to show: a,b,c")] = None,
    fmt: FormatOpt = "pretty",
) -> None:
    """Show rows of one system table."""
    client, database = ctx.obj
    _show_sql(client, database, system_table_sql(table, limit, order_by, select), fmt)


@system_app.command("summary")
def system_summary(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-l", "--limit", min=1, help="Rows per table")] = 10,
    fmt: FormatOpt = "pretty",
) -> None:
    """Show the first rows of every system table."""
    client, database = ctx.obj
    for table in system_table_names(client, database):
        info(f"{table} summary:")
        _show_sql(client, database, system_table_sql(table, limit, None, None), fmt)


# --- show logs --------------------------------------------------------------------------------------

LogRow = dict[str, Any]


def logs_sql(trigger: bool, since: bool, limit: int | None) -> str:
    """SQL for the newest plugin log rows of a database (optionally one trigger, optionally from a time).

    A database's `system.processing_engine_logs` holds only its own rows, so there is no database filter.
    """
    where = []
    if trigger:
        where.append("trigger_name = $trigger")
    if since:
        where.append("event_time >= $since")
    sql = "SELECT event_time, trigger_name, log_level, log_text FROM system.processing_engine_logs"
    if where:
        sql += f" WHERE {' AND '.join(where)}"
    sql += " ORDER BY event_time DESC"
    return sql + (f" LIMIT {limit}" if limit is not None else "")


def fetch_logs(client: Client, database: str, trigger: str | None, since: str | None, limit: int | None) -> list[LogRow]:
    """Log rows in time order (oldest first)."""
    params: dict[str, Any] = {}
    if trigger is not None:
        params["trigger"] = trigger
    if since is not None:
        params["since"] = since
    body = run_sql(client, database, logs_sql(trigger is not None, since is not None, limit), "jsonl", params)
    rows = [json.loads(line) for line in body.splitlines() if line.strip()]
    return list(reversed(rows))


def format_log(row: LogRow) -> str:
    return f"{row.get('event_time', '')} {row.get('log_level', '')} {row.get('trigger_name', '')}: {row.get('log_text', '')}"


def follow_logs(
    fetch: Callable[[str | None], list[LogRow]],
    emit: Callable[[str], None],
    *,
    sleep: Callable[[float], None],
    interval: float,
    rounds: int | None = None,
) -> None:
    """Print rows as they appear: poll `fetch(since)` every `interval`; `rounds` bounds it (None = forever).

    Polling uses `event_time >= last seen` and drops rows already printed at that exact time, so rows
    sharing a timestamp are neither lost nor repeated.
    """
    since: str | None = None
    seen_at_since: set[str] = set()
    done = 0
    while rounds is None or done < rounds:
        if done:
            sleep(interval)
        for row in fetch(since):
            key = json.dumps(row, sort_keys=True)
            if row.get("event_time") == since and key in seen_at_since:
                continue
            if row.get("event_time") != since:
                since, seen_at_since = row.get("event_time"), set()
            seen_at_since.add(key)
            emit(format_log(row))
        done += 1


@show_app.command("logs")
def show_logs(
    database: DatabaseOpt = None,
    trigger: Annotated[str | None, typer.Option("--trigger", help="Only this trigger's rows")] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many recent rows to show first")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new rows")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between polls")] = 1.0,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Show the tail of the processing-engine log (system.processing_engine_logs)."""
    db = resolve_database(database)
    client = connect(host, token, tls_ca, tls_no_verify)

    def fetch(since: str | None) -> list[LogRow]:
        return fetch_logs(client, db, trigger, since, lines if since is None else None)

    if not follow:
        for row in fetch(None):
            info(format_log(row))
        return
    try:
        follow_logs(fetch, info, sleep=time.sleep, interval=interval)
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends
