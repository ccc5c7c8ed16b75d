"""Answering a corpus case with lakeflux and comparing it with InfluxDB 1.x's recorded answer, value by value.

Shared by the CI test (against the committed fixtures) and tests/influxql/oracle.py (against a live influxd).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from influxql_corpus import DIFFERENCES, Case

from lakeflux.influxql.executor import InfluxQL, InfluxQLError, Request
from lakeflux.influxql.results import Encoder, StatementResult, v1_json
from lakeflux.influxql.timeutil import epoch_divisor

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "influxdb1.json"


def lakeflux_answer(influxql: InfluxQL, db: str, case: Case, now: int) -> dict[str, Any]:
    """lakeflux's v1 `/query` JSON for `case`, run as of `now`."""
    try:
        results = influxql.execute(Request(case.q, database=db, params=case.params), now=now)
    except InfluxQLError as e:
        results = [StatementResult(0, error=e.message)]
    return json.loads(v1_json(results, Encoder(epoch_divisor(case.epoch))))


def compare(case: Case, status: int, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Every way `actual` (lakeflux) differs from `expected` (InfluxDB 1.x), allowing only the case's declared
    difference; an empty list means they agree."""
    if case.differs is not None:
        assert case.differs in DIFFERENCES, case.differs
        return _compare_difference(case, status, expected, actual)
    if status != 200:
        return [f"InfluxDB 1.x answered HTTP {status} ({expected}); the case must declare a difference"]
    problems: list[str] = []
    exp_results, act_results = expected.get("results", []), actual.get("results", [])
    if len(exp_results) != len(act_results):
        return [f"{len(act_results)} results, expected {len(exp_results)}: {actual}"]
    for i, (e, a) in enumerate(zip(exp_results, act_results, strict=True)):
        if ("error" in e) != ("error" in a):
            problems.append(f"statement {i}: error {a.get('error')!r}, expected {e.get('error')!r}")
            continue
        e_series, a_series = e.get("series", []), a.get("series", [])
        if len(e_series) != len(a_series):
            problems.append(f"statement {i}: {len(a_series)} series, expected {len(e_series)}: "
                            f"{[_key(s) for s in a_series]} vs {[_key(s) for s in e_series]}")
            continue
        for es, as_ in zip(e_series, a_series, strict=True):
            problems.extend(f"statement {i} {_key(es)}: {p}" for p in _compare_series(case, es, as_))
    return problems


def _key(series: dict[str, Any]) -> str:
    return f"{series.get('name')}{json.dumps(series.get('tags'), sort_keys=True) if series.get('tags') else ''}"


def _compare_series(case: Case, e: dict[str, Any], a: dict[str, Any]) -> list[str]:
    problems = []
    if e.get("name") != a.get("name"):
        problems.append(f"name {a.get('name')!r}, expected {e.get('name')!r}")
    if (e.get("tags") or None) != (a.get("tags") or None):
        problems.append(f"tags {a.get('tags')}, expected {e.get('tags')}")
    if e.get("columns") != a.get("columns"):
        problems.append(f"columns {a.get('columns')}, expected {e.get('columns')}")
        return problems
    e_rows, a_rows = e.get("values", []), a.get("values", [])
    if len(e_rows) != len(a_rows):
        problems.append(f"{len(a_rows)} rows, expected {len(e_rows)}: first rows {a_rows[:3]} vs {e_rows[:3]}")
        return problems
    time_col = e["columns"].index("time") if "time" in e["columns"] else None
    if time_col is not None and case.epoch is not None:
        # Rows of different series at the same time come in no defined order in InfluxDB 1.x.
        e_rows, a_rows = _tie_sorted(e_rows, time_col), _tie_sorted(a_rows, time_col)
    for r, (er, ar) in enumerate(zip(e_rows, a_rows, strict=True)):
        for c, (ev, av) in enumerate(zip(er, ar, strict=True)):
            if c == time_col and case.epoch is None:
                ev, av = _parse_time(ev), _parse_time(av)
            if not _same(ev, av):
                problems.append(f"row {r} column {e['columns'][c]!r}: {av!r}, expected {ev!r} (row {ar} vs {er})")
                if len(problems) > 5:
                    return problems
    return problems


def _tie_sorted(rows: list[list[Any]], time_col: int) -> list[list[Any]]:
    """Rows with the order among equal timestamps made canonical; the order of times is kept."""
    out: list[list[Any]] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][time_col] != rows[start][time_col]:
            out.extend(sorted(rows[start:i], key=lambda r: json.dumps(r, sort_keys=True)))
            start = i
    return out


def _same(e: Any, a: Any) -> bool:
    if isinstance(e, bool) or isinstance(a, bool):
        return e is a
    if isinstance(e, int | float) and isinstance(a, int | float):
        if isinstance(e, int) and isinstance(a, int):
            return e == a
        return math.isclose(e, a, rel_tol=1e-9, abs_tol=1e-9)
    return bool(e == a)


def _parse_time(text: Any) -> Any:
    """RFC3339 with any fraction and offset, as ns (InfluxDB 1.x trims fractions, InfluxDB 3 prints 0/3/6/9
    digits: the instant is what must agree)."""
    if not isinstance(text, str):
        return text
    main, _, rest = text.partition(".")
    frac, offset = "", ""
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, offset = rest[:digits], rest[digits:]
    else:
        for sign in ("Z", "+", "-"):
            idx = main.find(sign, 11)
            if idx > 0:
                main, offset = main[:idx], main[idx:]
                break
    when = dt.datetime.fromisoformat(main + (offset.replace("Z", "+00:00") or "+00:00"))
    return int(when.timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0") or 0), offset


def _compare_difference(case: Case, status: int, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What lakeflux must answer where InfluxDB 3 differs from 1.x on purpose."""
    results = actual.get("results", [])
    if case.differs in ("unsupported-statement", "sample", "error-text", "parse-error-status"):
        errors = [r.get("error", "") for r in results if "error" in r]
        if not errors or (case.error and not any(case.error in e for e in errors)):
            return [f"expected an error mentioning {case.error!r}, got {actual}"]
        if case.differs == "error-text":
            # The statements around the failing one still answer as InfluxDB 1.x does.
            exp = expected.get("results", [])
            for i, (e, a) in enumerate(zip(exp, results, strict=False)):
                if "error" in e or "error" in a:
                    continue
                if e != _rounded(a, e):
                    problems = compare(Case(case.q, case.epoch), 200, {"results": [e]}, {"results": [a]})
                    if problems:
                        return [f"statement {i}: {p}" for p in problems]
        return []
    if case.differs == "metadata-cutoff":
        # Data older than InfluxDB 3's 24-hour look-back (the `archive` measurement) is not considered
        # without a time condition; everything else answers as InfluxDB 1.x does.
        recent = {"results": [{k: ([s for s in v if s.get("name") != "archive"] if k == "series" else v)
                               for k, v in r.items()} for r in expected.get("results", [])]}
        for r in recent["results"]:
            for s in r.get("series", []):
                s["values"] = [row for row in s["values"] if "archive" not in row]
            r["series"] = [s for s in r.get("series", []) if s["values"]]
            if not r["series"]:
                del r["series"]
        return compare(Case(case.q, case.epoch), 200, recent, actual)
    if case.differs == "show-time-condition":
        errors = [r["error"] for r in results if "error" in r]
        return [f"expected an answer, got {errors}"] if errors else []
    if case.differs == "show-retention-policies":
        series = results[0].get("series", []) if results else []
        if not series or series[0]["columns"] != ["name", "duration", "default"] or \
                series[0]["values"] != [["autogen", "0s", True]]:
            return [f"expected InfluxDB 3's retention policy row, got {actual}"]
        return []
    if case.differs == "integral-series-order":
        flipped = {"results": [{**r, "series": sorted(r.get("series", []), key=_key)} for r in expected["results"]]}
        return compare(Case(case.q, case.epoch), 200, flipped, actual)
    if case.differs == "dst-odd-interval":
        # The same points, counted once each: only their windows next to the clock change differ.
        def total(answer: dict[str, Any]) -> int:
            return sum(int(row[1] or 0) for r in answer.get("results", []) for s in r.get("series", [])
                       for row in s["values"])
        return [] if total(expected) == total(actual) else [f"counts {total(actual)}, expected {total(expected)}"]
    if case.differs == "desc-series-order":
        ascending = {"results": [{**r, "series": sorted(r.get("series", []), key=_key)} for r in expected["results"]]}
        return compare(Case(case.q, case.epoch), 200, ascending, actual)
    return [f"no check for difference {case.differs!r}"]


def _rounded(a: Any, e: Any) -> Any:
    return a


def load_fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())
