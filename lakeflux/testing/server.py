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
from ..server.main import Serving, start_serving
from ..server.services import Services, build_services
from ..server.tokens import create_admin_token
from ..store.base import ObjectStore


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class InProcessServer:
    """Start with `with InProcessServer(config) as srv:`; `srv.url` is its base URL (HTTP and Flight).

    With auth on (`without_auth=False`) an admin token is created at start (none with `manual_admin_token`,
    as `serve` does); `srv.token` holds it and `request` sends it unless told `auth=False` or given an
    Authorization header. It writes no token file: the caller has the token.
    """

    def __init__(self, config: Config | None = None, store: ObjectStore | None = None) -> None:
        # Without a config: a memory store, so nothing lands in ./data.
        self.config = (config or Config(object_store="memory")).with_changes(http_bind="127.0.0.1:0")
        self._store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lakeflux-test-server", daemon=True)
        self._serving: Serving | None = None
        self.token: str | None = None
        self.services: Services | None = None
        self.url = ""

    def __enter__(self) -> InProcessServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.services = build_services(self.config, self._store)
        if not self.config.without_auth and not self.config.manual_admin_token:
            # A restarted test server cannot read back the hashed token: it takes a fresh one.
            replace = bool(self.services.catalog.state.tokens)
            self.token, _, _ = create_admin_token(self.services, replace=replace)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        assert self.services is not None
        self._serving = await start_serving(self.services, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._serving.port}"

    def stop(self) -> None:
        """Flush pending writes and stop serving."""
        if self._serving is not None:
            asyncio.run_coroutine_threadsafe(self._serving.stop(), self._loop).result(timeout=30)
            self._serving = None
        if self._thread.is_alive():
            # The loop's default executor (asyncio.to_thread) would otherwise leave threads behind.
            asyncio.run_coroutine_threadsafe(self._loop.shutdown_default_executor(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    @property
    def app(self) -> web.Application:
        """The running aiohttp application (its router lists every route)."""
        assert self._serving is not None, "the server is not running"
        return self._serving.runner.app

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def request(self, method: str, path: str, body: bytes | str | dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60, auth: bool = True) -> Reply:
        """One HTTP request; a dict body is sent as JSON. Never raises for HTTP error statuses."""
        headers = dict(headers or {})
        if auth and self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
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
