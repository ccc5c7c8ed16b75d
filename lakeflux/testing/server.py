"""An in-process lakeflux server on a loopback port, for tests and plugin authors.

The server runs on its own event loop in a background thread, so synchronous test code (and
plugins that call back over HTTP) can talk to it with any HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..config import Config
from ..server.app import HANDLER_ARGS, make_app
from ..server.services import Services, build_services
from ..store.base import ObjectStore


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class InProcessServer:
    """Start with `with InProcessServer(config) as srv:`; `srv.url` is its base URL."""

    def __init__(self, config: Config | None = None, store: ObjectStore | None = None) -> None:
        self.config = (config or Config()).with_changes(http_bind="127.0.0.1:0")
        self._store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lakeflux-test-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.services: Services | None = None
        self.url = ""

    def __enter__(self) -> InProcessServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.services = build_services(self.config, self._store)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        assert self.services is not None
        self._runner = web.AppRunner(make_app(self.services), access_log=None, **HANDLER_ARGS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Flush pending writes and stop serving."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def request(self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> Reply:
        """One HTTP request; a dict body is sent as JSON. Never raises for HTTP error statuses."""
        headers = dict(headers or {})
        data: bytes | None
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Reply(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, dict(e.headers.items()), e.read())

    def write(self, db: str, lines: str, **params: str) -> Reply:
        query = "&".join(f"{k}={v}" for k, v in {"db": db, **params}.items())
        return self.request("POST", f"/api/v3/write_lp?{query}", lines)

    def query(self, db: str, sql: str, **extra: Any) -> Any:
        reply = self.request("POST", "/api/v3/query_sql", {"db": db, "q": sql, "format": "json", **extra})
        if reply.status != 200:
            raise AssertionError(f"query failed with {reply.status}: {reply.body!r}")
        return reply.json()
