"""Token authentication for HTTP and Flight (CONTRACT §4.1): header forms, hashing, the middleware.

Tokens are random strings shown once; the catalog keeps only their SHA-512 digest. A fast hash is
enough because the tokens carry 288 bits of randomness: there is nothing to brute-force. Token
values never reach an error message, a log line or an exception (only their names do).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from aiohttp import web

from ..catalog import CatalogState, TokenDef
from ..config import Config
from ..errors import Forbidden, Invalid, Unauthorized
from .errors import Handler, json_response, status_of
from .services import SERVICES

TOKEN_PREFIX = "apiv3_"
ADMIN_TOKEN_NAME = "_admin"
NOT_AUTHENTICATED = "the request was not authenticated"
# InfluxDB 3 Core's exact text: clients (influxdb3-python's own tests among them) match on it.
MALFORMED_AUTHORIZATION = ("Authorization header was malformed, the request was not in the form of "
                           "'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic")
ADMIN_TOKEN_ROUTE = "/api/v3/configure/token/admin"

# `--disable-authz` names → the paths they open.
EXEMPT_PATHS = {
    "health": ("/health", "/api/v1/health"),
    "ping": ("/ping",),
    "metrics": ("/metrics",),
}
# v1 routes where InfluxDB 1.x clients send the token as the `p` query parameter.
V1_PASSWORD_PATHS = ("/write", "/query")

_SCHEMES = ("bearer", "token", "basic")
# The name (never the value) of the token that authenticated a request.
TOKEN_NAME: web.RequestKey[str] = web.RequestKey("token_name", str)


def new_token() -> str:
    """A fresh random token string; callers store only `hash_token` of it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(36)


def hash_token(token: str) -> str:
    """The hex SHA-512 digest stored in the catalog in place of the token."""
    return hashlib.sha512(token.encode("utf-8")).hexdigest()


def _visible_ascii(value: str) -> bool:
    return all(" " <= ch <= "~" or ch == "\t" for ch in value)


def token_from_header(value: str) -> str:
    """The token in an `Authorization` value: `Bearer <t>`, `Token <t>` or `Basic base64(user:<t>)`.

    Raises Invalid (400, Core's "Authorization header was malformed ..." text) for anything else: an
    unknown scheme, no token, more than one word after the scheme, undecodable Basic credentials, or bytes
    outside visible ASCII (a header value HTTP does not allow, so it can carry no token).
    """
    if not _visible_ascii(value):
        raise Invalid(MALFORMED_AUTHORIZATION)
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() not in _SCHEMES or not rest or " " in rest:
        raise Invalid(MALFORMED_AUTHORIZATION)
    if scheme.lower() != "basic":
        return rest
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise Invalid(MALFORMED_AUTHORIZATION) from e
    _user, colon, password = decoded.partition(":")
    if not colon or not password:
        raise Invalid(MALFORMED_AUTHORIZATION)
    return password


def request_token(request: web.Request) -> str | None:
    """The token a request carries: the Authorization header, else v1 `?p=` on /write and /query."""
    header = request.headers.get("Authorization")
    if header is not None:
        return token_from_header(header)
    if request.path in V1_PASSWORD_PATHS:
        password = request.query.get("p")
        if password:
            return password
    return None


def find_token(state: CatalogState, token: str) -> TokenDef | None:
    """The catalog entry whose digest matches `token`, compared in constant time per entry."""
    digest = hash_token(token)
    for tok in state.tokens.values():
        if hmac.compare_digest(tok.hash, digest):
            return tok
    return None


def authenticate(state: CatalogState, token: str | None, now_ns: int | None = None) -> TokenDef:
    """The token's definition if it may use the API: Unauthorized when missing, unknown or expired;
    Forbidden when it is not an admin token (every route is an admin route today)."""
    if not token:
        raise Unauthorized(NOT_AUTHENTICATED)
    tok = find_token(state, token)
    now = time.time_ns() if now_ns is None else now_ns
    if tok is None or (tok.expiry_ns is not None and tok.expiry_ns <= now):
        raise Unauthorized(NOT_AUTHENTICATED)
    if not tok.admin:
        raise Forbidden("the token does not have permission for this request")
    return tok


def is_exempt(config: Config, path: str) -> bool:
    """Whether `path` is served without a token under this config."""
    if config.without_auth:
        return True
    return any(path in EXEMPT_PATHS.get(name, ()) for name in config.disable_authz)


def _bootstrap_allowed(request: web.Request, state: CatalogState) -> bool:
    # The very first admin token can be created without credentials: there are none to present.
    return request.method == "POST" and request.path == ADMIN_TOKEN_ROUTE and not state.tokens


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests without a valid token (401/403, JSON via the error middleware)."""
    services = request.app[SERVICES]
    if is_exempt(services.config, request.path):
        return await handler(request)
    state = services.catalog.state
    if _bootstrap_allowed(request, state):
        # Credentials sent along (a CLI's stale token file) cannot matter: none exist yet.
        return await handler(request)
    try:
        request[TOKEN_NAME] = authenticate(state, request_token(request)).name
    except (Unauthorized, Forbidden, Invalid) as e:
        # Core answers auth failures as {"error": ...} on every route, /api/v2/ included.
        return json_response({"error": e.message}, status=status_of(e))
    return await handler(request)


def metadata_token(headers: Mapping[str, list[str | bytes]]) -> str | None:
    """The token in gRPC metadata (`authorization`, same forms as HTTP); None when absent."""
    values = headers.get("authorization") or []
    if not values:
        return None
    value = values[0]
    return token_from_header(value if isinstance(value, str) else value.decode("utf-8", "replace"))
