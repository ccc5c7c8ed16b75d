"""WAL trigger cursors: the last segment a trigger finished, persisted so delivery is at-least-once.

One small JSON object per trigger (`store/paths.trigger_cursor`), replaced after every finished
segment. After a restart the trigger is first given every segment after its cursor.
"""

from __future__ import annotations

import logging

import orjson

from ..errors import Invalid, LakefluxError, NotFound
from ..store import paths
from ..store.base import ObjectStore

log = logging.getLogger("lakeflux.engine")


class CursorStore:
    """Reads and writes trigger cursors in the object store."""

    def __init__(self, store: ObjectStore, node: str) -> None:
        self._store = store
        self._node = node
        self._legacy_gone: set[str] = set()

    def get(self, db: str, trigger: str) -> int | None:
        """The last finished segment of the trigger, or None if it never recorded one."""
        try:
            raw = self._store.get(paths.trigger_cursor(self._node, db, trigger))
        except NotFound:
            # A long name's cursor may sit where an earlier version put it (until the next put moves it).
            legacy = paths.legacy_trigger_cursor(self._node, db, trigger)
            if legacy is None:
                return None
            try:
                raw = self._store.get(legacy)
            except (NotFound, Invalid):
                return None
        try:
            seq = orjson.loads(raw)["seq"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable cursor of trigger %s/%s; starting at the WAL head", db, trigger)
            return None
        return int(seq)

    def put(self, db: str, trigger: str, seq: int) -> None:
        """Record `seq` as finished; returns once the cursor is durable. Failures are logged, not raised:
        a stale cursor only means a segment is delivered again after a restart."""
        try:
            self._store.put(paths.trigger_cursor(self._node, db, trigger), orjson.dumps({"seq": seq}))
        except LakefluxError as exc:
            log.warning("could not save cursor %d of trigger %s/%s: %s", seq, db, trigger, exc)
            return
        self._delete_legacy(db, trigger)

    def delete(self, db: str, trigger: str) -> None:
        """Forget the trigger's cursor (it was deleted); durable on return."""
        try:
            self._store.delete(paths.trigger_cursor(self._node, db, trigger))
        except LakefluxError as exc:
            log.warning("could not delete cursor of trigger %s/%s: %s", db, trigger, exc)
        self._delete_legacy(db, trigger)

    def _delete_legacy(self, db: str, trigger: str) -> None:
        """Remove the cursor an earlier version kept under another key (once per trigger and process)."""
        legacy = paths.legacy_trigger_cursor(self._node, db, trigger)
        if legacy is None or legacy in self._legacy_gone:
            return
        self._legacy_gone.add(legacy)
        try:
            self._store.delete(legacy)
        except LakefluxError as exc:
            log.warning("could not delete the old cursor %s of trigger %s/%s: %s", legacy, db, trigger, exc)
