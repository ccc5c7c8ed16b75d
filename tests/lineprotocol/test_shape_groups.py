"""Grouping lines by shape in the native scanner: found by a hash of the keys and field types,
confirmed by comparing bytes, so only the measurement, key bytes or field types tell shapes apart.
"""

from __future__ import annotations

import pytest
from lp_helpers import both, native_groups, rows


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
