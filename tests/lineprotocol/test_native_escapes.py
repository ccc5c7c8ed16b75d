"""Escapes and plain quoted strings on the native path (lineprotocol/_scanner.c).

Every body is checked on both parsers; the plain cases also check that the scanner took every
line (no record reached the exact parser), so a regression to the slow path is visible here.
"""

from __future__ import annotations

import pytest
from lp_helpers import both, exact_records, rows

from lakeflux.lineprotocol.exact import STRING_LIMIT

PLAIN = [
    'm,t=a f="a b,c=d e",g=1i 5',
    'm f="",g=1 5',
    'm f="x",g="y=1,z=2" 5',
    'm f="#not a comment ✓" 5',
    "my\\ m\\,x,t\\ k\\=1=v\\ a\\,l\\=ue f\\ k\\,\\==1i 7",
    "a\\=b,t=x f=1 1",
    "m,t=v\\  f=1 1",
    'docker\\ container,name=web\\=1 status="up 5 minutes",cpu=0.5 9',
]


@pytest.mark.parametrize("line", PLAIN)
def test_plain_escapes_and_strings_take_the_native_path(line: str) -> None:
    body = "\n".join([line] * 3)
    assert exact_records(body) == []


@pytest.mark.parametrize(
    "body",
    [
        'm,t=a"b f=1 1',  # a quote in a tag value is a literal byte
        'm f="a"b 1',  # bytes after the closing quote
        'm f="a\\ b" 1',  # an escape inside a string
        'm f="a\\"b" 1',
        'm f="a\\\\" 1',
        'm f="open\nstill open" 1\nm f=2 2',  # a string across lines
        'm a,b f=1,x="y=z=w"\nm f="q" 2\nm f=3 3',  # the quote after `=` opens nothing: more `,` than `=`
        'm,t=a f=x"y",g=1 1\nm f=2 2',
        '# m f="x\nm f=1 1',
        'm f="a" "b" 1',
        'm "f"=1 1',
        'm\tf="a b" 1',
        "m,t=a\\\\,u=b f=1 1",
        "m,t=a\\ f=1",
        "m,t=a\\b f=1 1",
        "m f=1\\ 2",
        'm f="a",g="b\n' * 3,
    ],
)
def test_awkward_bodies_agree(body: str) -> None:
    both(body)


def test_string_values_with_separators() -> None:
    result = both('m,t=a f="a b,c=d e",g="x" 5\nm,t=b f="",g="y" 6')
    assert rows(result, "m") == [{"t": "a", "f": "a b,c=d e", "g": "x", "time": 5},
                                 {"t": "b", "f": "", "g": "y", "time": 6}]


def test_escaped_tag_values_are_unescaped_per_row() -> None:
    result = both("m,t=a\\ b f=1 1\nm,t=c\\,d f=2 2\nm,t=e\\=f f=3 3\nm,t=plain f=4 4")
    assert [row["t"] for row in rows(result, "m")] == ["a b", "c,d", "e=f", "plain"]


def test_string_length_limit_on_the_native_path() -> None:
    at_limit = "x" * STRING_LIMIT
    result = both(f'm f="{at_limit}" 1\nm f="{at_limit}y" 2\nm f="z" 3')
    assert [row["time"] for row in rows(result, "m")] == [1, 3]
    assert [error.line_number for error in result.errors] == [2]
