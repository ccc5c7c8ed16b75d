"""engine/backlog.py: a WAL trigger's pending segments, rows in memory up to a limit, the rest in the WAL."""

from __future__ import annotations

import pyarrow as pa

from lakeflux.engine.backlog import Backlog, tables_nbytes
from lakeflux.engine.ports import SegmentInfo, SegmentTable


def tables(rows: int) -> list[SegmentTable]:
    return [SegmentTable("m", pa.table({"v": list(range(rows)), "time": list(range(rows))}), ())]


def add(backlog: Backlog, seq: int, rows: int) -> None:
    found = tables(rows)
    backlog.add(seq, seq * 10, found, rows, tables_nbytes(found))


def test_rows_stay_in_memory_up_to_the_limit_and_the_rest_is_left_to_the_store():
    size = tables_nbytes(tables(10))
    backlog = Backlog(memory_limit=2 * size)
    for seq in range(1, 5):
        add(backlog, seq, 10)
    entries = backlog.front(10)
    assert [entry.tables is not None for entry in entries] == [True, True, False, False]
    assert (backlog.memory, backlog.rows, len(backlog)) == (2 * size, 40, 4)
    assert backlog.take(entries[0]) and not backlog.take(entries[2])  # only the oldest can be taken
    assert backlog.memory == size
    add(backlog, 5, 10)  # room again: held in memory
    assert backlog.front(10)[-1].tables is not None
    assert (backlog.first_seq(), backlog.oldest_committed_ns()) == (2, 20)


def test_listed_segments_merge_in_commit_order_with_unknown_rows():
    backlog = Backlog(memory_limit=10**9)
    add(backlog, 7, 3)
    backlog.add_stored([SegmentInfo(3, 100, 30), SegmentInfo(5, 100, 50)])
    assert [(entry.seq, entry.rows) for entry in backlog.front(10)] == [(3, None), (5, None), (7, 3)]
    assert backlog.rows == 3
    first = backlog.first()
    assert first is not None
    backlog.loaded(first, tables(4))
    assert backlog.rows == 7 and first.rows == 4


def test_dropping_through_a_segment_forgets_its_rows_and_memory_even_mid_read():
    backlog = Backlog(memory_limit=10**9)
    backlog.add_stored([SegmentInfo(1, 100, 10)])
    for seq in (2, 3, 4):
        add(backlog, seq, 5)
    being_read = backlog.first()
    assert being_read is not None
    assert backlog.drop_through(3) == (3, 10)  # the stored one's rows were not known yet
    backlog.loaded(being_read, tables(50))  # its read finished after the drop: nothing is counted
    assert (len(backlog), backlog.rows, backlog.memory) == (1, 5, tables_nbytes(tables(5)))
