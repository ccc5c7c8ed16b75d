"""Mapping lakeflux error kinds to HTTP statuses and JSON bodies, in one middleware."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .. import errors as E

log = logging.getLogger("lakeflux.server")

STATUS = {
    E.UnsupportedMediaType: 415,
    E.Invalid: 400,
    E.Unauthorized: 401,
    E.Forbidden: 403,
    E.NotFound: 404,
    E.NotAllowed: 405,
    E.Conflict: 409,
    E.TooLarge: 413,
    E.LimitExceeded: 422,
    E.Corrupt: 500,
    E.Internal: 500,
    E.TimedOut: 504,
    E.BadGateway: 502,
    E.Unavailable: 503,
}

V2_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not found", 413: "request too large",
            405: "method not allowed", 415: "unsupported media type", 422: "unprocessable entity",
            500: "internal error", 502: "bad gateway", 503: "unavailable", 409: "conflict",
            504: "timeout"}
CLUSTER_UUID = str(uuid.uuid4())


def status_of(err: E.LakefluxError) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(request: web.Request, status: int, message: str, data: Any = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The error body of CONTRACT §4.1: {"error", "data"?}, or {"code", "message"} under /api/v2/."""
    if request.path.startswith("/api/v2/"):
        body: dict[str, Any] = {"code": V2_CODES.get(status, "internal error"), "message": message}
        if data is not None:
            body["message"] = f"{message}: {_summary(data)}"
    else:
        body = {"error": message}
        if data is not None:
            body["data"] = data
    return json_response(body, status=status, headers=headers)


def _summary(data: Any) -> str:
    items = data if isinstance(data, list) else [data]
    return "; ".join(
        f"line {d.get('line_number')}: {d.get('error_message')}" if isinstance(d, dict) else str(d) for d in items
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON with the status of its kind; nothing escapes as a traceback."""
    try:
        response = await handler(request)
    except E.LakefluxError as e:
        headers = {"Retry-After": str(max(1, round(e.retry_after)))} if isinstance(e, E.Unavailable) else None
        response = error_response(request, status_of(e), e.message, e.data, headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = "not found" if e.status == 404 else (e.text or e.reason or "error")
        if e.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        response = error_response(request, e.status, message)
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        response = error_response(request, 500, "internal error")
    _stamp(request, response)
    return response


def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    request_id = request.headers.get("Request-Id") or str(uuid.uuid4())
    response.headers.setdefault("Request-Id", request_id)
    response.headers.setdefault("cluster-uuid", CLUSTER_UUID)
    if response.status < 400:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")


def stamp_headers(request: web.Request) -> dict[str, str]:
    """Headers for streamed responses, which are prepared before the middleware sees them."""
    return {"Request-Id": request.headers.get("Request-Id") or str(uuid.uuid4()), "cluster-uuid": CLUSTER_UUID,
            "Access-Control-Allow-Origin": "*"}
