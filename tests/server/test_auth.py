"""Auth on every HTTP route (CONTRACT §4.1): header forms, 401/400/403 bodies, exemptions, token routes."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import stat

import pytest
from aiohttp import web

from lakeflux.catalog import TokenDef
from lakeflux.cli.options import read_token_file
from lakeflux.config import Config
from lakeflux.localstate import token_file
from lakeflux.server.auth import MALFORMED_AUTHORIZATION, hash_token, new_token, token_from_header
from lakeflux.server.services import build_services
from lakeflux.server.tokens import ensure_admin_token
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.server import InProcessServer

NOT_AUTHENTICATED = {"error": "the request was not authenticated"}


@pytest.fixture
def auth_server(fast_config):
    with InProcessServer(fast_config.with_changes(without_auth=False), store=MemoryStore()) as srv:
        yield srv


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, dynamic segments filled in; CORS preflights aside."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "").replace("{tail}", "x").replace("{path}", "x")
        path = path.split("{")[0] + ("x" if "{" in path else "")
        method = "GET" if route.method == "*" else route.method
        if method != "OPTIONS" and path:
            found.add((method, path))
    return sorted(found)


def test_every_route_refuses_missing_and_wrong_tokens(auth_server):
    routes = _routes(auth_server.app)
    assert ("POST", "/api/v3/write_lp") in routes and ("GET", "/metrics") in routes
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            reply = auth_server.request(method, path, b"", headers=headers, auth=False)
            assert reply.status == 401, (method, path, headers, reply.status, reply.body)
            if method == "HEAD":
                continue
            # Core's form on every route, /api/v2/ included: auth is decided before routing.
            assert reply.json() == NOT_AUTHENTICATED, (method, path)


def test_unknown_routes_need_a_token_too(auth_server):
    assert auth_server.request("GET", "/no/such/route", auth=False).status == 401
    assert auth_server.request("GET", "/no/such/route").json() == {"error": "not found"}


@pytest.mark.parametrize("form", ["Bearer {t}", "Token {t}", "bearer {t}", "Basic {basic}"])
def test_each_header_form_is_accepted(auth_server, form):
    token = auth_server.token
    basic = base64.b64encode(f"anyuser:{token}".encode()).decode()
    headers = {"Authorization": form.format(t=token, basic=basic)}
    assert auth_server.request("POST", "/api/v3/write_lp?db=db1", "cpu v=1 1", headers=headers).status == 204
    assert auth_server.request("POST", "/api/v2/write?bucket=db1&org=x", "cpu v=2 2", headers=headers).status == 204
    assert auth_server.request("POST", "/write?db=db1", "cpu v=3 3", headers=headers).status == 204
    query = auth_server.request("GET", "/api/v3/query_sql?db=db1&q=SELECT%20count(*)%20AS%20n%20FROM%20cpu",
                                headers=headers)
    assert query.status == 200
    assert query.json()[0]["n"] >= 3
    assert auth_server.request("GET", "/api/v3/configure/database?format=json", headers=headers).status == 200


def test_v1_password_parameter_on_write_and_query(auth_server):
    t = auth_server.token
    assert auth_server.request("POST", f"/write?db=v1&u=me&p={t}", "m f=1 1", auth=False).status == 204
    assert auth_server.request("GET", f"/query?q=SHOW%20DATABASES&p={t}", auth=False).status == 200
    assert auth_server.request("POST", "/write?db=v1&p=wrong", "m f=1 1", auth=False).status == 401
    # p= is a v1 convention only: v3 routes ignore it.
    assert auth_server.request("POST", f"/api/v3/write_lp?db=v1&p={t}", "m f=1 1", auth=False).status == 401


@pytest.mark.parametrize("header", [
    "Bearer", "Digest abc", "Bearer two words", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
])
def test_malformed_authorization_is_400_with_cores_text(auth_server, header):
    for path in ("/api/v3/configure/database?format=json", "/api/v2/write?bucket=db1"):
        reply = auth_server.request("POST" if "write" in path else "GET", path, b"cpu v=1",
                                    headers={"Authorization": header})
        assert reply.status == 400
        assert reply.json() == {"error": MALFORMED_AUTHORIZATION}


def test_expired_token_is_401_and_non_admin_is_403(auth_server):
    expired, limited = new_token(), new_token()
    catalog = auth_server.services.catalog
    catalog.commit([{"op": "create_token", "token": vars(TokenDef("old", hash_token(expired), expiry_ns=1))}])
    catalog.commit([{"op": "create_token", "token": vars(TokenDef("ro", hash_token(limited), admin=False))}])
    path = "/api/v3/configure/database?format=json"
    assert auth_server.request("GET", path, headers={"Authorization": f"Bearer {expired}"}).status == 401
    forbidden = auth_server.request("GET", path, headers={"Authorization": f"Bearer {limited}"})
    assert forbidden.status == 403
    assert "permission" in forbidden.json()["error"]


def test_disable_authz_opens_only_the_named_routes(fast_config):
    config = fast_config.with_changes(without_auth=False, disable_authz=("health", "ping", "metrics"))
    with InProcessServer(config, store=MemoryStore()) as srv:
        assert srv.request("GET", "/health", auth=False).status == 200
        assert srv.request("GET", "/api/v1/health", auth=False).status == 200
        assert srv.request("GET", "/ping", auth=False).status == 200
        assert srv.request("GET", "/metrics", auth=False).status == 200
        assert srv.request("GET", "/api/v3/configure/database?format=json", auth=False).status == 401


def test_without_auth_needs_no_token(fast_config):
    with InProcessServer(fast_config.with_changes(without_auth=True), store=MemoryStore()) as srv:
        assert srv.token is None
        assert srv.request("POST", "/api/v3/write_lp?db=db1", "cpu v=1 1").status == 204


def test_admin_token_lifecycle(auth_server):
    first = auth_server.token
    # One exists: creating another is refused, unauthenticated (401) or not (409).
    assert auth_server.request("POST", "/api/v3/configure/token/admin", {}, auth=False).status == 401
    assert auth_server.request("POST", "/api/v3/configure/token/admin", {}).status == 409
    regen = auth_server.request("POST", "/api/v3/configure/token/admin/regenerate", {})
    assert regen.status == 201
    second = regen.json()["token"]
    assert second != first and regen.json()["name"] == "_admin"
    assert auth_server.request("GET", "/health").status == 401  # the old token died at once
    auth_server.token = second
    assert auth_server.request("GET", "/health").status == 200
    assert auth_server.request("DELETE", "/api/v3/configure/token?token_name=nope").status == 404
    # The last admin token cannot be deleted: with none left, whoever reached the port first would become admin.
    refused = auth_server.request("DELETE", "/api/v3/configure/token?token_name=_admin")
    assert refused.status == 405 and "cannot delete operator token" in refused.json()["error"]
    assert auth_server.request("POST", "/api/v3/configure/token/admin", {}, auth=False).status == 401
    assert auth_server.request("GET", "/health").status == 200


def test_manual_admin_token_is_cores_bootstrap(fast_config):
    config = fast_config.with_changes(without_auth=False, manual_admin_token=True)
    with InProcessServer(config, store=MemoryStore()) as srv:
        assert srv.token is None
        assert srv.request("GET", "/ping", auth=False).status == 401
        # No token yet: the admin token may be created without credentials, once.
        created = srv.request("POST", "/api/v3/configure/token/admin", {}, auth=False)
        assert created.status == 201
        body = created.json()
        assert body["token"].startswith("apiv3_") and body["expiry"] is None and "created_at" in body
        assert srv.request("POST", "/api/v3/configure/token/admin", {}, auth=False).status == 401
        assert srv.request("GET", "/health", headers={"Authorization": f"Token {body['token']}"}).status == 200


def test_tokens_are_stored_hashed(auth_server):
    token = auth_server.token
    assert token is not None
    store = auth_server.services.store
    for meta in store.list(""):
        assert token.encode() not in store.get(meta.key)
    stored = auth_server.services.catalog.state.tokens["_admin"]
    assert stored.hash == hash_token(token) and token not in repr(stored)


def test_tokens_never_reach_the_logs(auth_server, caplog):
    caplog.set_level(logging.DEBUG)
    token = auth_server.token
    assert token is not None
    auth_server.request("POST", f"/write?db=x&p={token}", "bad line")
    auth_server.request("GET", "/api/v3/query_sql?db=nope&q=SELECT%201")
    auth_server.request("GET", "/health", headers={"Authorization": f"Bearer {token}x"})
    assert token not in caplog.text


def test_first_start_creates_prints_and_saves_the_admin_token(fast_config, tmp_path):
    config = fast_config.with_changes(without_auth=False, data_dir=tmp_path / "first")
    services = build_services(config, MemoryStore())
    out = io.StringIO()
    token = ensure_admin_token(services, out)
    assert token is not None and out.getvalue().count(token) == 1
    path = token_file(config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_token_file(path) == token  # where and how the CLI looks for it
    assert ensure_admin_token(services, io.StringIO()) is None  # printed once, never again
    assert services.catalog.state.tokens["_admin"].hash == hash_token(token)


def test_token_header_parsing():
    assert token_from_header("Bearer abc") == "abc"
    assert token_from_header("  Token abc ") == "abc"
    assert token_from_header("Basic " + base64.b64encode(b"u:p:q").decode()) == "p:q"
    assert token_from_header("Basic " + base64.b64encode(b":tok").decode()) == "tok"


def test_system_tokens_lists_names_never_digests(auth_server):
    rows = auth_server.query("_internal", "SELECT * FROM system.tokens")
    assert [r["name"] for r in rows] == ["_admin"]
    assert auth_server.services.catalog.state.tokens["_admin"].hash not in str(rows)


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe\xfd", b"Bearer apiv3_\xc3\xa9t\xc3\xa9", b"\xff"])
def test_non_ascii_authorization_is_a_400_not_a_500(auth_server, value):
    """Bytes HTTP does not allow in a header value carry no token: Core's malformed-header answer."""
    port = int(auth_server.url.rsplit(":", 1)[1])
    for path in (b"/api/v3/configure/database?format=json", b"/api/v2/write?bucket=db1"):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + value +
                         b"\r\nContent-Length: 7\r\nConnection: close\r\n\r\ncpu v=1")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), reply
        assert json.loads(body) == {"error": MALFORMED_AUTHORIZATION}


def test_in_process_servers_never_touch_a_token_file_in_the_cwd(tmp_path, monkeypatch):
    """`make test` used to rewrite ./data/admin-token of the checkout: test servers built with the default
    data_dir "data" and auth on saved every admin token they created there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-token").write_text("apiv3_the_developers_own_server\n")
    config = Config(object_store="memory", wal_flush_interval=0.02, without_auth=False)  # data_dir "data"
    with InProcessServer(config, store=MemoryStore()) as srv:
        assert srv.token is not None
        assert srv.request("POST", "/api/v3/configure/token/admin/regenerate", {}).status == 201
    with InProcessServer() as default:  # no config at all: a memory store
        assert default.config.object_store == "memory"
    assert (tmp_path / "data" / "admin-token").read_text() == "apiv3_the_developers_own_server\n"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["admin-token"]
