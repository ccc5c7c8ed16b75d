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
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("LAKEFLUX_FAILPOINT") or None


def failpoint(name: str) -> None:
    """SIGKILL this process if the crash test armed `name`; otherwise do nothing."""
    if _ARMED is not None and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
