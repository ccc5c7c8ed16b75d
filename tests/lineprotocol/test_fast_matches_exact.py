"""Property: the fast parser and the exact parser return identical results for any body.

Bodies are built from a few line shapes (so the fast path sees groups), with values of every type,
names needing escapes, quoted strings with separators and raw newlines, odd timestamps, comments,
blank lines, CRLF, and random single-character damage (so invalid lines and fallbacks are covered).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lp_helpers import assert_same

from lakeflux.lineprotocol import parse, parse_exact
from lakeflux.model import Precision

PLAIN_NAMES = ["cpu", "mem", "m", "host", "f", "g", "value", "region", "t"]
ODD_NAMES = ["time", "a b", "x,y", "k=v", "é✓", 'q"', "ba\\ck", "#h", "-1", "1.5"]
NAMES = PLAIN_NAMES + ODD_NAMES
names = st.sampled_from(PLAIN_NAMES * 4 + ODD_NAMES)
GARBAGE = ["1.", ".5", "1e", "tru", "+1", "inf", "nan", "1.2.3", "--1", "0x10", "1_0", "12a", "-", "1e5i", "٣",
           "9" * 25, "1" + "0" * 400, "-0", "007", "1E-7", '"', "t,", "ab=c"]  # fmt: skip
DAMAGE = [" ", ",", "=", '"', "\\", "\n", "\t", "x", "#", "\r", "-", "."]


def escape(name: str, measurement: bool) -> str:
    name = name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")
    return name if measurement else name.replace("=", "\\=")


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


string_text = st.text(alphabet=st.sampled_from(list("ab ,=\\\"\n\té✓#")), max_size=12)

VALUE_KINDS = ["float", "int", "uint", "bool", "string", "decimal", "garbage"]
# Mostly valid, unquoted values: those are what the fast path takes.
kinds = st.sampled_from(["float", "int", "uint", "bool", "decimal"] * 4 + ["string", "string", "garbage"])


def value_for(kind: str) -> st.SearchStrategy[str]:
    return {
        "float": st.floats(allow_nan=False, allow_infinity=False).map(repr),
        "int": st.one_of(st.integers(-1000, 1000), st.integers(-(2**63) - 3, 2**63 + 3)).map(lambda i: f"{i}i"),
        "uint": st.one_of(st.integers(0, 1000), st.integers(-3, 2**64 + 3)).map(lambda u: f"{u}u"),
        "bool": st.sampled_from(["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"]),
        "string": string_text.map(quoted),
        "decimal": st.one_of(st.integers(-(10**20), 10**20).map(str),
                             st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)),
        "garbage": st.sampled_from(GARBAGE),
    }[kind]


timestamps = st.one_of(
    st.none(),
    st.none(),
    st.integers(1_600_000_000_000_000_000, 1_800_000_000_000_000_000).map(str),
    st.integers(-(2**63) - 2, 2**63 + 2).map(str),
    st.integers(-(10**16), 10**16).map(str),
    st.sampled_from(["abc", "1.5", "-", "0", "1700000000", "1700000000000000000", "-9223372036854775808"]),
)


@st.composite
def shape(draw) -> tuple[str, list[str], list[tuple[str, str]]]:
    """A measurement, tag keys and (field key, value kind) pairs, already escaped."""
    measurement = escape(draw(names), measurement=True)
    keys = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    if draw(st.integers(0, 9)) == 0:
        keys.append(draw(st.sampled_from(keys)))  # a duplicate key: a per-line error
    tag_count = draw(st.integers(0, min(3, len(keys) - 1)))
    tags = [escape(k, False) for k in keys[:tag_count]]
    fields = [(escape(k, False), draw(kinds)) for k in keys[tag_count:]]
    return measurement, tags, fields


@st.composite
def line(draw, shapes: list) -> str:
    measurement, tags, fields = draw(st.sampled_from(shapes))
    tag_values = st.one_of(st.sampled_from(["a", "b", "server01", "x=y", "é", "end\\\\"]),
                           names.map(lambda v: escape(v, False)))
    text = measurement + "".join(f",{key}={draw(tag_values)}" for key in tags)
    text += draw(st.sampled_from([" ", " ", " ", "  ", "\t"]))
    # Mostly keep the shape's kinds; sometimes switch one, to provoke type conflicts.
    chosen = [draw(st.sampled_from(VALUE_KINDS)) if draw(st.integers(0, 19)) == 0 else kind for _, kind in fields]
    text += ",".join(f"{key}={draw(value_for(kind))}" for (key, _), kind in zip(fields, chosen, strict=True))
    stamp = draw(timestamps)
    if stamp is not None:
        text += " " + stamp
    if draw(st.integers(0, 14)) == 0 and text:
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 1))
        text = text[:at] + draw(st.sampled_from(DAMAGE)) + text[at + cut :]
    return text


@st.composite
def body(draw) -> tuple[bytes, Precision]:
    shapes = draw(st.lists(shape(), min_size=1, max_size=4))
    lines = []
    for _ in range(draw(st.integers(0, 40))):
        extra = draw(st.integers(0, 19))
        if extra == 0:
            lines.append(draw(st.sampled_from(["", "# comment", "  ", "\t# x=1 y", "#", "\r"])))
            continue
        prefix = " " if extra == 1 else ""
        lines.append(prefix + draw(line(shapes)))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", "\n"]))
    return text.encode("utf-8"), draw(st.sampled_from(list(Precision)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body(), st.integers(-(2**62), 2**62))
def test_fast_parser_matches_exact_parser(generated: tuple[bytes, Precision], default_time: int) -> None:
    raw, precision = generated
    fast = parse(raw, precision=precision, default_time_ns=default_time)
    exact = parse_exact(raw, precision=precision, default_time_ns=default_time)
    assert_same(fast, exact)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_utf8_bytes_agree(raw: bytes) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    fast = parse(raw, precision=Precision.AUTO, default_time_ns=0)
    exact = parse_exact(raw, precision=Precision.AUTO, default_time_ns=0)
    assert_same(fast, exact)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("m f=1i,t\"\\ \n\r\t#.-eu9")), max_size=80))
def test_small_alphabet_text_agrees(text: str) -> None:
    raw = text.encode("utf-8")
    assert_same(parse(raw, precision=Precision.NANOSECOND, default_time_ns=7),
                parse_exact(raw, precision=Precision.NANOSECOND, default_time_ns=7))
