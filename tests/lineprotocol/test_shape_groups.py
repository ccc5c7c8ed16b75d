"""Grouping lines by shape in the native scanner: found by a hash of the keys and field types,
confirmed by comparing bytes, so only the measurement, key bytes or field types tell shapes apart;
then, as the parser asks, a measurement's shapes merged into one group where their keys agree.
"""

from __future__ import annotations

import pytest
from lp_helpers import assert_same, both, native_groups, rows

from lakeflux.lineprotocol import parse, parse_exact
from lakeflux.model import ColumnKind, Precision


def bucket_groups(body: str) -> list[list[int]]:
    """The shape groups of the body as 0-based line indices."""
    return [[number - 1 for number in group] for group in native_groups(body)]


CASES = {  # name: (lines, expected groups of line indices)
    "one shape": (["m,host=a v=1 1", "m,host=b v=2 2", "m,host=c v=3 3"], [[0, 1, 2]]),
    "ninth key byte": (["m,abcdefghX=a v=1 1", "m,abcdefghY=a v=1 2", "m,abcdefghX=b v=2 3"], [[0, 2], [1]]),
    "eighth key byte": (["m,abcdefgX=a v=1 1", "m,abcdefgY=a v=1 2", "m,abcdefgX=b v=2 3"], [[0, 2], [1]]),
    "key length": (["m,host=a v=1 1", "m,hosts=a v=1 2", "m,host=b v=2 3"], [[0, 2], [1]]),
    "measurement": (["cpu,host=a v=1 1", "cpx,host=a v=1 2", "cpu,host=b v=2 3"], [[0, 2], [1]]),
    "field type only": (["m,host=a v=1 1", "m,host=a v=1i 2", "m,host=b v=t 3", "m,host=c v=2 4"],
                        [[0, 3], [1], [2]]),
    "second field key": (["m,h=a v=1,longfieldname1=2 1", "m,h=a v=1,longfieldname2=2 2",
                          "m,h=b v=1,longfieldname1=3 3"], [[0, 2], [1]]),
    "many shapes": ([f"m,host=a k{i % 6}=1 {i}" for i in range(14)],
                                         [[k, k + 6, k + 12][: 3 if k < 2 else 2] for k in range(6)]),
}


@pytest.mark.parametrize(("lines", "expected"), CASES.values(), ids=CASES.keys())
def test_groups_split_exactly_by_shape(lines: list[str], expected: list[list[int]]) -> None:
    body = "\n".join(lines)
    assert bucket_groups(body) == expected
    both(body)


def test_interleaved_shapes_keep_their_rows_and_line_numbers() -> None:
    lines = [f"{'cpu' if i % 3 else 'mem'},host=h{i % 5} {'used' if i % 2 else 'free'}={i}i {i}" for i in range(40)]
    result = both("\n".join(lines))
    assert [row["time"] for row in rows(result, "mem")][:3] == [0, 3, 6]


# --- merging: one group per measurement where its shapes agree (what the parser asks the scanner for) ---
MERGE_CASES = {  # name: (lines, expected groups of line indices with merging)
    "optional field": (["disk,h=a free=1,inodes=2i 1", "disk,h=b free=2 2", "disk,h=c free=3,inodes=4i 3"],
                       [[0, 1, 2]]),
    "tags in another order": (["m,a=1,b=2 v=1 1", "m,b=2,a=1 v=2 2"], [[0, 1]]),
    "two measurements": (["cpu,h=a v=1 1", "mem,h=a u=1i 2", "cpu,h=b v=2,w=1 3", "mem,h=b u=2i,f=1 4"],
                         [[0, 2], [1, 3]]),
    # The third shape disagrees with the first on v: it and every later shape keep groups of their own.
    "kind disagrees": (["m v=1 1", "m w=1i 2", "m v=1i 3", "m w=2i 4", "m x=1 5"], [[0, 1, 3], [2], [4]]),
    "tag and field": (["m,x=a v=1 1", "m x=1 2", "m,x=b v=2 3"], [[0, 2], [1]]),
}


@pytest.mark.parametrize(("lines", "expected"), MERGE_CASES.values(), ids=MERGE_CASES.keys())
def test_a_measurements_shapes_merge_where_they_agree(lines: list[str], expected: list[list[int]]) -> None:
    body = "\n".join(lines)
    assert [[n - 1 for n in group] for group in native_groups(body, merge=True)] == expected
    both(body)


def test_merged_rows_stay_in_line_order_with_absent_values_null() -> None:
    lines = []
    for i in range(300):
        extra = f',path="/d{i}",ro=t,n={i}u' if i % 7 else ""
        tag = f",dev=d{i % 4}" if i % 5 else ""
        lines.append(f"disk,host=h{i % 3}{tag} free={i}i{extra} {i}")
    result = both("\n".join(lines))
    table = rows(result, "disk")
    assert [row["time"] for row in table] == list(range(300))
    assert table[7]["path"] is None and table[7]["ro"] is None and table[7]["n"] is None
    assert table[8] == {"host": "h2", "dev": "d0", "free": 8, "path": "/d8", "ro": True, "n": 8, "time": 8}
    assert table[10]["dev"] is None and table[11]["dev"] == "d3"
    # The first line's columns, then time, then the others as they first appear (the exact parser's rule).
    assert list(result.tables["disk"].columns) == ["host", "free", "time", "dev", "path", "ro", "n"]


def test_a_merged_group_rejected_by_the_catalog_is_checked_line_by_line() -> None:
    # Only the lines with `n` conflict with the catalog's kind for it; the others are written.
    known = {"disk": {"n": ColumnKind.FLOAT64}}
    body = "\n".join(["disk,h=a free=1i 1", "disk,h=b free=2i,n=1i 2", "disk,h=c free=3i 3", "disk,h=d free=4i,n=2i 4"])
    fast = parse(body.encode(), precision=Precision.NANOSECOND, default_time_ns=0, known=known)
    exact = parse_exact(body.encode(), precision=Precision.NANOSECOND, default_time_ns=0, known=known)
    assert_same(fast, exact)
    assert [e.line_number for e in fast.errors] == [2, 4]
    assert [row["h"] for row in fast.tables["disk"].table.to_pylist()] == ["a", "c"]
