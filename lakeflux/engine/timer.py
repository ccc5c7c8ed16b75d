"""Waiting for scheduled fire times, with the clock injected so schedule tests never sleep.

A `Timer` tells the time and blocks until a moment arrives or the caller is told to stop. The real
one waits on the stop event (so stopping a trigger wakes it at once); tests pass a manual timer
whose time only moves when the test says so.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

# Wake at least this often while waiting, so a wall-clock step (NTP) is noticed within a second.
_MAX_WAIT_S = 1.0


class Timer(Protocol):
    def now_ns(self) -> int:
        """Wall-clock time in nanoseconds since the epoch."""
        ...

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        """Block until `now_ns() >= t_ns` (True) or until `stop` is set (False)."""
        ...


class SystemTimer:
    """The real clock: waits on the stop event, so a stop interrupts the wait."""

    def now_ns(self) -> int:
        return time.time_ns()

    def wait_until(self, t_ns: int, stop: threading.Event) -> bool:
        """Block until the wall clock reaches `t_ns` (True) or `stop` is set (False)."""
        while True:
            if stop.is_set():
                return False
            remaining = (t_ns - time.time_ns()) / 1e9
            if remaining <= 0:
                return True
            if stop.wait(min(remaining, _MAX_WAIT_S)):
                return False


SYSTEM_TIMER = SystemTimer()
