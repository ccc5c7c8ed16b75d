"""SQL query route: /api/v3/query_sql (GET and POST), with format negotiation and streaming."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from ..errors import Invalid
from ..query.formats import Format, negotiate, render
from .body import read_json
from .services import SERVICES, Services
from .streaming import Cancel, stream_answer


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
    return await stream_answer(request, svc, fmt.content_type,
                               lambda cancel: _sql_chunks(svc, cancel, db, sql, params, fmt))


def _sql_chunks(svc: Services, cancel: Cancel, db: str, sql: str, params: dict[str, Any] | None,
                fmt: Format) -> Iterator[bytes]:
    """The answer's body chunks, as DataFusion produces the batches (on a query thread)."""
    running = svc.query.start(db, sql, params, deadline=cancel.deadline)
    cancel.attach(running)
    try:
        # The first batch before the first byte (a format's opening bracket): errors up to the first rows
        # (the timeout of a query that aggregates everything first, the memory limit) keep their status.
        first = running.next_batch()
        yield from render(itertools.chain([first] if first is not None else [], running), running.schema, fmt)
    finally:
        running.close()


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
