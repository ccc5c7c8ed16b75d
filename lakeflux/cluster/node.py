"""A node's cluster work in the background: its registry heartbeat, and every other periodic job a role
adds (each on its own thread, so a slow store call of one never delays another).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .registry import Registry

log = logging.getLogger("lakeflux.cluster")


class Periodic:
    """Runs `job` every `interval` seconds on a daemon thread until stopped; a failing run is logged and the
    next one happens on time."""

    def __init__(self, name: str, interval: float, job: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._job = job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lakeflux-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> None:
        try:
            self._job()
        except Exception:
            log.exception("%s failed; retried in %g s", self.name, self.interval)

    def stop(self) -> None:
        """Stop and wait for a run in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


class ClusterNode:
    """This node in its cluster: registered at `start`, heartbeating, marked stopped at `stop`."""

    def __init__(self, registry: Registry, heartbeat_interval: float) -> None:
        self.registry = registry
        self.jobs = [Periodic("heartbeat", heartbeat_interval, registry.heartbeat)]
        self._at_start: list[Callable[[], object]] = []
        self._at_stop: list[Callable[[], object]] = []

    def add_job(self, name: str, interval: float, job: Callable[[], object], *, at_start: bool = False,
                stop: Callable[[], object] | None = None) -> Periodic:
        """Run `job` every `interval` seconds once started (and once during `start` with `at_start`);
        `stop` runs at `stop`, after the jobs ended. Before `start` only."""
        periodic = Periodic(name, interval, job)
        self.jobs.append(periodic)
        if at_start:
            self._at_start.append(periodic.run_once)
        if stop is not None:
            self._at_stop.append(stop)
        return periodic

    def start(self) -> None:
        """Write this node's record (durable on return), run the jobs due at start, then start the
        periodic jobs."""
        self.registry.heartbeat()
        for run in self._at_start:
            run()
        for job in self.jobs:
            job.start()

    def stop(self) -> None:
        """Stop the jobs, then mark this node stopped in the registry (durable on return; a failure is
        logged: the record then shows the node unresponsive after a few heartbeats)."""
        for job in self.jobs:
            job.stop()
        for stop in self._at_stop:
            stop()
        try:
            self.registry.heartbeat(stopped=True)
        except Exception as e:
            log.warning("could not mark node %s stopped in the registry: %s", self.registry.record.node_id, e)
