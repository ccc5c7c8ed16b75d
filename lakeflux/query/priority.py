"""Queries run at a lower CPU priority than writes.

On a machine with few cores, a handful of runaway queries (recursive CTEs, huge cross joins) kept
DataFusion's threads busy on every core, and the threads parsing and committing writes got a fair share
at best: write latency grew with every query running. Linux schedules each thread by its own nice value,
and a process may lower its own threads' priority without privileges, so query work is moved to
QUERY_NICENESS: the query pool's threads (planning, formatting) lower themselves when they start, and
DataFusion's runtime threads (named `tokio-r…` by tokio; created by the engine on first use, and threads
they start inherit the value) are lowered when a query starts. Writes, the event loop and WAL commits keep
the default priority, so a busy query engine takes only the CPU writes leave idle. Elsewhere (no
/proc/self/task, or setpriority refused) nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import threading

# Nice 10 against 0: the Linux scheduler weighs the threads about 1 to 10.
QUERY_NICENESS = 10
_ENGINE_THREAD_PREFIX = "tokio-r"
_lowered: set[int] = set()
_lock = threading.Lock()


def lower_this_thread() -> None:
    """Give the calling thread the query priority (a query pool's thread initializer)."""
    _lower(threading.get_native_id())


def lower_engine_threads() -> None:
    """Give DataFusion's runtime threads the query priority (each thread once; cheap after that)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return
    for name in tids:
        tid = int(name)
        if tid in _lowered:
            continue
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read()
        except OSError:
            continue
        if comm.startswith(_ENGINE_THREAD_PREFIX):
            _lower(tid)


def _lower(tid: int) -> None:
    with _lock:
        if tid in _lowered:
            return
        _lowered.add(tid)
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), QUERY_NICENESS))
