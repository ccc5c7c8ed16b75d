"""The write buffer's group commit with background writes (plugin write-backs), on injected time.

A client write after a quiet interval commits at once, even if a background write was committed a
moment before; background writes themselves wait for the interval since the previous commit of any
kind (a self-triggering plugin loops at most once per interval).
"""

from __future__ import annotations

import asyncio

from lakeflux.buffer import WriteBuffer
from lakeflux.catalog import Catalog
from lakeflux.lineprotocol import parse
from lakeflux.model import Precision
from lakeflux.store.memory import MemoryStore
from lakeflux.wal import Wal

INTERVAL = 1000.0  # seconds of injected time: a real wait of that length would fail the test


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _scenario() -> None:
    store = MemoryStore()
    catalog = Catalog(store, "n")
    catalog.load()
    clock = FakeTime()
    buffer = WriteBuffer(catalog, Wal(store, "n", "w"), flush_interval=INTERVAL, monotonic=clock)
    await buffer.start()

    def write(n: int, *, background: bool = False) -> asyncio.Task[object]:
        body = f"m v={n}i {n}".encode()
        parsed = parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
        return asyncio.ensure_future(buffer.write("db", parsed, accept_partial=False, no_sync=False, body=body,
                                                  background=background))

    async def settle() -> None:
        for _ in range(20):  # let the flush loop run whatever it can without time moving
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(write(1), 30)  # a client write on a quiet server commits at once
        assert buffer.stats.segments == 1
        clock.now = 1.0
        background = write(2, background=True)
        await settle()
        assert not background.done()  # waits for the interval since the last commit
        clock.now = INTERVAL + 1.0
        await buffer.flush_now()
        await asyncio.wait_for(background, 30)
        assert buffer.stats.segments == 2
        # A client write now: the interval since the last *client* commit has passed, so it commits at
        # once; the background commit a moment ago does not make it wait.
        clock.now = INTERVAL + 1.5
        await asyncio.wait_for(write(3), 30)
        assert buffer.stats.segments == 3
        # The next client write within the interval waits as before (group commit).
        clock.now = INTERVAL + 2.0
        client = write(4)
        also = write(5, background=True)
        await settle()
        assert not client.done() and not also.done()
        clock.now = 2 * INTERVAL + 1.5
        await buffer.flush_now()
        await asyncio.wait_for(asyncio.gather(client, also), 30)
        assert buffer.stats.segments == 4  # both in one commit, in arrival order
        assert [t.data.column("v").to_pylist() for t in buffer.wal.read(3).tables] == [[4, 5]]
    finally:
        await buffer.stop()


def test_background_commits_never_hold_back_client_writes():
    asyncio.run(_scenario())
