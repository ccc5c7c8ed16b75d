"""`GET /health`: 200 `OK` while the server can take writes; 503 naming what is stuck when it cannot.

A server whose queries or plugins are busy is healthy as long as writes go through; what makes it
unhealthy is the write path not moving: a write whose body was read and that has waited for its answer
far longer than a commit takes (the store hangs, the WAL is stuck), no write parser thread coming free
(something holds them all), or this node's WAL taken by another writer (writes are refused). A server
whose event loop is stuck does not answer at all, which a probe's timeout reports on its own.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import Unavailable
from .services import SERVICES, Services

# A parser thread must come free this fast (parsing a 10 MiB body takes well under a second).
PARSER_PROBE_SECONDS = 5.0


def write_stall_seconds(svc: Services) -> float:
    """How long a write may wait for its commit before the server counts as stuck: far past what a commit
    takes (one flush interval plus the store's round trips and its retries)."""
    return max(10.0, 20 * svc.config.wal_flush_interval)


async def write_path_problem(svc: Services) -> str | None:
    """What keeps writes from going through now, or None."""
    if svc.buffer.fenced is not None:
        return f"writes are refused: {svc.buffer.fenced.message}"
    waited = svc.write_bytes.longest_wait()
    if waited > write_stall_seconds(svc):
        return f"writes are stuck: one has waited {waited:.0f} s for its WAL commit"
    try:
        await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(svc.parse_pool, _nothing),
                               PARSER_PROBE_SECONDS)
    except TimeoutError:
        return f"writes are stuck: no line-protocol parser thread came free within {PARSER_PROBE_SECONDS:g} s"
    except RuntimeError:  # the pool is shut down
        return "server is shutting down"
    return None


async def health(request: web.Request) -> web.StreamResponse:
    problem = await write_path_problem(request.app[SERVICES])
    if problem is not None:
        raise Unavailable(problem)
    return web.Response(text="OK", content_type="text/plain")


def _nothing() -> None:
    return None
