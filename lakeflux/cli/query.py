"""`lakeflux query`: run SQL or InfluxQL and print the server's bytes in the chosen format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import Client
from .options import DatabaseOpt, HostOpt, TlsCaOpt, TlsNoVerifyOpt, TokenOpt, connect, resolve_database
from .output import CliFailure, write_result

FORMATS = ("pretty", "json", "jsonl", "csv", "parquet")


def run_sql(client: Client, database: str, sql: str, fmt: str, params: dict[str, Any] | None = None,
            language: str = "sql") -> bytes:
    """POST /api/v3/query_sql (or query_influxql) and return the body exactly as the server sent it."""
    body: dict[str, Any] = {"db": database, "q": sql, "format": fmt}
    if params:
        body["params"] = params
    path = "/api/v3/query_influxql" if language == "influxql" else "/api/v3/query_sql"
    return client.request("POST", path, json_body=body).body


def check_format(fmt: str) -> str:
    """Reject formats the server does not produce, before any request."""
    if fmt not in FORMATS:
        raise CliFailure(f"invalid --format {fmt!r}: expected one of {', '.join(FORMATS)}", code=2)
    return fmt


def check_parquet_target(fmt: str, output: Path | None) -> None:
    """Parquet is binary: it needs `-o FILE` or a stdout that is not a terminal."""
    if fmt == "parquet" and output is None and sys.stdout.isatty():
        raise CliFailure("parquet output is binary: pass -o/--output FILE or pipe stdout to a file", code=2)


def print_result(body: bytes, fmt: str, output: Path | None) -> None:
    """Write a query result: verbatim to a file; on stdout, text formats end with a newline (JSON arrives
    without one), so the next prompt, `wc -l` and line-based tools see a complete last line."""
    check_parquet_target(fmt, output)
    if output is None and fmt != "parquet" and body and not body.endswith(b"\n"):
        body += b"\n"
    write_result(body, output)


def read_sql(sql: str | None, file: Path | None) -> str:
    """The SQL text from the argument or `-f FILE` (exactly one of them)."""
    if (sql is None) == (file is None):
        raise CliFailure("give the query either as an argument or with -f/--file", code=2)
    if file is None:
        assert sql is not None
        return sql
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliFailure(f"cannot read {file}: {exc.strerror}") from None


def query_command(
    sql: Annotated[str | None, typer.Argument(metavar="QUERY", help="SQL to run (or -f FILE)")] = None,
    database: DatabaseOpt = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", help="Read the query from this file")] = None,
    language: Annotated[str, typer.Option("-l", "--language", help="Query language: sql or influxql")] = "sql",
    fmt: Annotated[str, typer.Option("--format", help="pretty | json | jsonl | csv | parquet")] = "pretty",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the result to this file")] = None,
    host: HostOpt = None,
    query_host: Annotated[str | None, typer.Option("--query-host", help="Server URL for queries (overrides -H)")] = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Run a SQL (or InfluxQL) query against a database."""
    language = language.lower()
    if language not in ("sql", "influxql"):
        raise CliFailure(f"invalid --language {language!r}: expected sql or influxql", code=2)
    check_format(fmt)
    text = read_sql(sql, file)
    db = resolve_database(database)
    check_parquet_target(fmt, output)  # before the request, so a long query is not run for nothing
    client = connect(query_host or host, token, tls_ca, tls_no_verify)
    print_result(run_sql(client, db, text, fmt, language=language), fmt, output)
