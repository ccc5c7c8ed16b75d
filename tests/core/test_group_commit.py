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


async def _early_commits() -> None:
    """Past the flush size a batch commits without waiting for the interval: at once when no other client
    write is on its way in, else when that write joins it (or the batch reaches twice the flush size)."""
    store = MemoryStore()
    catalog = Catalog(store, "n")
    catalog.load()
    clock = FakeTime()
    buffer = WriteBuffer(catalog, Wal(store, "n", "w"), flush_interval=INTERVAL, flush_size=4, monotonic=clock)
    await buffer.start()

    def write(first: int, rows: int, arrival: object = None) -> asyncio.Task[object]:
        body = "\n".join(f"m v={n}i {n}" for n in range(first, first + rows)).encode()
        parsed = parse(body, precision=Precision.NANOSECOND, default_time_ns=0)
        return asyncio.ensure_future(buffer.write("db", parsed, accept_partial=False, no_sync=False, body=body,
                                                  arrival=arrival))  # type: ignore[arg-type]

    async def settle() -> None:
        for _ in range(20):
            await asyncio.sleep(0.01)

    def rows_of(seq: int) -> list[int]:
        return [v for t in buffer.wal.read(seq).tables for v in t.data.column("v").to_pylist()]

    try:
        await asyncio.wait_for(write(0, 1), 30)  # quiet server: at once
        clock.now = 1.0  # from here on the interval has not passed: only the flush size commits early
        small = write(1, 1)
        await settle()
        assert not small.done()  # one row of four: waits for the interval (a lone small writer: ~1 a second)
        await asyncio.wait_for(write(2, 4), 30)  # a lone writer of a full batch commits at once, with it
        assert rows_of(1) == [1, 2, 3, 4, 5] and small.done()

        # Two writers answered by one commit: the second is on its way (its request started) while the
        # first joins; the batch waits for it and commits both together.
        on_its_way = buffer.arriving()
        first = write(10, 4)
        await settle()
        assert not first.done()
        second = write(20, 4, arrival=on_its_way)
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert rows_of(2) == [10, 11, 12, 13, 20, 21, 22, 23]

        # A write that gives up on its way (a bad body) releases the batch waiting for it.
        on_its_way = buffer.arriving()
        third = write(30, 4)
        await settle()
        assert not third.done()
        on_its_way.joined()
        await asyncio.wait_for(third, 30)
        assert rows_of(3) == [30, 31, 32, 33]

        # Twice the flush size commits even while another write is on its way.
        on_its_way = buffer.arriving()
        await asyncio.wait_for(write(40, 8), 30)
        assert rows_of(4) == list(range(40, 48))
        on_its_way.joined()
        assert buffer.stats.segments == 5
    finally:
        await buffer.stop()


def test_full_batches_commit_early_and_wait_only_for_writes_on_their_way():
    asyncio.run(_early_commits())
