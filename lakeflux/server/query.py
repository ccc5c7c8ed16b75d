"""SQL query route: /api/v3/query_sql (GET and POST), with format negotiation and streaming."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ..errors import Invalid
from ..query.formats import negotiate, render
from .body import read_json
from .errors import stamp_headers
from .services import SERVICES, Services


async def query_sql(request: web.Request) -> web.StreamResponse:
    svc: Services = request.app[SERVICES]
    if request.method == "POST":
        body = await read_json(request, svc.config.max_http_request_size, check_type=False)
        db, sql, fmt_param, params = body.get("db"), body.get("q"), body.get("format"), body.get("params")
    else:
        q = request.query
        db, sql, fmt_param, params = q.get("db"), q.get("q"), q.get("format"), _params_from_text(q.get("params"))
    if not db:
        raise Invalid("missing query parameter 'db'")
    if not sql:
        raise Invalid("missing query parameter 'q'")
    if params is not None and not isinstance(params, dict):
        raise Invalid("'params' must be a JSON object mapping names to values")
    fmt = negotiate(fmt_param, request.headers.get("Accept"))
    result = await svc.run_blocking(svc.query.execute, db, sql, params)
    response = web.StreamResponse(status=200, headers={**stamp_headers(request), "Content-Type": fmt.content_type})
    await response.prepare(request)
    for chunk in render(result.batches, result.schema, fmt):
        if chunk:
            await response.write(chunk)
    await response.write_eof()
    return response


def _params_from_text(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise Invalid(f"invalid 'params': expected a JSON object, {e}") from e
    if not isinstance(value, dict):
        raise Invalid("invalid 'params': expected a JSON object")
    return value
