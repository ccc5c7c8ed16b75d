"""When scheduled triggers fire: `every:` alignment and `cron:` matching, with time passed in (no sleeping).

A `Schedule` answers one question, `next_after(t_ns)`: the first fire time strictly after `t_ns`, or None
when the schedule is exhausted (a 7-field cron whose years are all past). The runtime owns the loop:

- start:       `next = schedule.next_after(now)` (ticks missed while down or disabled are not replayed)
- after a run: `next = schedule.next_after(previous_scheduled)`; if `next <= now` the runtime is behind
  and fires again at once, so missed ticks of a sync trigger run back-to-back, each with its own time.

`every:D` fires at the multiples of D since the epoch (CONTRACT §2.3: `every:1h` fires at hh:00:00 UTC).
InfluxDB does this in milliseconds; for whole-millisecond D (every accepted spec in practice) the
nanosecond arithmetic here yields the same instants.

Cron dialect (all times UTC, whole seconds):

- 6 fields `sec min hour day-of-month month day-of-week`, or 7 with a trailing `year` (InfluxDB's form);
  5 fields are standard cron `min hour dom month dow` with seconds 0 (Δ, InfluxDB refuses them).
- `@yearly @annually @monthly @weekly @daily @midnight @hourly` shortcuts.
- Day of week: lakeflux numbers weekdays like standard cron: **0 and 7 = Sunday, 1 = Monday … 6 =
  Saturday**. InfluxDB's cron library counts 1 = Sunday … 7 = Saturday, so numeric weekdays 1–6 mean a
  different day there; names (`MON`, `tue`, `Friday`, ranges `MON-FRI`) mean the same day in both and are
  what we recommend.
- Month names (`JAN`…`DEC`), lists, ranges, steps, `?` (= `*`) and croniter's `L` / `W` / `#` extensions
  work; its `H` (hashed) and `R` (random) fields are refused.
- When both day-of-month and day-of-week are restricted, a 6/7-field expression needs both to match
  (InfluxDB's library), a 5-field one either (standard cron).
- Years range 1970–2099; they are filtered here because croniter's year support cannot be relied on.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Protocol

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from ..errors import Invalid
from .durations import NS_PER_SECOND, parse_duration

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1)
MIN_YEAR = 1970
MAX_YEAR = 2099
DRY_RUN_DEFAULT_EXPRESSION = "* * * * * *"


class Schedule(Protocol):
    def next_after(self, t_ns: int) -> int | None:
        """The first fire time (ns since the epoch) strictly after `t_ns`, or None when exhausted."""
        ...


@dataclass(frozen=True)
class EverySchedule:
    """Fires at every multiple of `period_ns` since the Unix epoch."""

    period_ns: int

    def __post_init__(self) -> None:
        if self.period_ns <= 0:
            raise ValueError(f"period must be positive, got {self.period_ns}")

    def next_after(self, t_ns: int) -> int:
        """The next multiple of the period strictly after `t_ns` (never exhausted)."""
        return (t_ns // self.period_ns + 1) * self.period_ns


_SHORTCUTS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * SUN",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

# Long day names are folded to the three-letter names croniter knows.
_DAY_NAMES = {
    "sunday": "sun", "monday": "mon", "tuesday": "tue", "tues": "tue", "wednesday": "wed",
    "thursday": "thu", "thurs": "thu", "friday": "fri", "saturday": "sat",
}
_DAY_NAME_RE = re.compile(r"[A-Za-z]+")
# croniter's Jenkins-style `H` (hashed) and `R` (random) fields would pick new values on every call.
_HASH_OR_RANDOM_RE = re.compile(r"(?<![A-Za-z])[HR](?![A-Za-z])", re.IGNORECASE)
_YEAR_ITEM_RE = re.compile(r"^(?:(\*)|(\d{4})(?:-(\d{4}))?)(?:/(\d+))?$")


def _fold_day_names(field: str) -> str:
    return _DAY_NAME_RE.sub(lambda m: _DAY_NAMES.get(m.group(0).lower(), m.group(0)), field)


def _parse_years(field: str) -> frozenset[int] | None:
    """The set of years a year field allows, or None for every year (`*`, `?`)."""
    if field in ("*", "?"):
        return None
    years: set[int] = set()
    for item in field.split(","):
        match = _YEAR_ITEM_RE.match(item)
        if match is None:
            raise Invalid(f"invalid year field {field!r}")
        star, first, last, step = match.groups()
        low = MIN_YEAR if star else int(first)
        high = MAX_YEAR if star or (last is None and step is not None) else int(last or first)
        stride = int(step) if step is not None else 1
        if not (MIN_YEAR <= low <= MAX_YEAR and MIN_YEAR <= high <= MAX_YEAR) or low > high or stride < 1:
            raise Invalid(f"year field {field!r} out of range {MIN_YEAR}-{MAX_YEAR}")
        years.update(range(low, high + 1, stride))
    return frozenset(years)


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression; `next_after` finds the next UTC match in whole seconds."""

    expression: str  # as given, whitespace collapsed
    fields6: str  # `sec min hour dom month dow`, the form croniter is asked with
    years: frozenset[int] | None
    day_and: bool  # both day fields must match (6/7-field dialect) rather than either (5-field)

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Validate and normalise a cron expression; raises Invalid naming what is wrong."""
        text = " ".join(expression.split())
        if not text:
            raise Invalid("cron expression is empty")
        fields = _SHORTCUTS.get(text.lower(), text).split(" ")
        if len(fields) == 5:
            fields = ["0", *fields]
            day_and = False
        elif len(fields) in (6, 7):
            day_and = True
        else:
            raise Invalid(
                f"cron expression {text!r} has {len(fields)} fields: expected 6 "
                "(sec min hour day-of-month month day-of-week), 7 (+ year) or 5 (standard cron)"
            )
        years = _parse_years(fields[6]) if len(fields) == 7 else None
        fields = [field.replace("?", "*") for field in fields[:6]]
        fields[5] = _fold_day_names(fields[5])
        fields6 = " ".join(fields)
        if _HASH_OR_RANDOM_RE.search(fields6):
            raise Invalid(f"invalid cron expression {text!r}: hashed (H) and random (R) fields are not supported")
        try:
            croniter(fields6, EPOCH, second_at_beginning=True, day_or=not day_and)
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise Invalid(f"invalid cron expression {text!r}: {exc}") from exc
        return cls(expression=text, fields6=fields6, years=years, day_and=day_and)

    def next_after(self, t_ns: int) -> int | None:
        """The first match strictly after `t_ns`, or None if there is none (past years, 31 Feb)."""
        start = _naive_utc(t_ns // NS_PER_SECOND)
        while True:
            if start.year > MAX_YEAR:
                return None
            if self.years is not None and start.year not in self.years:
                skipped = self._skip_to_allowed_year(start.year)
                if skipped is None:
                    return None
                start = skipped
            try:
                found = croniter(
                    self.fields6, start, second_at_beginning=True, day_or=not self.day_and,
                    ret_type=dt.datetime,
                ).get_next()
            except CroniterBadDateError:
                return None  # croniter found nothing within its search horizon (decades): impossible date
            if self.years is None or found.year in self.years:
                if found.year > MAX_YEAR:
                    return None
                return _to_ns(found)
            start = _skip_year_boundary(found.year)

    def _skip_to_allowed_year(self, year: int) -> dt.datetime | None:
        assert self.years is not None
        later = [allowed for allowed in self.years if allowed > year]
        if not later:
            return None
        # One second before 1 January of that year, so a match at exactly midnight still counts.
        return dt.datetime(min(later), 1, 1) - dt.timedelta(seconds=1)


def _skip_year_boundary(year: int) -> dt.datetime:
    """The last second of `year`: the next search starts in the following year."""
    return dt.datetime(year, 12, 31, 23, 59, 59)


def _naive_utc(seconds: int) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=seconds)


def _to_ns(moment: dt.datetime) -> int:
    naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return (naive - EPOCH) // dt.timedelta(seconds=1) * NS_PER_SECOND


def call_time(fire_ns: int) -> dt.datetime:
    """The `call_time` argument of `process_scheduled_call`: naive UTC datetime, whole seconds (§1.9)."""
    return _naive_utc(fire_ns // NS_PER_SECOND)


def format_rfc3339(fire_ns: int) -> str:
    """`2024-05-01T12:00:00Z`: the dry-run reply's `trigger_time` (whole seconds, UTC)."""
    return call_time(fire_ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def dry_run_fire_ns(expression: str | None, now_ns: int) -> int:
    """The scheduled time a schedule dry run reports: next match of `expression` (default every second).

    `expression` is a cron expression; a `cron:` prefix is dropped and `every:<duration>` is accepted too,
    so a trigger's own spec can be pasted. Raises Invalid when it does not parse or never fires again.
    """
    text = expression.strip() if expression and expression.strip() else DRY_RUN_DEFAULT_EXPRESSION
    schedule: Schedule
    if text.startswith("every:"):
        period = parse_duration(text[len("every:"):])
        if period <= 0:
            raise Invalid(f"schedule {text!r} has a zero period")
        schedule = EverySchedule(period)
    else:
        schedule = CronSchedule.parse(text.removeprefix("cron:"))
    fire = schedule.next_after(now_ns)
    if fire is None:
        raise Invalid(f"schedule {text!r} has no upcoming fire time")
    return fire
