"""Options shared by the client commands (-H, --token, -d, --tls-*) and how they resolve.

Precedence for every value: the flag, then `LAKEFLUX_<NAME>`, then `INFLUXDB3_<NAME>`, then the default
(`lakeflux.config.env` owns the env lookup). Flags default to None so "not given" is distinguishable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lakeflux.config import env

from .client import Client, is_loopback
from .output import CliFailure

DEFAULT_HOST = "http://127.0.0.1:8181"
DEFAULT_DATA_DIR = "data"
TOKEN_FILE_NAME = "admin-token"

HostOpt = Annotated[
    str | None,
    typer.Option("-H", "--host", help=f"Server URL [env: LAKEFLUX_HOST_URL, INFLUXDB3_HOST_URL; default {DEFAULT_HOST}]"),
]
TokenOpt = Annotated[str | None, typer.Option("--token", hidden=True, help="Auth token [env: LAKEFLUX_AUTH_TOKEN]")]
DatabaseOpt = Annotated[
    str | None,
    typer.Option("-d", "--database", help="Database [env: LAKEFLUX_DATABASE_NAME, INFLUXDB3_DATABASE_NAME]"),
]
TlsCaOpt = Annotated[str | None, typer.Option("--tls-ca", help="CA certificate bundle for https hosts")]
TlsNoVerifyOpt = Annotated[
    bool, typer.Option("--tls-no-verify", help="Do not verify the server's TLS certificate (testing only)")
]

_TRUE = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """A boolean env var (`1`, `true`, `yes`, `on`, any case) under the LAKEFLUX_/INFLUXDB3_ prefixes."""
    return (env(name) or "").strip().lower() in _TRUE


def resolve_host(flag: str | None) -> str:
    """The server URL: flag, env HOST_URL, default; `host:port` without a scheme gets `http://`."""
    host = flag or env("HOST_URL", DEFAULT_HOST) or DEFAULT_HOST
    return host if "://" in host else f"http://{host}"


def token_file_path() -> Path:
    """Where the local server keeps its admin token: `<data-dir>/admin-token` (data-dir from DB_DIR)."""
    return Path(env("DB_DIR", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR) / TOKEN_FILE_NAME


def read_token_file(path: Path) -> str | None:
    """The token saved by a local `serve`, or None when the file is missing or unreadable.

    The file holds the bare token; a JSON object with a `token` key is accepted too.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if text.startswith("{"):
        try:
            value = json.loads(text).get("token")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and value else None
    return text or None


def resolve_token(flag: str | None, host: str) -> str | None:
    """The auth token: flag, env AUTH_TOKEN, then (only for a loopback host) the local token file.

    The file is never sent to a remote host: it belongs to the server on this machine.
    """
    token = flag or env("AUTH_TOKEN")
    if token:
        return token
    if is_loopback(host):
        return read_token_file(token_file_path())
    return None


def resolve_database(flag: str | None) -> str:
    """The database: flag, then env DATABASE_NAME; missing → a usage error naming both."""
    database = flag or env("DATABASE_NAME")
    if not database:
        raise CliFailure("a database is required: pass -d/--database or set LAKEFLUX_DATABASE_NAME", code=2)
    return database


def connect(host: str | None, token: str | None, tls_ca: str | None, tls_no_verify: bool) -> Client:
    """Build the client from the shared flags after resolving each through env and defaults."""
    url = resolve_host(host)
    return Client(
        url,
        resolve_token(token, url),
        tls_ca=tls_ca or env("TLS_CA"),
        tls_no_verify=tls_no_verify or env_flag("TLS_NO_VERIFY"),
    )
