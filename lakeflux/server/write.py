"""Write routes: /api/v3/write_lp, /api/v2/write and v1 /write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from aiohttp import web

from ..buffer import Prechecked
from ..catalog import TableDef, check_db_name
from ..errors import Invalid
from ..lineprotocol import ParseResult, parse
from ..model import ColumnKind, Precision
from .body import parse_bool, read_body
from .errors import json_response
from .metrics import LP_LINES, LP_PARSE_SECONDS
from .services import SERVICES, Services


async def write_lp(request: web.Request) -> web.StreamResponse:
    q = request.query
    db = q.get("db")
    if not db:
        raise Invalid("missing query parameter 'db'")
    return await _write(request, db, Precision.parse(q.get("precision"), Precision.AUTO),
                        accept_partial=parse_bool(q.get("accept_partial"), "accept_partial", True),
                        no_sync=parse_bool(q.get("no_sync"), "no_sync", False))


async def write_v2(request: web.Request) -> web.StreamResponse:
    bucket = request.query.get("bucket")
    if not bucket:
        raise Invalid("missing query parameter 'bucket'")
    try:
        return await _write(request, bucket, Precision.parse(request.query.get("precision"), Precision.NANOSECOND),
                            accept_partial=False, no_sync=False)
    except Invalid as e:
        if isinstance(e.data, dict) and "error_message" in e.data:
            # Core's v2 text for a rejected batch (clients match on its "write buffer error" prefix).
            raise Invalid(f"write buffer error: line protocol parse failed: {e.data['error_message']}") from None
        raise


async def write_v1(request: web.Request) -> web.StreamResponse:
    db = request.query.get("db")
    if not db:
        raise Invalid("missing query parameter 'db'")
    rp = request.query.get("rp", "")
    if rp not in ("", "autogen", "default"):
        db = f"{db}/{rp}"
    return await _write(request, db, Precision.parse(request.query.get("precision"), Precision.NANOSECOND),
                        accept_partial=False, no_sync=False)


async def _write(request: web.Request, db: str, precision: Precision, *, accept_partial: bool,
                 no_sync: bool) -> web.StreamResponse:
    svc: Services = request.app[SERVICES]
    check_db_name(db)
    # The body's bytes count against --max-write-bytes-in-flight until the write is answered. Until its rows
    # join the open batch, a batch past the flush size waits for them rather than committing without them.
    arrival = svc.buffer.arriving()
    try:
        with svc.write_bytes.hold() as held:
            body = await read_body(request, svc.config.max_http_request_size, hold=held.grow)
            held.answering()
            if not body or body.isspace():  # not strip(): that copies a whole body ending in a newline
                raise Invalid("the request body is empty: expected line protocol")
            dbdef = svc.catalog.state.live_db(db)
            known = _KnownColumns(dbdef.tables) if dbdef is not None else None
            # The parse checks UTF-8 too (Invalid naming the offset), off the event loop and without the GIL;
            # the check against the catalog runs there too, so two writes' checks run side by side.
            parsed, prechecked, request[LP_PARSE_SECONDS] = await svc.run_parse(
                _parse, body, precision, known, lambda parsed: svc.buffer.precheck(db, parsed, body))
            request[LP_LINES] = parsed.line_count
            errors = await svc.buffer.write(db, parsed, accept_partial=accept_partial, no_sync=no_sync, body=body,
                                            arrival=arrival, prechecked=prechecked)
    finally:
        arrival.joined()
    if errors:
        return json_response({"error": "partial write of line protocol occurred",
                              "data": [e.to_json() for e in errors]}, status=400)
    return web.Response(status=204)


class _KnownColumns(Mapping[str, Mapping[str, ColumnKind]]):
    """The column kinds of a database's tables, looked up as the parse asks for a table (a database of
    20,000 tables is not copied into a dict for every write). Catalog states are never modified, so a
    parse thread may read it."""

    def __init__(self, tables: Mapping[str, TableDef]) -> None:
        self._tables = tables

    def __getitem__(self, name: str) -> Mapping[str, ColumnKind]:
        return self._tables[name].columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


def _parse(body: bytes, precision: Precision, known: Mapping[str, Mapping[str, ColumnKind]] | None,
           precheck: Callable[[ParseResult], Prechecked]) -> tuple[ParseResult, Prechecked, float]:
    """The parse result, its check against the catalog, and the seconds the parse took (for /metrics)."""
    started = time.perf_counter()
    parsed = parse(body, precision=precision, default_time_ns=time.time_ns(), known=known)
    seconds = time.perf_counter() - started
    return parsed, precheck(parsed), seconds
