"""HTTP routes around plugins: dry runs (CONTRACT §4.6), package installs and plugin files (§4.5).

- `POST /api/v3/plugin_test/wal`, `/schedule`: run a plugin once, writes and logs captured → 200 JSON.
- `POST /api/v3/configure/plugin_environment/install_packages`, `…/install_requirements`: real pip in the
  plugin venv; failure → 500 with pip's output (PackageInstallError has no mapped kind, so the error
  middleware answers 500); `--package-manager disabled` → 403.
- `POST /api/v3/plugins/files` (new file), `PUT /api/v3/plugins/files` (a trigger's code),
  `PUT /api/v3/plugins/directory` (a trigger's directory, swapped atomically).

Everything that blocks (plugins, pip, file writes) runs off the event loop: dry runs on the engine's request
pool (a dry-run plugin may call this server back), installs on the loop's default executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from ..engine.dryrun import DryRunner
from ..engine.packages import PackageInstaller
from ..engine.pluginfiles import replace_trigger_directory, replace_trigger_file, write_plugin_file
from ..errors import Invalid
from .body import read_json
from .engine_ports import EngineQueryRunner
from .errors import json_response
from .services import SERVICES, Services

T = TypeVar("T")

@dataclass
class PluginOperations:
    """The per-server objects behind these routes."""

    dry_runs: DryRunner
    installer: PackageInstaller


PLUGIN_OPS: web.AppKey[PluginOperations] = web.AppKey("plugin_operations", PluginOperations)


def add_plugin_routes(app: web.Application) -> None:
    """Register the routes on an app whose services are already set (`app[SERVICES]`)."""
    services = app[SERVICES]
    engine = services.engine
    app[PLUGIN_OPS] = PluginOperations(
        dry_runs=DryRunner(state=lambda: services.catalog.state, queries=EngineQueryRunner(services.query),
                           caches=engine.caches, resolve=engine.plugin_source.resolve),
        installer=PackageInstaller(services.config.plugin_dir, services.config.virtual_env,
                                   services.config.package_manager),
    )
    router = app.router
    router.add_post("/api/v3/plugin_test/wal", test_wal)
    router.add_post("/api/v3/plugin_test/schedule", test_schedule)
    router.add_post("/api/v3/configure/plugin_environment/install_packages", install_packages)
    router.add_post("/api/v3/configure/plugin_environment/install_requirements", install_requirements)
    router.add_post("/api/v3/plugins/files", create_plugin_file)
    router.add_put("/api/v3/plugins/files", replace_plugin_file)
    router.add_put("/api/v3/plugins/directory", replace_plugin_directory)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, _services(request).config.max_http_request_size)
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"missing or invalid '{key}'")
    return value


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"'{key}' must be a string")
    return value or None


async def _on_request_pool(request: web.Request, fn: Callable[[], T]) -> T:
    pool = _services(request).engine.request_pool
    return await asyncio.get_running_loop().run_in_executor(pool, fn)


# -- dry runs -----------------------------------------------------------------------------------


async def test_wal(request: web.Request) -> web.StreamResponse:
    """`{filename, database, input_lp, input_arguments?, cache_name?}` → log_lines, database_writes, errors."""
    body = await _body(request)
    filename, database = _text(body, "filename"), _text(body, "database")
    input_lp = body.get("input_lp")
    if not isinstance(input_lp, str):
        raise Invalid("missing or invalid 'input_lp'")
    runner = request.app[PLUGIN_OPS].dry_runs
    result = await _on_request_pool(request, lambda: runner.run_wal(
        filename=filename, database=database, input_lp=input_lp, input_arguments=body.get("input_arguments"),
        cache_name=_optional_text(body, "cache_name")))
    return json_response(result.to_json())


async def test_schedule(request: web.Request) -> web.StreamResponse:
    """`{filename, database, schedule?, input_arguments?, cache_name?}` → the same plus `trigger_time`."""
    body = await _body(request)
    filename, database = _text(body, "filename"), _text(body, "database")
    runner = request.app[PLUGIN_OPS].dry_runs
    result = await _on_request_pool(request, lambda: runner.run_schedule(
        filename=filename, database=database, schedule=_optional_text(body, "schedule"),
        input_arguments=body.get("input_arguments"), cache_name=_optional_text(body, "cache_name")))
    return json_response(result.to_json())


# -- packages -----------------------------------------------------------------------------------


async def install_packages(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    installer = request.app[PLUGIN_OPS].installer
    await asyncio.get_running_loop().run_in_executor(None, installer.install_packages, body.get("packages"))
    return web.Response(status=200)


async def install_requirements(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    installer = request.app[PLUGIN_OPS].installer
    await asyncio.get_running_loop().run_in_executor(
        None, installer.install_requirements, body.get("requirements_location"))
    return web.Response(status=200)


# -- plugin files -------------------------------------------------------------------------------


async def create_plugin_file(request: web.Request) -> web.StreamResponse:
    """`{plugin_name: <path relative to the plugin dir>, content}`: parents are created."""
    body = await _body(request)
    plugin_dir = _services(request).config.plugin_dir
    await _services(request).run_blocking(write_plugin_file, plugin_dir, body.get("plugin_name"), body.get("content"))
    return web.Response(status=200)


async def replace_plugin_file(request: web.Request) -> web.StreamResponse:
    """`{plugin_name: <trigger>, content, db?}`: the trigger's file (or `__init__.py`) gets the new code."""
    body = await _body(request)
    services = _services(request)
    await services.run_blocking(lambda: replace_trigger_file(
        services.config.plugin_dir, services.catalog.state, body.get("plugin_name"), body.get("content"),
        body.get("db")))
    return web.Response(status=200)


async def replace_plugin_directory(request: web.Request) -> web.StreamResponse:
    """`{plugin_name: <trigger>, files: [{relative_path, content}], db?}`: the directory swapped as a whole."""
    body = await _body(request)
    services = _services(request)
    await services.run_blocking(lambda: replace_trigger_directory(
        services.config.plugin_dir, services.catalog.state, body.get("plugin_name"), body.get("files"),
        body.get("db")))
    return web.Response(status=200)
