"""What queries see while a snapshot swaps files in: a consistent view, and no file deleted under a reader.

A query plans under `read` (it captures the buffered rows and the manifest's file list, and DataFusion
lists the files it scans), then takes a `pin` on the view it planned with and lets go of `read`; it holds
the pin until it closes, while DataFusion reads the files lazily. A snapshot swap switches the view under
`write`: it waits only for queries still planning, never for running ones, and new queries wait only for
the switch. Files the switch retired are deleted through `after_readers`, once every query pinned to an
older view has closed, so a running query never sees a file vanish and a new one never waits for an old one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("lakeflux.snapshot")


class ViewLock:
    """Planning (read) against switching the view (write), plus pins on views that queries still read.

    Writers are preferred so a steady stream of planning queries cannot starve a swap. Every write moves
    the view to a new epoch; a pin counts against the epoch it was taken in.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._epoch = 0
        self._pins: Counter[int] = Counter()  # epoch -> queries still reading that view
        self._deferred: list[tuple[int, Callable[[], None]]] = []  # (run once no pin is older than this, what)

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._epoch += 1
                self._cond.notify_all()

    def pin(self) -> Callable[[], None]:
        """Keep the current view's files (call under `read`) until the returned release is called; releasing
        twice is harmless."""
        with self._cond:
            epoch = self._epoch
            self._pins[epoch] += 1
        released = threading.Lock()

        def release() -> None:
            if released.acquire(blocking=False):
                self._unpin(epoch)

        return release

    def after_readers(self, fn: Callable[[], None]) -> bool:
        """Run `fn` once every query pinned before the last write has released its pin: here and now (True)
        when none is, else later in the thread of the last such release (False). `fn` handles its errors."""
        with self._cond:
            if not any(epoch < self._epoch for epoch in self._pins):
                due = True
            else:
                self._deferred.append((self._epoch, fn))
                due = False
        if due:
            fn()
        return due

    def pinned(self) -> int:
        """Queries holding a pin (diagnosis and tests)."""
        with self._cond:
            return sum(self._pins.values())

    def _unpin(self, epoch: int) -> None:
        with self._cond:
            self._pins[epoch] -= 1
            if self._pins[epoch] <= 0:
                del self._pins[epoch]
            oldest = min(self._pins, default=None)
            due = [fn for at, fn in self._deferred if oldest is None or oldest >= at]
            self._deferred = [(at, fn) for at, fn in self._deferred if not (oldest is None or oldest >= at)]
        for fn in due:
            try:
                fn()
            except Exception:  # a query's close must not fail because of a snapshot's cleanup
                log.exception("deferred cleanup after the last query of an older view failed")
