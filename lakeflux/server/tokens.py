"""Admin token routes and the first-start token (CONTRACT §4.1, §6.3).

Only admin tokens exist. The plain token is returned exactly once (in the 201 body, or printed by
the first `serve`); the catalog stores its digest.
"""

from __future__ import annotations

import hmac
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
from ..errors import Conflict, Invalid, NotAllowed, NotFound
from ..localstate import owns_stale_token_file, read_token_file, token_file
from .auth import ADMIN_TOKEN_NAME, ADMIN_TOKEN_ROUTE, hash_token, new_token
from .errors import json_response
from .services import SERVICES, Services


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


def may_replace_token_file(config: Config, path: Path, previous_digest: str | None) -> bool:
    """Whether this server may write its new admin token to `path`.

    Only a file this server wrote is ever replaced: one that is missing, or holds the token the catalog
    had until now (a regenerate). Another server's file (another store, another node, a catalog that was
    wiped) is left alone, so the CLI keeps working against that server.
    """
    if not path.exists():
        return True
    if previous_digest is None:
        return owns_stale_token_file(config)
    old = read_token_file(path)
    return old is not None and hmac.compare_digest(hash_token(old), previous_digest)


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


def create_admin_token(services: Services, *, replace: bool = False,
                       save_to: Path | None = None) -> tuple[str, TokenDef, Path | None]:
    """Commit a new admin token (Conflict if one exists and not `replace`); blocking.

    Returns the plain token (once), its definition, and the file it was saved to: `save_to`, when given and
    this server may write there (`may_replace_token_file`), so the local CLI keeps working after a
    regenerate; None when nothing was saved.
    """
    previous = services.catalog.state.tokens.get(ADMIN_TOKEN_NAME)
    token = new_token()
    state = services.catalog.commit([_admin_op(token, replace=replace)])
    saved = None
    if save_to is not None and may_replace_token_file(services.config, save_to,
                                                      previous.hash if previous is not None else None):
        save_token_file(save_to, token)
        saved = save_to
    return token, state.tokens[ADMIN_TOKEN_NAME], saved


def ensure_admin_token(services: Services, out: TextIO | None = None) -> str | None:
    """First start with auth on: when no token exists, create the admin token, save it (0600) where this
    server keeps it (`lakeflux.localstate.token_file`) and print it once to `out` (stdout). Returns the new
    token, or None when nothing was created (a token exists, auth is off, or `--manual-admin-token`)."""
    config = services.config
    if config.without_auth or config.manual_admin_token or services.catalog.state.tokens:
        return None
    path = token_file(config)
    try:
        token, _, saved = create_admin_token(services, save_to=path)
    except Conflict:
        return None  # another node of the cluster created the cluster's first token at the same moment
    stream = out if out is not None else sys.stdout
    if saved is not None:
        stream.write(f"Admin token (shown once; saved to {saved} for the local CLI):\n{token}\n")
    else:
        stream.write(f"Admin token (shown once; NOT saved: {path} holds a token this server did not create, "
                     f"so it is left as it is; pass this one with --token or LAKEFLUX_AUTH_TOKEN):\n{token}\n")
    stream.flush()
    return token


async def create_admin(request: web.Request) -> web.StreamResponse:
    """POST /api/v3/configure/token/admin → 201 with the new token; 409 if an admin token exists."""
    svc: Services = request.app[SERVICES]
    token, tok, _ = await svc.run_blocking(lambda: create_admin_token(svc, save_to=token_file(svc.config)))
    return json_response(token_json(tok, token), status=201)


async def regenerate_admin(request: web.Request) -> web.StreamResponse:
    """POST …/admin/regenerate → 201 with a new token; the old one stops working at once."""
    svc: Services = request.app[SERVICES]
    if ADMIN_TOKEN_NAME not in svc.catalog.state.tokens:
        raise NotFound("admin token not found: create one first")
    token, tok, _ = await svc.run_blocking(
        lambda: create_admin_token(svc, replace=True, save_to=token_file(svc.config)))
    return json_response(token_json(tok, token), status=201)


async def delete_token(request: web.Request) -> web.StreamResponse:
    """DELETE /api/v3/configure/token?token_name= → 200; 404 for an unknown name."""
    svc: Services = request.app[SERVICES]
    name = request.query.get("token_name")
    if not name:
        raise Invalid("missing query parameter 'token_name'")
    tokens = svc.catalog.state.tokens
    if name in tokens and tokens[name].admin and not any(t.admin for n, t in tokens.items() if n != name):
        # With no admin token left, anyone reaching the port could create one without credentials.
        raise NotAllowed("cannot delete operator token: it is the last admin token; replace it with "
                         "`lakeflux create token --admin --regenerate` instead")
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
