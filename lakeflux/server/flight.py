"""Arrow Flight for InfluxDB 3 clients (CONTRACT §5): DoGet with the JSON ticket, and the Flight SQL
minimum Grafana and ADBC use (GetFlightInfo(CommandStatementQuery) → one endpoint → DoGet).

pyarrow's gRPC server runs on its own threads on an internal loopback port; the one-port listener
(server/listener.py) forwards HTTP/2 connections to it. Errors map to gRPC codes through Arrow
statuses: KeyError → NOT_FOUND, Invalid → INVALID_ARGUMENT, NotImplemented → UNIMPLEMENTED. Tickets with
`query_type: "influxql"` are answered by the InfluxQL planner in InfluxDB 3's table form.

Clients get an error's message, never a traceback: pyarrow sends the Python traceback of any exception a
handler raises (server paths and source lines) as the status detail, except for its Flight error classes,
which carry no INVALID_ARGUMENT / NOT_FOUND / UNIMPLEMENTED. So DoGet answers errors with a stream that
fails on its first read from C code (`error_stream`), which keeps the code and has no Python frames;
GetFlightInfo raises Flight error classes (client errors arrive as UNKNOWN with the message). Unexpected
errors are logged here with their traceback.
"""

from __future__ import annotations

import codecs
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pyarrow as pa
import pyarrow.flight as flight

from .. import errors as E
from ..buffer.sqltypes import tag_fields_as_dictionaries, tags_as_dictionaries
from ..influxql.executor import InfluxQLError, Request
from ..influxql.results import MEASUREMENT_COLUMN, flat_table
from ..query.running import RunningQuery
from .auth import authenticate, metadata_token
from .metrics import Metrics
from .services import Services

T = TypeVar("T")

log = logging.getLogger("lakeflux.flight")

MIDDLEWARE_KEY = "lakeflux"
DATABASE_HEADERS = ("database", "bucket", "bucket-name", "iox-namespace-name")
STATEMENT_QUERY = "CommandStatementQuery"


# --- protobuf, by hand: Any{type_url=1, value=2} and CommandStatementQuery{query=1} -----------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def proto_fields(buf: bytes) -> dict[int, bytes | int]:
    """The fields of one protobuf message (last occurrence wins); length-delimited values as bytes."""
    fields: dict[int, bytes | int] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields[number], pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated field")
            fields[number], pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            fields[number], pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return fields


def decode_command(cmd: bytes) -> tuple[str, bytes]:
    """(type name, value) of a Flight SQL command wrapped in google.protobuf.Any."""
    try:
        fields = proto_fields(cmd)
    except ValueError as e:
        raise pa.ArrowInvalid(f"invalid Flight command: {e}") from None
    type_url, value = fields.get(1, b""), fields.get(2, b"")
    if not isinstance(type_url, bytes) or not isinstance(value, bytes):
        raise pa.ArrowInvalid("invalid Flight command: expected a protobuf Any")
    return type_url.decode("utf-8", "replace").rsplit("/", 1)[-1].rsplit(".", 1)[-1], value


def statement_sql(value: bytes) -> str:
    """The SQL of a CommandStatementQuery message (field 1)."""
    try:
        query = proto_fields(value).get(1, b"")
    except ValueError as e:
        raise pa.ArrowInvalid(f"invalid CommandStatementQuery: {e}") from None
    if not isinstance(query, bytes) or not query:
        raise pa.ArrowInvalid("CommandStatementQuery has no query")
    return query.decode("utf-8")


# --- tickets ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketQuery:
    database: str
    sql: str
    params: dict[str, Any] | None
    query_type: str = "sql"  # or "influxql"

    def encode(self) -> bytes:
        body: dict[str, Any] = {"database": self.database, "sql_query": self.sql, "query_type": self.query_type}
        if self.params:
            body["params"] = self.params
        return orjson.dumps(body)


def parse_ticket(raw: bytes, header_db: str | None) -> TicketQuery:
    """The influxdb3-python JSON ticket; `header_db` fills in a missing `database`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise pa.ArrowInvalid("invalid ticket: expected a JSON object with database and sql_query") from None
    if not isinstance(body, dict):
        raise pa.ArrowInvalid("invalid ticket: expected a JSON object with database and sql_query")
    query_type = str(body.get("query_type") or "sql").lower()
    if query_type not in ("sql", "influxql"):
        raise pa.ArrowInvalid(f"invalid ticket: unknown query_type {query_type!r}")
    sql = body.get("sql_query")
    if not isinstance(sql, str) or not sql.strip():
        raise pa.ArrowInvalid("invalid ticket: missing sql_query")
    database = body.get("database") or header_db
    if not isinstance(database, str) or not database:
        raise pa.ArrowInvalid("invalid ticket: missing database (in the ticket or the 'database' header)")
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise pa.ArrowInvalid("invalid ticket: params must be a JSON object")
    return TicketQuery(database, sql, params or None, query_type)


# --- authentication -------------------------------------------------------------------------------------


class CallContext(flight.ServerMiddleware):
    """Per call: the database named in the metadata, for handlers to read."""

    def __init__(self, database: str | None) -> None:
        self.database = database


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    """Checks the `authorization` metadata on every call, exactly like the HTTP middleware."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[Any]]) -> CallContext:
        if not self._services.config.without_auth:
            try:
                authenticate(self._services.catalog.state, metadata_token(headers))
            except E.Forbidden as e:
                raise flight.FlightUnauthorizedError(e.message) from None
            except (E.Unauthorized, E.Invalid) as e:
                raise flight.FlightUnauthenticatedError(e.message) from None
        return CallContext(_header_database(headers))


def _header_database(headers: dict[str, list[Any]]) -> str | None:
    for name in DATABASE_HEADERS:
        values = headers.get(name)
        if values:
            value = values[0]
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


# --- errors -----------------------------------------------------------------------------------------------


def error_stream(error: Exception) -> flight.RecordBatchStream:
    """A DoGet answer that fails on its first read with `error`'s status code and message, and no traceback.

    The C++ server reads the stream through `map`, which calls `codecs.strict_errors(fresh)`: both are C
    functions, so a fresh exception (no traceback, no chained cause) is raised without a single Python
    frame for pyarrow to format and send.
    """
    fresh = type(error)(str(error))
    return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(
        pa.schema([]), map(codecs.strict_errors, [fresh])))


def flight_error(error: pa.ArrowException) -> flight.FlightError:
    """The Flight error class (no traceback on the wire) closest to an Arrow error raised for a client."""
    if isinstance(error, flight.FlightError):
        return error
    return flight.FlightServerError(str(error))


# --- the server ---------------------------------------------------------------------------------------


class FlightService(flight.FlightServerBase):
    """DoGet and the Flight SQL minimum over the services' query engine. Starts serving on construction."""

    def __init__(self, services: Services, metrics: Metrics | None = None,
                 location: str = "grpc+tcp://127.0.0.1:0") -> None:
        super().__init__(location, middleware={MIDDLEWARE_KEY: AuthMiddlewareFactory(services)})
        self._services = services
        self._metrics = metrics
        self._local = threading.local()  # per gRPC thread: whether this call's slot went to a stream

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        """SQL tickets stream their batches as DataFusion produces them, under a --max-concurrent-queries
        slot; a client that cancels the call (or goes away) cancels the query. Errors before the first batch
        keep their gRPC code; an error after it ends the stream with the Flight error closest to it."""
        try:
            query = parse_ticket(ticket.ticket, _call(context).database)
            self._take_slot()
        except flight.FlightError:
            raise  # sent without a traceback, with its own code
        except pa.ArrowException as e:
            return error_stream(e)
        try:
            if query.query_type == "influxql":
                table = self._run(query)
                return flight.RecordBatchStream(table)
            return self._stream(context, query)
        except flight.FlightError:
            raise
        except pa.ArrowException as e:
            return error_stream(e)
        finally:
            self._give_back_unless_streaming()

    def _take_slot(self) -> None:
        try:
            self._services.query_slots.take()
        except E.Unavailable as e:
            raise flight.FlightUnavailableError(e.message) from None
        self._local.streaming = False

    def _give_back_unless_streaming(self) -> None:
        """The slot of a call answered whole goes back now; a stream gives its own back when it ends."""
        if not getattr(self._local, "streaming", False):
            self._services.query_slots.give_back()
        self._local.streaming = False

    def _stream(self, context: flight.ServerCallContext, query: TicketQuery) -> flight.FlightDataStream:
        started = time.perf_counter()
        tags = self._tag_names(query.database)
        running = self._answer(query, lambda: self._services.query.start(query.database, query.sql, query.params))
        try:
            first = self._answer(query, lambda: running.next_batch(poll=context.is_cancelled))
        except BaseException:
            running.close()
            self._count(False, started)
            raise
        schema = tag_fields_as_dictionaries(running.schema, tags)
        self._local.streaming = True
        # A RecordBatchStream over a lazy reader, not a GeneratorStream: that one sends no dictionaries. An
        # error after the first batch ends the batches; the C-level iterator chained after them raises it,
        # so the client gets its message and no Python frames (as error_stream does before the first).
        failure: list[Exception] = []
        expiry = _expire_at_deadline(running, query.database)

        def finish(ok: bool) -> None:
            if expiry is not None:
                expiry.cancel()
            running.close()
            self._services.query_slots.give_back()
            self._count(ok, started)

        end = _Once(finish)
        batches = self._batches(context, query, running, first, tags, failure, end)
        # gRPC may drop a stream without asking for a batch (the client went away first): the generator never
        # started, so its `finally` never runs. Its collection ends the query all the same.
        weakref.finalize(batches, end, False).atexit = False
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(
            schema, itertools.chain(batches, map(codecs.strict_errors, failure))))

    def _batches(self, context: flight.ServerCallContext, query: TicketQuery, running: RunningQuery,
                 batch: pa.RecordBatch | None, tags: set[str], failure: list[Exception],
                 end: Callable[[bool], None]) -> Iterator[pa.RecordBatch]:
        """The stream's batches (tags as dictionaries); `end(ok)` closes the query, stops its deadline timer
        and gives the slot back. An error stops the batches and is put in `failure` for the stream to raise."""
        ok = False
        try:
            while batch is not None:
                if batch.num_rows:
                    yield from tags_as_dictionaries(pa.Table.from_batches([batch]), tags).to_batches()
                try:
                    batch = self._answer(query, lambda: running.next_batch(poll=context.is_cancelled))
                except pa.ArrowException as e:
                    failure.append(type(e)(str(e)))
                    return
            ok = True
        finally:
            end(ok)

    def _count(self, ok: bool, started: float) -> None:
        if self._metrics is not None:
            self._metrics.count_query("flight", ok, time.perf_counter() - started)

    def get_flight_info(self, context: flight.ServerCallContext,
                        descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        try:
            return self._flight_info(context, descriptor)
        except pa.ArrowException as e:
            raise flight_error(e) from None

    def _flight_info(self, context: flight.ServerCallContext,
                     descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise pa.ArrowNotImplementedError("only Flight SQL CommandStatementQuery descriptors are supported")
        kind, value = decode_command(descriptor.command)
        if kind != STATEMENT_QUERY:
            raise pa.ArrowNotImplementedError(f"Flight SQL {kind} is not supported")
        database = _call(context).database
        if not database:
            raise pa.ArrowInvalid("missing database: send it in the 'database' metadata header")
        query = TicketQuery(database, statement_sql(value), None)
        # Planned, not run: DoGet runs it once, when the client asks for the rows. Planning can be costly
        # (constant expressions are evaluated), so it takes a query slot too.
        self._take_slot()
        try:
            schema = self._answer(query, lambda: tag_fields_as_dictionaries(
                self._services.query.result_schema(query.database, query.sql, query.params),
                self._tag_names(query.database)))
        finally:
            self._give_back_unless_streaming()
        endpoint = flight.FlightEndpoint(query.encode(), [])
        return flight.FlightInfo(schema, descriptor, [endpoint], -1, -1)

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[flight.Result]:
        # Raised from C while pyarrow reads the results: UNIMPLEMENTED (ADBC falls back on it), and the only
        # frame in the detail is pyarrow's own.
        return map(codecs.strict_errors, [pa.ArrowNotImplementedError(f"action {action.type} is not supported")])

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return []

    def _tag_names(self, db: str) -> set[str]:
        dbdef = self._services.catalog.state.live_db(db)
        return {name for t in dbdef.tables.values() for name in t.tags} if dbdef is not None else set()

    def _run(self, query: TicketQuery) -> pa.Table:
        """An InfluxQL ticket's whole answer."""
        started = time.perf_counter()
        ok = False
        try:
            table = self._answer(query, lambda: tags_as_dictionaries(
                self._influxql(query), {MEASUREMENT_COLUMN, *self._tag_names(query.database)}))
            ok = True
            return table
        finally:
            self._count(ok, started)

    def _influxql(self, query: TicketQuery) -> pa.Table:
        """An InfluxQL ticket's answer: InfluxDB 3's table form, `iox::measurement` first."""
        assert self._services.influxql is not None
        try:
            result = self._services.influxql.execute_one(
                Request(query.sql, database=query.database, params=query.params, flat=True,
                        deadline=self._services.query.deadline()))
        except InfluxQLError as e:
            raise E.Invalid(e.message) from None
        return flat_table(result)

    def _answer(self, query: TicketQuery, compute: Callable[[], T]) -> T:
        """`compute()`, with lakeflux errors turned into the Flight errors clients expect."""
        try:
            return compute()
        except E.NotFound as e:
            raise pa.ArrowKeyError(e.message) from None
        except E.Forbidden as e:
            raise flight.FlightUnauthorizedError(e.message) from None
        except E.Unavailable as e:
            raise flight.FlightUnavailableError(e.message) from None
        except E.TimedOut as e:
            raise flight.FlightTimedOutError(e.message) from None
        except E.LakefluxError as e:
            raise pa.ArrowInvalid(e.message) from None
        except Exception:
            log.exception("unexpected error running a Flight query on %s", query.database)
            raise flight.FlightInternalError("internal error") from None


class _Once:
    """`fn(*args)` the first time it is called, from any thread; later calls do nothing."""

    def __init__(self, fn: Callable[..., None]) -> None:
        self._fn: Callable[..., None] | None = fn
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> None:
        with self._lock:
            fn, self._fn = self._fn, None
        if fn is not None:
            fn(*args)


def _expire_at_deadline(running: RunningQuery, database: str) -> threading.Timer | None:
    """gRPC sends a stream's batches and waits for a client that stops reading without a word to us, and
    the server cannot end the call: past the query's deadline the query is stopped all the same (its view
    unpinned, so retired files go) even though no batch is being pulled; the client gets the timeout error
    if it reads on. None without a deadline."""
    deadline = running.deadline
    if deadline is None:
        return None

    def expire() -> None:
        if running.expire():
            log.warning("Flight query on %s stopped while its client was not taking the answer: %s", database,
                        running.cancelled.message if running.cancelled is not None else "past its deadline")

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    return timer


def _call(context: flight.ServerCallContext) -> CallContext:
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    return middleware if isinstance(middleware, CallContext) else CallContext(None)
