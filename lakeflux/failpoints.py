"""Named crash points for crash tests: with LAKEFLUX_FAILPOINT=<name> the process SIGKILLs itself there.

Crash tests arm one point in a real server process to kill it at an exact step of a protocol
(e.g. between a snapshot's manifest commit and its file swap); unarmed, a point costs one compare.
Points are named `<protocol>.<step just done>`: `snapshot.staged|committed|copying|swapped|cleaned`, and
for a snapshot that compacts overlapping files also `compaction.<those>` plus `compaction.trashed`
(replaced files copied under deleted/) and `compaction.retiring` (first replaced file deleted);
`snapshot.published` / `compaction.published` after the Delta commits, before replaced files are deleted.
Retention and deletes: `remove.committed` (manifest committed), `remove.published` (Delta commits made),
`remove.swapped`. An ingest node retiring files a cluster compaction absorbed: `retire.trashed|committed|
published|retiring|swapped`. `publish.table`: after each table's Delta commit when a change touches several. A WAL
trigger's delivery (engine/waltrigger.py): `engine.called` (a call returned; its write-back not yet sent),
`engine.written_back` (the write-back committed; the cursor not yet written), `engine.cursor_saved`.

Two-process tests pause a point instead: with LAKEFLUX_FAILPOINT_PAUSE=<name> and LAKEFLUX_FAILPOINT_GATE=<dir>
the process creates `<dir>/<name>.paused` there and waits until `<dir>/<name>.resume` exists (e.g. a snapshot
held between staging and commit while a second server starts on the same node id).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_ARMED = os.environ.get("LAKEFLUX_FAILPOINT") or None
_PAUSE = os.environ.get("LAKEFLUX_FAILPOINT_PAUSE") or None
_GATE = os.environ.get("LAKEFLUX_FAILPOINT_GATE") or None


def failpoint(name: str) -> None:
    """SIGKILL this process if the crash test armed `name`, wait at it if a test paused it; otherwise do
    nothing."""
    if _ARMED is not None and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if _PAUSE is not None and _PAUSE == name and _GATE is not None:
        _pause(Path(_GATE), name)


def _pause(gate: Path, name: str) -> None:
    """Announce the pause, then wait for the test to open the gate (it stays open for later passes)."""
    (gate / f"{name}.paused").touch()
    resume = gate / f"{name}.resume"
    while not resume.exists():
        time.sleep(0.02)
