"""InfluxQL over HTTP: v1 `/query` (InfluxDB 1.x's request and response shapes, as InfluxDB 3 answers them)
and `/api/v3/query_influxql` (one statement, the same output formats as `/api/v3/query_sql`)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

from .. import INFLUXDB_COMPAT_VERSION, __version__
from ..errors import Invalid
from ..influxql.executor import InfluxQL, InfluxQLError, Request
from ..influxql.results import (
    DEFAULT_CHUNK_SIZE,
    Encoder,
    StatementResult,
    flat_table,
    v1_csv,
    v1_json,
    v1_json_chunks,
)
from ..influxql.timeutil import epoch_divisor
from ..query.formats import negotiate, render
from .body import read_json
from .errors import stamp_headers
from .query import _params_from_text
from .services import SERVICES, Services
from .streaming import Cancel, cut_off_at_deadline, stream_answer

NO_QUERY = "expected a query to be provided in the query string or body"
_CSV_TYPES = ("application/csv", "text/csv")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _influxql(svc: Services) -> InfluxQL:
    assert svc.influxql is not None
    return svc.influxql


async def _v1_params(request: web.Request) -> dict[str, str]:
    """The request's parameters: the URL's, overridden by a form body's; a raw POST body is the query."""
    params = {k: v for k, v in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    ctype = request.content_type
    if ctype in _FORM_TYPES:
        form = await request.post()
        params.update({k: str(v) for k, v in form.items() if isinstance(v, str)})
    elif not params.get("q"):
        body = await request.read()
        try:
            params["q"] = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("Error retrieving query from request body") from None
    return params


async def v1_query(request: web.Request) -> web.StreamResponse:
    svc: Services = request.app[SERVICES]
    params = await _v1_params(request)
    text = params.get("q")
    if not text or not text.strip():
        raise Invalid(NO_QUERY)
    divisor = epoch_divisor(params.get("epoch"))
    chunked = params.get("chunked", "false").lower() == "true"
    chunk_size = _int_param(params, "chunk_size", DEFAULT_CHUNK_SIZE)
    pretty = params.get("pretty", "false").lower() == "true"
    csv = request.headers.get("Accept", "").split(";")[0].strip().lower() in _CSV_TYPES
    deadline = svc.query.deadline()  # one for every statement, and for sending the answer
    influxql_request = Request(text, database=params.get("db") or None, retention_policy=params.get("rp") or None,
                               params=_params_from_text(params.get("params")), deadline=deadline)
    headers = {**stamp_headers(request), "X-Influxdb-Version": INFLUXDB_COMPAT_VERSION,
               "X-Influxdb-Build": f"lakeflux-{__version__}"}
    encoder = Encoder(divisor)
    influxql = _influxql(svc)

    def answer() -> list[bytes]:
        """Run and encode on a query thread: the whole body, or its chunks when `chunked`."""
        try:
            results = influxql.execute(influxql_request)
        except InfluxQLError as e:  # InfluxDB 3 answers a query that does not parse with 200 and the error
            results = [StatementResult(0, error=e.message)]
        if csv:
            return [v1_csv(results, encoder)]
        if not chunked:
            return [v1_json(results, encoder, pretty)]
        return list(v1_json_chunks(results, encoder, chunk_size, pretty))

    chunks = await svc.run_query(answer)  # sending counts too: a client that stops reading is cut off
    response = web.StreamResponse(status=200, headers={
        **headers, "Content-Type": "application/csv" if csv else "application/json"})
    if csv or not chunked:
        response.content_length = len(chunks[0])
    cut = cut_off_at_deadline(request, response, deadline, svc.query.timed_out)
    try:
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left, or the deadline closed the connection (and logged it)
    finally:
        if cut is not None:
            cut.cancel()
    return response


async def query_influxql(request: web.Request) -> web.StreamResponse:
    """`/api/v3/query_influxql`: exactly one statement, answered as a table (`iox::measurement` first)."""
    svc: Services = request.app[SERVICES]
    if request.method == "POST":
        body = await read_json(request, svc.config.max_http_request_size, check_type=False)
        db, text, fmt_param, params = body.get("db"), body.get("q"), body.get("format"), body.get("params")
        if params is not None and not isinstance(params, dict):
            raise Invalid("'params' must be a JSON object mapping names to values")
    else:
        q = request.query
        db, text, fmt_param, params = q.get("db"), q.get("q"), q.get("format"), _params_from_text(q.get("params"))
    if not text:
        raise Invalid("missing query parameter 'q'")
    fmt = negotiate(fmt_param, request.headers.get("Accept"))
    influxql_request = Request(text, database=db or None, params=params, flat=True, deadline=svc.query.deadline())
    influxql = _influxql(svc)

    def chunks(cancel: Cancel) -> Iterator[bytes]:
        try:
            result = influxql.execute_one(influxql_request)
        except InfluxQLError as e:
            raise Invalid(e.message) from None
        table = flat_table(result)
        return render(table.to_batches(), table.schema, fmt)

    return await stream_answer(request, svc, fmt.content_type, chunks)


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Invalid(f"invalid {name} {text!r}: expected an integer") from None
    if value < 0:
        raise Invalid(f"invalid {name} {text!r}: expected a positive integer")
    return value
