"""Admin token routes and the first-start token (CONTRACT §4.1, §6.3).

Only admin tokens exist. The plain token is returned exactly once (in the 201 body, or printed by
the first `serve`); the catalog stores its digest.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
from aiohttp import web

from ..catalog import CatalogState, TokenDef
from ..config import Config
from ..errors import Invalid, NotFound
from .auth import ADMIN_TOKEN_NAME, ADMIN_TOKEN_ROUTE, hash_token, new_token
from .errors import json_response
from .services import SERVICES, Services

# The CLI reads the same name from its data dir (lakeflux/cli/options.py TOKEN_FILE_NAME).
TOKEN_FILE_NAME = "admin-token"


def token_file(config: Config) -> Path:
    """Where `serve` keeps the admin token for the local CLI: `<data-dir>/admin-token`."""
    return config.data_dir / TOKEN_FILE_NAME


def save_token_file(path: Path, token: str) -> None:
    """Write the bare token, readable by the owner only (0600 from creation, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # the umask cannot widen it, but an old file's mode could linger
    os.replace(tmp, path)


def _admin_op(token: str, *, replace: bool) -> dict[str, Any]:
    tok = TokenDef(name=ADMIN_TOKEN_NAME, hash=hash_token(token), admin=True, created_ns=time.time_ns())
    return {"op": "create_token", "token": vars(tok), "replace": replace}


def token_json(tok: TokenDef, token: str | None = None) -> dict[str, Any]:
    """A token as the API shows it; the plain token only right after creation."""
    body: dict[str, Any] = {"id": 0, "name": tok.name}
    if token is not None:
        body["token"] = token
    body["created_at"] = _rfc3339(tok.created_ns)
    body["expiry"] = _rfc3339(tok.expiry_ns) if tok.expiry_ns is not None else None
    return body


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_admin_token(services: Services, *, replace: bool = False) -> tuple[str, TokenDef]:
    """Commit a new admin token (Conflict if one exists and not `replace`); blocking. Returns the plain
    token, once, and its definition; when the local token file exists it is updated too, so the CLI
    on this machine keeps working after a regenerate."""
    token = new_token()
    state = services.catalog.commit([_admin_op(token, replace=replace)])
    path = token_file(services.config)
    if path.exists():
        save_token_file(path, token)
    return token, state.tokens[ADMIN_TOKEN_NAME]


def ensure_admin_token(services: Services, out: TextIO | None = None) -> str | None:
    """First start with auth on: when no token exists, create the admin token, save it (0600) in the data
    dir and print it once to `out` (stdout). Returns the new token, or None when nothing was created."""
    if services.config.without_auth or services.catalog.state.tokens:
        return None
    token = new_token()
    services.catalog.commit([_admin_op(token, replace=False)])
    path = token_file(services.config)
    save_token_file(path, token)
    stream = out if out is not None else sys.stdout
    stream.write(f"Admin token (shown once; saved to {path} for the local CLI):\n{token}\n")
    stream.flush()
    return token


async def create_admin(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/configure/token/admin → 201 with the new token; 409 if an admin token exists."""
    svc: Services = request.app[SERVICES]
    token, tok = await svc.run_blocking(lambda: create_admin_token(svc))
    return json_response(token_json(tok, token), status=201)


async def regenerate_admin(request: web.Request) -> web.StreamResponse:
    """POST …/admin/regenerate → 201 with a new token; the old one stops working at once."""
    svc: Services = request.app[SERVICES]
    if ADMIN_TOKEN_NAME not in svc.catalog.state.tokens:
        raise NotFound("admin token not found: create one first")
    token, tok = await svc.run_blocking(lambda: create_admin_token(svc, replace=True))
    return json_response(token_json(tok, token), status=201)


async def delete_token(request: web.Request) -> web.StreamResponse:
    """DELETE /api/v3/configure/token?token_name= → 200; 404 for an unknown name."""
    svc: Services = request.app[SERVICES]
    name = request.query.get("token_name")
    if not name:
        raise Invalid("missing query parameter 'token_name'")
    await svc.run_blocking(svc.catalog.commit, [{"op": "delete_token", "name": name}])
    return web.Response(status=200)


def tokens_table(state: CatalogState) -> pa.Table:
    """`system.tokens` of `_internal`: names and times, never digests."""
    toks = sorted(state.tokens.values(), key=lambda t: t.name)
    return pa.table({
        "token_id": pa.array(range(len(toks)), pa.uint64()),
        "name": pa.array([t.name for t in toks], pa.string()),
        "created_at": pa.array([t.created_ns for t in toks], pa.timestamp("ns")),
        "expiry": pa.array([t.expiry_ns for t in toks], pa.timestamp("ns")),
        "permissions": pa.array(["*:*:*" if t.admin else "" for t in toks], pa.string()),
    })


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the token routes."""
    router.add_post(ADMIN_TOKEN_ROUTE, create_admin)
    router.add_post(ADMIN_TOKEN_ROUTE + "/regenerate", regenerate_admin)
    router.add_delete("/api/v3/configure/token", delete_token)
