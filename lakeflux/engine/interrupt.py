"""Raising `KeyboardInterrupt` inside a running plugin call (CONTRACT §1.1 Δ: disable, delete,
update and shutdown interrupt the running call).

CPython can post an exception to another thread (`PyThreadState_SetAsyncExc`); it is raised at that
thread's next bytecode, so a call blocked inside C code (a socket read, `time.sleep`) sees it when
that returns. `CallGuard` brackets the plugin call: an interrupt is posted only while the thread is
inside the bracket, and leaving the bracket cancels one posted too late, so runtime code outside
the bracket never receives it.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Two prototypes of the same C function: one posts an exception type, one passes NULL to clear.
_post_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


def _post(thread_id: int, exc_type: type[BaseException]) -> None:
    _post_exc(thread_id, exc_type)


def _cancel(thread_id: int) -> None:
    _clear_exc(thread_id, None)


class CallGuard:
    """Tracks which threads are inside a plugin call of one trigger, so they can be interrupted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside: set[int] = set()

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Bracket one plugin call made on the current thread."""
        me = threading.get_ident()
        with self._lock:
            self._inside.add(me)
        try:
            yield
        finally:
            with self._lock:
                self._inside.discard(me)
                _cancel(me)

    def interrupt(self) -> int:
        """Raise KeyboardInterrupt in every call now running; returns how many were interrupted."""
        with self._lock:
            for thread_id in self._inside:
                _post(thread_id, KeyboardInterrupt)
            return len(self._inside)

    def interrupt_thread(self, thread_id: int) -> bool:
        """Raise KeyboardInterrupt in one thread's running call (a timeout); False if it already ended."""
        with self._lock:
            if thread_id not in self._inside:
                return False
            _post(thread_id, KeyboardInterrupt)
            return True

    @property
    def busy(self) -> bool:
        """True while some thread is inside a call."""
        with self._lock:
            return bool(self._inside)
