"""Native-path cases around many tags or fields, record ranges, escaped tag values and booleans.

Each body goes through both parsers (`both` insists they agree); the cases aim at the shortcuts the
fast path takes: one search per body for each record's separators, spaces and awkward bytes (relying
on records tiling the body), a 16-bit sort key for small layouts, backslashes dropped by search.
"""

from __future__ import annotations

import pytest
from lp_helpers import both, rows


def wide(tags: int, fields: int, time: int) -> str:
    tag_part = "".join(f",t{i}=v{i}" for i in range(tags))
    return f"m{tag_part} " + ",".join(f"f{i}={i}i" for i in range(fields)) + f" {time}"


@pytest.mark.parametrize(
    ("lines", "bad"),
    [
        ([wide(300, 1, 1), wide(1, 1, 2), wide(300, 1, 3)], 0),  # tags beyond the 16-bit sort key
        ([wide(1, 200, 1), wide(2, 2, 2), wide(1, 200, 3)], 0),  # fields beyond it
        ([wide(254, 127, 1), wide(0, 1, 2), wide(254, 127, 3)], 0),  # the largest layout that fits it
        ([wide(2, 2, 1), "m,a=1 =2 2", wide(2, 2, 3), "m,a=1 b=2 3 4", wide(1, 1, 5)], 2),  # misfits
    ],
    ids=["many tags", "many fields", "largest small key", "mixed with misfits"],
)
def test_layouts_of_every_size_agree(lines: list[str], bad: int) -> None:
    result = both("\n".join(lines))
    assert len(result.errors) == bad
    assert len(rows(result, "m")) == len(lines) - bad


@pytest.mark.parametrize(
    "body",
    [
        "m,a=1 v=1 1\r\nm,a=2 v=2 2\r\nm,a=3 v=3 3",  # carriage returns between records
        'm,a=1 s="x\ny",v=1 1\nm,a=2 v=2 2\nm,a=3 s="p\nq\nr" 3\nm,a=4 v=4 4',  # multi-line records
        "m,a=1 v=1 1\nm,a=x\\y v=2 2\nm,a=3 v=3 3",  # a lone backslash: that record is not simple
        "m,a=1 v=1 1\nm,a=2\tv=2 2\nm,a=3 v=3 3\n\n\nm,a=4 v=4 4\n",  # a tab, empty lines
        "m,a=1 v=1 1\n# c,x=1 v=2 2\n m,a=3 v=3 3\nm,a=4 v=4",  # comment, leading blank, no timestamp
    ],
    ids=["crlf", "multi-line strings", "backslash", "tab and blank lines", "comments"],
)
def test_record_ranges_agree(body: str) -> None:
    both(body)


def test_escaped_tag_values_in_many_tokens() -> None:
    lines = [
        "m,a=x\\ y,b=plain v=1 1",
        "m,a=plain,b=\\,lead v=2 2",
        "m,a=trail\\=,b=\\ \\,\\= v=3 3",
        "m,a=plain,b=plain v=4 4",
        "m,a=mid\\ dle\\ twice,b=z v=5 5",
    ]
    result = both("\n".join(lines))
    assert [(row["a"], row["b"]) for row in rows(result, "m")] == [
        ("x y", "plain"), ("plain", ",lead"), ("trail=", " ,="), ("plain", "plain"), ("mid dle twice", "z"),
    ]


SPELLINGS = ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]
NEAR_MISSES = ["tru", "truE", "tRUE", "fals", "falsE", "yes", "trues", "Tt", "ft", "FALSEE"]


@pytest.mark.parametrize("value", SPELLINGS + NEAR_MISSES)
def test_boolean_spellings(value: str) -> None:
    result = both(f"m v={value} 1\nm v={value} 2")
    if value in SPELLINGS:
        assert [row["v"] for row in rows(result, "m")] == [value[0] in "tT"] * 2
    else:
        assert not result.tables and len(result.errors) == 2
