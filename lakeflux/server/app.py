"""The aiohttp application: routes, middleware and start/stop of background work."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from .. import INFLUXDB_COMPAT_VERSION, __version__
from . import configure, influxql, persist, query, tokens, write
from .auth import auth_middleware
from .connections import Connections, connection_middleware
from .engine_routes import add_engine_routes
from .errors import Handler, error_middleware, json_response
from .health import health
from .metrics import METRICS, Metrics, metrics_middleware, metrics_route
from .plugin_routes import add_plugin_routes
from .services import SERVICES, Services

# InfluxDB 1.x clients whose ping() insists on 1.x's 204: the Python `influxdb` client asks for msgpack,
# the Go client (Telegraf's, Chronograf's, Kapacitor's) names itself in User-Agent.
_V1_ACCEPT = "application/x-msgpack"
_V1_AGENTS = ("InfluxDBClient", "KapacitorInfluxDBClient")
PROCESS_ID = str(uuid.uuid4())


def wants_v1_ping(request: web.Request) -> bool:
    """Whether a /ping comes from an InfluxDB 1.x client (answer 204) rather than one expecting Core's JSON."""
    if request.method == "HEAD":
        return True
    if _V1_ACCEPT in request.headers.get("Accept", ""):
        return True
    return request.headers.get("User-Agent", "").startswith(_V1_AGENTS)


async def ping(request: web.Request) -> web.StreamResponse:
    """Core's 200 JSON `{version, revision, ...}`; 204 with the same headers for 1.x clients (CONTRACT §4.7)."""
    request_id = str(uuid.uuid4())
    headers = {"X-Influxdb-Version": INFLUXDB_COMPAT_VERSION, "X-Influxdb-Build": f"lakeflux-{__version__}",
               "Request-Id": request_id, "X-Request-Id": request_id}
    if wants_v1_ping(request):
        return web.Response(status=204, headers=headers)
    body = {"product_name": "lakeflux", "version": INFLUXDB_COMPAT_VERSION, "revision": f"lakeflux-{__version__}",
            "process_id": PROCESS_ID}
    return json_response(body, headers=headers)


@web.middleware
async def cors_preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """OPTIONS on any path is a CORS preflight: 204 with permissive headers."""
    if request.method != "OPTIONS":
        return await handler(request)
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
        "Access-Control-Max-Age": "86400"})


async def not_found(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


# Bodies are decoded by us (server/body.py) so limits and encoding errors follow CONTRACT §4.1.
HANDLER_ARGS = {"auto_decompress": False}


def make_app(services: Services, connections: Connections | None = None) -> web.Application:
    """The HTTP app over already-built services; starts and stops the WAL flush loop with the app.
    `connections` (the listener's registry) is told when each request's handler starts and ends."""
    # metrics sees final statuses (outside error_middleware); auth errors leave as JSON (inside it).
    first = [connection_middleware(connections)] if connections is not None else []
    app = web.Application(middlewares=[*first, cors_preflight, metrics_middleware, error_middleware, auth_middleware],
                          client_max_size=services.config.max_http_request_size)
    app[SERVICES] = services
    app[METRICS] = Metrics()
    app[METRICS].add_collector(services.engine.metric_families)  # per-trigger plugin call counters
    app[METRICS].add_collector(services.write_bytes.families)
    app[METRICS].add_collector(services.query_slots.families)
    if connections is not None:
        app[METRICS].add_collector(connections.families)
    r = app.router
    tokens.add_routes(r)
    r.add_get("/metrics", metrics_route)
    r.add_post("/api/v3/write_lp", write.write_lp)
    r.add_post("/api/v2/write", write.write_v2)
    r.add_post("/write", write.write_v1)
    r.add_route("GET", "/api/v3/query_sql", query.query_sql)
    r.add_post("/api/v3/query_sql", query.query_sql)
    r.add_get("/api/v3/query_influxql", influxql.query_influxql)
    r.add_post("/api/v3/query_influxql", influxql.query_influxql)
    r.add_get("/query", influxql.v1_query)
    r.add_post("/query", influxql.v1_query)
    r.add_get("/api/v3/configure/database", configure.list_databases)
    r.add_post("/api/v3/configure/database", configure.create_database)
    r.add_put("/api/v3/configure/database", configure.update_database)
    r.add_delete("/api/v3/configure/database", configure.delete_database)
    r.add_post("/api/v3/configure/table", configure.create_table)
    r.add_delete("/api/v3/configure/table", configure.delete_table)
    r.add_post("/api/v3/persist", persist.persist)
    add_engine_routes(r)
    add_plugin_routes(app)
    r.add_get("/health", health)
    r.add_get("/api/v1/health", health)
    for method in ("GET", "HEAD", "POST"):
        r.add_route(method, "/ping", ping)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


async def _start(app: web.Application) -> None:
    services = app[SERVICES]
    await services.buffer.start()
    # Triggers start once writes are accepted: a plugin may write back on its first call.
    services.plugin_writes.bind(asyncio.get_running_loop())
    if services.runs_triggers:
        await asyncio.get_running_loop().run_in_executor(None, services.engine.start)
    await asyncio.get_running_loop().run_in_executor(None, services.cluster.start)


async def _stop(app: web.Application) -> None:
    services = app[SERVICES]
    await asyncio.get_running_loop().run_in_executor(None, services.cluster.stop)
    # The engine stops first, while the buffer still commits the write-backs of interrupted calls.
    await asyncio.get_running_loop().run_in_executor(None, services.engine.stop)
    services.plugin_writes.bind(None)
    await services.buffer.stop()
    services.pool.shutdown(wait=False)
    services.parse_pool.shutdown(wait=False)
    services.query_pool.shutdown(wait=False, cancel_futures=True)
