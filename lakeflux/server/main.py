"""`lakeflux serve`: build the services, then serve HTTP and Flight on one port until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from aiohttp import web

from ..config import Config
from ..errors import Unavailable
from ..localstate import state_dir, write_server_note
from .app import HANDLER_ARGS, make_app
from .connections import ConnectionLimits, Connections
from .flight import FlightService
from .listener import OnePortListener, listen_on
from .metrics import METRICS
from .services import Services, build_services
from .tokens import ensure_admin_token

log = logging.getLogger("lakeflux")


@dataclass
class Serving:
    """A running server: aiohttp (no sites of its own), the Flight gRPC server, and the one-port front."""

    runner: web.AppRunner
    flight: FlightService
    listener: OnePortListener
    services: Services
    connections: Connections | None = None

    @property
    def port(self) -> int:
        return self.listener.port

    async def stop(self) -> None:
        """Stop accepting, cancel running queries, end Flight calls and HTTP connections, then clean up the
        app (which commits pending writes)."""
        await self.listener.stop()
        cancelled = self.services.query.cancel_all(Unavailable("server is shutting down"))
        if cancelled:
            log.info("stopping: cancelled %d running queries", cancelled)
        await asyncio.get_running_loop().run_in_executor(None, self.flight.shutdown)
        if self.connections is not None:
            await self.connections.stop()
        await self.runner.cleanup()


async def start_serving(services: Services, host: str, port: int, sock: socket.socket | None = None) -> Serving:
    """Start the app, the Flight server on an internal loopback port and the listener on host:port
    (port 0 picks a free one: read `Serving.port`), or on `sock` when already bound (`listen_on`)."""
    config = services.config
    connections = Connections(ConnectionLimits(
        header_timeout=config.http_read_header_timeout, read_timeout=config.http_read_timeout,
        max_connections=max_connections(config.http_max_connections)))
    app = make_app(services, connections)
    # Handlers still running this long after the stop began are cancelled (queries are cancelled first).
    shutdown = max(1.0, config.shutdown_grace_period / 4)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown,
                           keepalive_timeout=config.http_idle_timeout, **HANDLER_ARGS)  # type: ignore[arg-type]
    await runner.setup()
    flight = FlightService(services, app[METRICS])
    listener = OnePortListener(host, port, runner.server, flight.port, sock, connections)  # type: ignore[arg-type]
    try:
        await listener.start()
    except BaseException:
        flight.shutdown()
        await runner.cleanup()
        raise
    connections.start()
    return Serving(runner, flight, listener, services, connections)


def max_connections(configured: int) -> int:
    """`--http-max-connections`, lowered to what the file-handle limit allows (raised to its hard limit
    first), keeping handles for the store, the WAL and Flight."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
    except (ValueError, OSError):
        return configured
    if soft == resource.RLIM_INFINITY:
        return configured
    allowed = max(8, soft - 256)
    if allowed < configured:
        log.warning("--http-max-connections %d lowered to %d by the open-file limit (%d)", configured, allowed, soft)
    return min(configured, allowed)


async def _serve_until_signalled(services: Services, host: str, port: int, sock: socket.socket) -> None:
    serving = await start_serving(services, host, port, sock)
    if not services.config.without_auth:
        note_server(services.config, serving.port)
    log.info("lakeflux serving HTTP and Flight on %s:%d (node %s, %s store)", host, serving.port,
             services.config.node_id, services.config.object_store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    grace = services.config.shutdown_grace_period

    def signalled() -> None:
        if stop.is_set():  # a second signal: do not wait any longer
            _exit_now(1, "second stop signal: exiting at once")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled)
    try:
        await stop.wait()
        log.info("stopping: cancelling queries and committing pending writes (at most %g s)", grace)
        # Whatever is stuck (a query inside the engine, a store that does not answer), the process ends
        # within the grace period; every acknowledged write is durable already.
        timer = threading.Timer(grace, _exit_now, (1, f"stopping took longer than --shutdown-grace-period "
                                                      f"({grace:g} s): exiting now"))
        timer.daemon = True
        timer.start()
    finally:
        await serving.stop()
    # A clean stop leaves the lake complete for outside readers: what is buffered is persisted.
    await services.buffer.persist_at_stop()


def note_server(config: Config, port: int) -> None:
    """Tell the local CLI which token file belongs to this address; a failure only costs that convenience."""
    try:
        write_server_note(config, port)
    except OSError as e:
        log.warning("could not record this server for the local CLI in %s: %s", state_dir(), e.strerror or e)


def run(config: Config) -> None:
    """Serve until interrupted; pending writes are flushed before exit. The address is bound first, so a
    taken port is reported (Conflict) before anything is loaded or created."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    host, port = config.host_port
    sock = listen_on(host, port)
    try:
        if config.object_store == "file":
            config.data_dir.mkdir(parents=True, exist_ok=True)
        services = build_services(config)
        ensure_admin_token(services)
    except BaseException:
        sock.close()
        raise
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # uvloop is not available on every platform
        pass
    asyncio.run(_serve_until_signalled(services, host, port, sock))
    _leave_busy_threads()


def _exit_now(code: int, why: str) -> None:
    log.error("%s", why)
    logging.shutdown()
    os._exit(code)


def _leave_busy_threads() -> None:
    """The server has stopped and committed everything; a query thread still inside the engine (it cannot
    be interrupted there) must not keep the process alive, as Python would by joining it at exit."""
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    for thread in busy:
        thread.join(timeout=0.5)
    busy = [t for t in busy if t.is_alive()]
    if busy:
        log.info("stopped; leaving %d busy threads (%s)", len(busy), ", ".join(t.name for t in busy[:5]))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
