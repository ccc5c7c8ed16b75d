"""Options shared by the client commands (-H, --token, -d, --tls-*) and how they resolve.

Precedence for every value: the flag, then `LAKEFLUX_<NAME>`, then `INFLUXDB3_<NAME>`, then the default
(`lakeflux.config.env` owns the env lookup). Flags default to None so "not given" is distinguishable.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from lakeflux.config import env
from lakeflux.localstate import TOKEN_FILE_NAME, read_server_note, read_token_file

from .client import Client, Credentials, TokenChoice, is_loopback
from .output import CliFailure

DEFAULT_HOST = "http://127.0.0.1:8181"
DEFAULT_DATA_DIR = "data"

HostOpt = Annotated[
    str | None,
    typer.Option("-H", "--host", help=f"Server URL [env: LAKEFLUX_HOST_URL, INFLUXDB3_HOST_URL; default {DEFAULT_HOST}]"),
]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", help="Auth token [env: LAKEFLUX_AUTH_TOKEN, INFLUXDB3_AUTH_TOKEN; default: the token file of the "
                    "local server on that port]")]
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
    """The file store's token file under the data dir the CLI is told about: `<DB_DIR or ./data>/admin-token`."""
    return Path(env("DB_DIR", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR) / TOKEN_FILE_NAME


def _env_token() -> TokenChoice | None:
    for name in ("LAKEFLUX_AUTH_TOKEN", "INFLUXDB3_AUTH_TOKEN"):
        value = os.environ.get(name)
        if value:
            return TokenChoice(value, name)
    return None


def local_token_files(host: str) -> list[Path]:
    """Where a local server on `host`'s port keeps its token: the file its note names (every server with
    auth on leaves one, see lakeflux.localstate), then `<DB_DIR or ./data>/admin-token`."""
    port = urllib.parse.urlsplit(host).port or (443 if host.startswith("https:") else 80)
    note = read_server_note(port)
    paths = [note.token_file] if note is not None else []
    return list(dict.fromkeys([*paths, token_file_path().absolute()]))


def resolve_credentials(flag: str | None, host: str) -> Credentials:
    """The tokens to try, in order: the flag; else env AUTH_TOKEN; else (only for a loopback host) the local
    server's token files. Token files are never sent to a remote host: they belong to servers on this machine."""
    if flag:
        return Credentials([TokenChoice(flag, "--token")])
    from_env = _env_token()
    if from_env is not None:
        return Credentials([TokenChoice(from_env.token, from_env.source)])
    if not is_loopback(host):
        return Credentials([], looked=["--token", "LAKEFLUX_AUTH_TOKEN"])
    choices, looked = [], ["--token", "LAKEFLUX_AUTH_TOKEN"]
    for path in local_token_files(host):
        looked.append(str(path))
        token = read_token_file(path)
        if token is not None and token not in (c.token for c in choices):
            choices.append(TokenChoice(token, str(path)))
    return Credentials(choices, looked=looked)


def resolve_token(flag: str | None, host: str) -> str | None:
    """The first token `resolve_credentials` would send."""
    choices = resolve_credentials(flag, host).choices
    return choices[0].token if choices else None


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
        credentials=resolve_credentials(token, url),
        tls_ca=tls_ca or env("TLS_CA"),
        tls_no_verify=tls_no_verify or env_flag("TLS_NO_VERIFY"),
    )
