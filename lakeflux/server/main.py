"""`lakeflux serve`: build the services, then serve HTTP until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp import web

from ..config import Config
from .app import HANDLER_ARGS, make_app
from .services import build_services

log = logging.getLogger("lakeflux")


def run(config: Config) -> None:
    """Serve until interrupted; pending writes are flushed before exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if config.object_store == "file":
        config.data_dir.mkdir(parents=True, exist_ok=True)
    services = build_services(config)
    host, port = config.host_port
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # uvloop is not available on every platform
        pass
    log.info("lakeflux serving on http://%s:%d (node %s, %s store)", host, port, config.node_id,
             config.object_store)
    web.run_app(make_app(services), host=host, port=port, print=None, access_log=None,
                handle_signals=True, shutdown_timeout=10, handler_args=HANDLER_ARGS)
