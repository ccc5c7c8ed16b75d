"""`lakeflux persist`: snapshot now, so engines reading the lake (its Delta tables, or a glob) see every
committed row (docs/open-tables.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..config import env
from .options import DatabaseOpt, HostOpt, TlsCaOpt, TlsNoVerifyOpt, TokenOpt, connect
from .output import CliFailure, info

TableOpt = Annotated[str | None, typer.Option("-t", "--table", help="Table (with -d): report only this table")]


def persist_command(
    database: DatabaseOpt = None,
    table: TableOpt = None,
    host: HostOpt = None,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_no_verify: TlsNoVerifyOpt = False,
) -> None:
    """Persist the buffered rows now: Parquet files, a snapshot manifest and each table's Delta commit.

    A snapshot covers every table; -d and -t name the tables to report (they must exist). Returns once
    the files and commits are durable.
    """
    db = database or env("DATABASE_NAME") or None
    if table is not None and db is None:
        raise CliFailure("-t/--table needs -d/--database", code=2)
    body: dict[str, Any] = {k: v for k, v in (("db", db), ("table", table)) if v is not None}
    reply = connect(host, token, tls_ca, tls_no_verify).request("POST", "/api/v3/persist", json_body=body).json()
    snapshot = reply.get("snapshot")
    info("nothing was buffered: the lake was up to date" if snapshot is None
         else f"persisted: snapshot {snapshot}")
    for t in reply.get("tables", []):
        version = t.get("delta_version")
        info(f'  "{t["db"]}"."{t["table"]}": {t["files"]} files, {t["rows"]} rows, '
             f"Delta version {'-' if version is None else version}")
