"""buffer/tablefiles.by_day: a snapshot's rows cut into one time-sorted part per UTC day."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakeflux.buffer.tablefiles import NS_PER_DAY, by_day

DAY0 = 19_700 * NS_PER_DAY  # 2023-12-09


def rows(times: list[int]) -> pa.Table:
    return pa.table({"host": [f"h{i}" for i in range(len(times))], "time": pa.array(times, pa.timestamp("ns"))})


def split(data: pa.Table) -> list[tuple[str, list[int], list[str]]]:
    return [(key.split("date=")[1].split("/")[0], part.column("time").cast(pa.int64()).to_pylist(),
             part.column("host").to_pylist()) for key, part in by_day("n", "db", "t", 7, data)]


@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "unsorted"])
def test_each_day_is_one_sorted_part_with_its_rows(shuffle: bool) -> None:
    times = [DAY0 - 1, DAY0, DAY0 + 5, DAY0 + NS_PER_DAY - 1, DAY0 + 3 * NS_PER_DAY]  # no rows on day 2
    order = [3, 0, 4, 1, 2] if shuffle else list(range(len(times)))
    data = rows([times[i] for i in order]).set_column(0, "host", pa.array([f"h{i}" for i in order]))
    assert split(data) == [
        ("2023-12-08", [DAY0 - 1], ["h0"]),
        ("2023-12-09", [DAY0, DAY0 + 5, DAY0 + NS_PER_DAY - 1], ["h1", "h2", "h3"]),
        ("2023-12-12", [DAY0 + 3 * NS_PER_DAY], ["h4"]),
    ]


def test_sorted_rows_are_cut_into_slices_not_copies() -> None:
    data = rows([int(t) for t in np.arange(DAY0, DAY0 + 2 * NS_PER_DAY, NS_PER_DAY // 4)])
    parts = [part for _, part in by_day("n", "db", "t", 7, data)]
    assert [p.num_rows for p in parts] == [4, 4]
    source = data.column("time").chunk(0).buffers()[1].address
    assert parts[1].column("time").chunk(0).buffers()[1].address == source  # a view of the same buffer


def test_before_1970_and_one_row() -> None:
    assert split(rows([-1])) == [("1969-12-31", [-1], ["h0"])]
    assert split(rows([-NS_PER_DAY - 1, -5])) == [("1969-12-30", [-NS_PER_DAY - 1], ["h0"]),
                                                  ("1969-12-31", [-5], ["h1"])]
