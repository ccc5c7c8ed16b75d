"""Fencing (issue 7, DESIGN §3, CONTRACT §7): two real servers with the same node id on one file store.
The one that finds its next WAL slot taken answers every write with 503 naming the fencing, and must not
touch the store again: here its policy would snapshot right after it is fenced (10 segments are due),
which used to commit a manifest covering the other server's segment without its rows (lost on restart).
"""

from __future__ import annotations

import json

import pytest

from lakeflux.testing.chaos import DB, STORM_SERVE_ARGS, Ledger, Writers, check
from lakeflux.testing.process import ServerProcess

ARGS = (*STORM_SERVE_ARGS, "--object-store", "file", "--node-id", "shared")
# The second snapshots after 20 segments (gen1 1m / 3s), the first after 10: the first's fenced flush
# is its 10th segment, so its snapshot policy fires right then.
SECOND_ARGS = (*ARGS, "--wal-flush-interval", "3s")


def writers_for(srv: ServerProcess, ledger: Ledger, batches: int) -> None:
    Writers(lambda: srv.url, ledger, writers=1, new_table_every=0,
            max_batches=len(ledger.sent) + batches).start().join()


@pytest.mark.slow
def test_second_server_same_node_id(tmp_path):
    data = tmp_path / "data"
    ledger = Ledger(200)
    first = ServerProcess(data, *ARGS).start()
    second = None
    try:
        writers_for(first, ledger, 9)  # segments 0-8; a snapshot is due at the 10th
        assert ledger.statuses["204"] == 9
        second = ServerProcess(data, *SECOND_ARGS).start()
        writers_for(second, ledger, 1)  # the second takes slot 9 first
        assert ledger.statuses["204"] == 10, (ledger.statuses, ledger.unexpected)
        fenced = Writers(lambda: first.url, ledger, writers=1, new_table_every=0)
        for _ in range(3):
            out = fenced.write_one("t0")
            assert out.status == 503, out
            assert "Retry-After" in out.headers
            error = json.loads(out.body)["error"]
            assert "fenced" in error and "another server with node id 'shared'" in error, error
        writers_for(second, ledger, 25)  # the winner keeps writing and snapshotting
        assert ledger.statuses["204"] == 35
    finally:
        first.stop()
        if second is not None:
            second.stop()
    third = ServerProcess(data, *SECOND_ARGS).start()
    try:
        result = check(third.url, ledger)
        assert result.problems == [], result.problems
        assert result.ok and result.acked_lines == 35 * 200
        assert third.url and DB
    finally:
        third.stop()
