"""HTTP routes of the processing engine: trigger lifecycle (CONTRACT §4.5) and request triggers (§4.6).

Every engine call that may block (catalog commits, stopping a trigger, running a plugin) runs off the
event loop; request plugins run on the engine's own request pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..engine.runtime import Engine
from ..errors import Invalid
from .body import read_body, read_json
from .errors import json_response
from .services import SERVICES, Services

TRIGGER_ROUTE = "/api/v3/configure/processing_engine_trigger"
ENGINE_ROUTE = "/api/v3/engine/{path:.*}"


def add_engine_routes(router: web.UrlDispatcher) -> None:
    """Register the trigger lifecycle routes and `/api/v3/engine/<path>`."""
    router.add_post(TRIGGER_ROUTE, create_trigger)
    router.add_put(TRIGGER_ROUTE, update_trigger)
    router.add_delete(TRIGGER_ROUTE, delete_trigger)
    router.add_post(TRIGGER_ROUTE + "/enable", enable_trigger)
    router.add_post(TRIGGER_ROUTE + "/disable", disable_trigger)
    router.add_route("*", ENGINE_ROUTE, engine_request)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _engine(request: web.Request) -> Engine:
    return _services(request).engine


async def _params(request: web.Request) -> dict[str, Any]:
    """Query parameters, overlaid with a JSON body when one is sent (either may carry them)."""
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        body = await read_json(request, _services(request).config.max_http_request_size)
        params.update(body)
    return params


def _required(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"missing or invalid '{key}'")
    return value


def _settings(params: dict[str, Any]) -> dict[str, Any]:
    settings = params.get("trigger_settings")
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise Invalid("'trigger_settings' must be an object with run_async and error_behavior")
    return settings


async def create_trigger(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, _services(request).config.max_http_request_size)
    settings = _settings(body)
    engine = _engine(request)
    await _services(request).run_on_current_catalog(lambda: engine.create_trigger(
        db=_required(body, "db"),
        name=_required(body, "trigger_name"),
        plugin_filename=body.get("plugin_filename"),  # type: ignore[arg-type]
        spec=body.get("trigger_specification"),  # type: ignore[arg-type]
        arguments=body.get("trigger_arguments"),
        run_async=settings.get("run_async"),
        error_behavior=settings.get("error_behavior"),
        disabled=body.get("disabled"),
    ))
    return web.Response(status=200)


async def update_trigger(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, _services(request).config.max_http_request_size)
    settings = _settings(body)
    engine = _engine(request)
    await _services(request).run_on_current_catalog(lambda: engine.update_trigger(
        db=_required(body, "db"),
        name=_required(body, "trigger_name"),
        plugin_filename=body.get("plugin_filename"),
        spec=body.get("trigger_specification"),
        arguments=body.get("trigger_arguments"),
        run_async=settings.get("run_async"),
        error_behavior=settings.get("error_behavior"),
        disabled=body.get("disabled"),
    ))
    return web.Response(status=200)


async def delete_trigger(request: web.Request) -> web.StreamResponse:
    params = await _params(request)
    force = params.get("force", False)
    if isinstance(force, str):
        force = force.strip().lower() in ("true", "1", "yes")
    engine = _engine(request)
    db, name = _required(params, "db"), _required(params, "trigger_name")
    await _services(request).run_on_current_catalog(lambda: engine.delete_trigger(db, name, force=bool(force)))
    return web.Response(status=200)


async def enable_trigger(request: web.Request) -> web.StreamResponse:
    return await _switch_trigger(request, enable=True)


async def disable_trigger(request: web.Request) -> web.StreamResponse:
    return await _switch_trigger(request, enable=False)


async def _switch_trigger(request: web.Request, *, enable: bool) -> web.StreamResponse:
    """Enable or disable: 200 even when the trigger already was (CONTRACT §2.2)."""
    params = await _params(request)
    engine = _engine(request)
    db, name = _required(params, "db"), _required(params, "trigger_name")
    switch = engine.enable_trigger if enable else engine.disable_trigger
    await _services(request).run_on_current_catalog(lambda: switch(db, name))
    return web.Response(status=200)


async def engine_request(request: web.Request) -> web.StreamResponse:
    """`GET|POST /api/v3/engine/<path>`: the request trigger with exactly that path (§1.10)."""
    engine = _engine(request)
    trigger = engine.request_trigger(request.match_info["path"])
    if trigger is None:
        return json_response({"error": "not found"}, status=404)
    if request.method not in ("GET", "POST"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
    body = await read_body(request, _services(request).config.max_http_request_size)
    loop = asyncio.get_running_loop()
    reply = await loop.run_in_executor(
        engine.request_pool, trigger.handle, request.rel_url.raw_query_string, list(request.raw_headers), body
    )
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
