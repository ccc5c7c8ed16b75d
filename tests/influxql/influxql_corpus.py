"""The InfluxQL differential corpus: one data set and the statements run against both InfluxDB 1.x and lakeflux.

Everything is a function of `base` (the data set's first timestamp, an hour boundary a few hours before the
fixtures were recorded) so statements that say `now()` and InfluxDB 3's 24-hour look-back of SHOW statements
see the same data in CI as when InfluxDB 1.x answered. The answers live in fixtures/influxdb1.json
(`make influxql-oracle` re-records them where `influxd` is installed).

A `Case` whose answer deliberately differs from InfluxDB 1.x names the difference (`differs`, one of
DIFFERENCES, each listed in docs/influxql.md); the comparison then checks what lakeflux does instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

S = 1_000_000_000
M = 60 * S
H = 3600 * S

DB = "corpus"
# Instants around daylight-saving changes: 2024-03-10 07:00 UTC (US spring forward), 2024-11-03 06:00 UTC
# (US fall back), 2024-10-27 01:00 UTC (EU fall back).
DST_US_START = 1710054000 * S
DST_US_END = 1730613600 * S
DST_EU_END = 1729990800 * S
HOSTS = ["server01", "server02", "server03", "server04"]

# Deliberate differences from InfluxDB 1.x (InfluxDB 3's behaviour, followed by lakeflux).
DIFFERENCES = {
    "parse-error-status": "a statement that does not parse is answered 200 with the error in its result, "
                          "not HTTP 400",
    "desc-series-order": "ORDER BY time DESC reverses rows inside each series, not the order of the series",
    "unsupported-statement": "statements InfluxDB 3 does not answer (SHOW SERIES, SELECT INTO, users, continuous "
                             "queries, ...) fail",
    "sample": "sample() is not implemented",
    "error-text": "the error is reported, in InfluxDB 3's words",
    "metadata-cutoff": "SHOW TAG VALUES, and SHOW MEASUREMENTS/TAG KEYS with WHERE, look back 24 hours unless "
                       "the WHERE clause bounds time",
    "show-retention-policies": "SHOW RETENTION POLICIES has InfluxDB 3's columns (name, duration, default)",
    "integral-series-order": "integral() without GROUP BY time lists series in ascending order, like every other "
                             "aggregate (InfluxDB 1.x reverses them)",
    "dst-odd-interval": "with tz() and a GROUP BY interval that is not a whole number of hours, the window of a "
                        "point next to a clock change follows the window boundaries (InfluxDB 1.x lets the first "
                        "point after a boundary decide)",
    "show-time-condition": "SHOW MEASUREMENTS accepts a time condition in WHERE (InfluxDB 1.x refuses it)",
}


@dataclass(frozen=True)
class Case:
    q: str
    epoch: str | None = "ns"
    differs: str | None = None
    error: str | None = None  # with `differs`: text lakeflux's error must contain
    params: dict | None = None


def _value(seed: int, i: int, lo: float, hi: float) -> float:
    """A deterministic reading between lo and hi with two decimals (exact in both servers' parsers)."""
    x = (math.sin(seed * 12.9898 + i * 0.731) * 43758.5453) % 1.0
    return round(lo + (hi - lo) * x, 2)


def dataset(base: int) -> str:
    """The corpus data as line protocol with nanosecond timestamps."""
    lines: list[str] = []
    for h, host in enumerate(HOSTS):
        region = "us-west" if h < 2 else "us-east"
        for c in range(2):
            seed = h * 10 + c + 1
            for i in range(0, 3 * 360):  # every 10 s for 3 h; each series a second apart (no ties)
                t = base + i * 10 * S + (h * 2 + c) * S
                lines.append(f"cpu,host={host},region={region},cpu=cpu{c} usage_user={_value(seed, i, 0, 60)},"
                             f"usage_system={_value(seed + 50, i, 0, 20)},usage_idle={_value(seed + 90, i, 20, 100)} {t}")
        for i in range(0, 3 * 120):  # every 30 s
            t = base + i * 30 * S + h * S
            used = 4_000_000 + int(_value(h + 200, i, 0, 1_000_000))
            lines.append(f"mem,host={host} used={used}i,free={8_000_000 - used}i,"
                         f"used_percent={round(used / 80_000, 3)} {t}")
        total = 0
        for i in range(0, 3 * 240):  # every 15 s, a counter that resets once
            t = base + i * 15 * S + h * S
            total = 0 if (h == 1 and i == 400) else total + int(_value(h + 300, i, 100, 5000))
            state = 3 if i % 3 == 0 else i % 7  # one value clearly the most frequent (mode() has no ties)
            lines.append(f"net,host={host},interface=eth0 bytes_recv={total}i,"
                         f"packets={int(_value(h + 400, i, 0, 50))}i,state={state}i {t}")
    conditions = ["sunny", "cloudy", "rain", "snow"]
    for i in range(0, 36):  # every 5 min, sparse: every 4th point missing, location missing on some
        if i % 4 == 3:
            continue
        t = base + i * 5 * M
        tags = ",location=coyote_creek" if i % 5 else ""
        tags += f",station=s{i % 3}"
        cond = "sunny" if i % 3 == 0 else conditions[i % 4]
        lines.append(f"weather{tags} temperature={_value(500, i, -5, 30)},humidity={int(_value(501, i, 20, 90))}i,"
                     f'condition="{cond}",raining={"true" if cond == "rain" else "false"} {t}')
    for i, (offset, kind, value) in enumerate([(1, "a", 10.0), (2, "a", 14.0), (9, "b", 3.5), (13, "a", 21.0),
                                               (14, "b", 7.25), (31, "a", 1.0), (42, "b", 9.0), (55, "a", 12.5)]):
        lines.append(f"events,kind={kind} value={value},count={i + 1}i {base + offset * M}")
    lines.append(f"h2o\\ quality,site=a\\ b,my\\ tag=yes ph=7.1,read\\ bytes=12i {base + 5 * M}")
    lines.append(f"h2o\\ quality,site=c ph=6.9,read\\ bytes=15i {base + 6 * M}")
    lines.append(f"disk.io,host=server01 reads=10i,writes=3i {base}")
    lines.append(f"disk.io,host=server01 reads=25i,writes=4i {base + M}")
    for day in (DST_US_START, DST_US_END, DST_EU_END):  # hourly points across daylight-saving changes
        for i in range(-30, 31):
            lines.append(f"dst,zone=z v={i + 100},n={i}i {day + i * H}")
    for d in range(3):  # older than a day: outside InfluxDB 3's default metadata look-back
        lines.append(f"archive,host=old{d} value={d + 0.5} {base - (2 + d) * 24 * H}")
    return "\n".join(lines) + "\n"


def cases(base: int) -> list[Case]:
    """Every statement of the corpus, expanded for this `base`."""
    t0, t1, t2, t3 = base, base + H, base + 2 * H, base + 3 * H
    ms0, ms1, ms3 = t0 // 1_000_000, t1 // 1_000_000, t3 // 1_000_000
    r0 = f"time >= {t0} AND time < {t0 + 10 * M}"
    out: list[Case] = []
    add = out.append

    # --- raw data ---------------------------------------------------------------------------------------
    for q in [
        f"SELECT * FROM cpu WHERE {r0} AND host = 'server01' AND cpu = 'cpu0'",
        f"SELECT usage_user FROM cpu WHERE {r0}",
        f"SELECT usage_user, host FROM cpu WHERE {r0} AND cpu = 'cpu1'",
        f"SELECT host, usage_user, usage_system FROM cpu WHERE {r0} AND region = 'us-east'",
        f"SELECT usage_user + usage_system, usage_user * 2, usage_user FROM cpu WHERE {r0} AND host = 'server02'",
        f"SELECT usage_user / 3, usage_idle - 20, (usage_user + 1) * (usage_system - 1) FROM cpu WHERE {r0} "
        "AND host = 'server03' AND cpu = 'cpu0'",
        f"SELECT used / 1000, used % 7, used * 2 - free FROM mem WHERE {r0}",
        f"SELECT * FROM mem WHERE {r0}",
        f"SELECT * FROM mem WHERE {r0} GROUP BY host",
        f"SELECT * FROM cpu WHERE {r0} GROUP BY *",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host, cpu",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY /reg/",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host LIMIT 3",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host LIMIT 2 OFFSET 5",
        f"SELECT usage_user FROM cpu WHERE {r0} LIMIT 10",
        f"SELECT usage_user FROM cpu WHERE {r0} LIMIT 5 OFFSET 3",
        f"SELECT usage_user FROM cpu WHERE {r0} AND host = 'server01' ORDER BY time DESC LIMIT 4",
        f"SELECT usage_user FROM cpu WHERE {r0} AND host = 'server01' AND cpu = 'cpu0' ORDER BY time DESC",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host SLIMIT 2",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host SLIMIT 2 SOFFSET 1",
        f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host, cpu LIMIT 2 SLIMIT 3 SOFFSET 2",
        "SELECT * FROM weather",
        "SELECT temperature, location FROM weather WHERE location = ''",
        "SELECT temperature FROM weather WHERE location != 'coyote_creek'",
        "SELECT temperature FROM weather WHERE location =~ /^$/",
        "SELECT temperature FROM weather WHERE location !~ /creek/",
        "SELECT * FROM weather WHERE condition = 'rain'",
        "SELECT * FROM weather WHERE raining = true",
        "SELECT * FROM weather WHERE raining = false AND temperature > 10",
        "SELECT temperature FROM weather WHERE temperature > 5 AND temperature < 20",
        "SELECT temperature FROM weather WHERE temperature >= 10 OR humidity < 40",
        "SELECT temperature FROM weather WHERE condition =~ /^s/",
        "SELECT temperature FROM weather WHERE nosuchtag = 'x'",
        "SELECT temperature FROM weather WHERE nosuchtag = ''",
        "SELECT humidity FROM weather GROUP BY location",
        "SELECT humidity FROM weather GROUP BY location, station",
        "SELECT humidity FROM weather GROUP BY location, nosuchtag",
        "SELECT condition, raining FROM weather",
        "SELECT * FROM weather WHERE humidity = 40 OR humidity = 41",
        f"SELECT usage_user FROM cpu WHERE host = 'server01' AND cpu = 'cpu0' AND time >= '{_iso(t0)}' "
        f"AND time <= '{_iso(t0 + 2 * M)}'",
        f"SELECT usage_user FROM cpu WHERE host = 'server01' AND cpu = 'cpu0' AND time > {t0 + 5 * M} - 1m "
        f"AND time < {t0 + 5 * M} + 30s",
        f"SELECT usage_user FROM cpu WHERE host = 'server01' AND cpu = 'cpu0' AND time = {t0 + 30 * S}",
        f"SELECT usage_user FROM cpu WHERE host = 'server02' AND time = {t0 + 32 * S}",
        f"SELECT usage_user FROM cpu WHERE (host = 'server01' OR host = 'server04') AND cpu = 'cpu0' AND {r0}",
        f"SELECT usage_user FROM cpu WHERE host =~ /server0[12]/ AND cpu = 'cpu1' AND {r0}",
        f"SELECT usage_user FROM cpu WHERE host !~ /server0[12]/ AND cpu = 'cpu1' AND {r0}",
        f"SELECT usage_user FROM cpu WHERE host <> 'server01' AND cpu = 'cpu1' AND {r0}",
        f"SELECT usage_user FROM cpu WHERE usage_user > 50 AND {r0}",
        f"SELECT usage_user FROM cpu WHERE usage_user + usage_system > 60 AND {r0}",
        f"SELECT usage_user FROM cpu WHERE usage_user * 2 <= 10 AND {r0} GROUP BY host",
        "SELECT * FROM events",
        "SELECT value FROM events WHERE kind = 'b'",
        "SELECT count FROM events WHERE count >= 3 AND count <= 6",
        "SELECT ph, \"read bytes\" FROM \"h2o quality\"",
        "SELECT * FROM \"h2o quality\" WHERE site = 'a b'",
        "SELECT * FROM \"h2o quality\" WHERE \"my tag\" = 'yes'",
        "SELECT * FROM \"disk.io\"",
        "SELECT reads FROM \"disk.io\" WHERE host = 'server01'",
        f"SELECT usage_user FROM cpu, mem WHERE {r0} AND host = 'server01'",
        f"SELECT * FROM cpu, mem WHERE {r0} AND host = 'server02' AND time < {t0 + 2 * M}",
        f"SELECT used FROM /m.*/ WHERE {r0}",
        f"SELECT * FROM /^(mem|net)$/ WHERE {r0} AND host = 'server03'",
        f"SELECT /usage_u/ FROM cpu WHERE {r0} AND host = 'server04'",
        f"SELECT *::field FROM cpu WHERE {r0} AND host = 'server04' AND cpu = 'cpu0'",
        f"SELECT *::tag, usage_user FROM cpu WHERE {r0} AND host = 'server04' AND cpu = 'cpu0'",
        f"SELECT usage_user::float, host::tag FROM cpu WHERE {r0} AND host = 'server04' AND cpu = 'cpu0'",
        f"SELECT usage_user AS u, usage_system AS s FROM cpu WHERE {r0} AND host = 'server01' AND cpu = 'cpu1'",
        f"SELECT nosuchfield FROM cpu WHERE {r0}",
        f"SELECT host FROM cpu WHERE {r0}",
        "SELECT usage_user FROM nosuchmeasurement",
        f"SELECT usage_user FROM cpu WHERE {r0} AND host = 'nosuchhost'",
        f"SELECT bytes_recv FROM net WHERE time >= {t0 + 99 * M} AND time <= {t0 + 102 * M} AND host = 'server02'",
    ]:
        add(Case(q))

    # --- aggregates and selectors ---------------------------------------------------------------------------
    agg_fields = {"usage_user": "cpu", "used": "mem"}
    # mode() with several values equally frequent is not compared: InfluxDB 1.x picks among them after an
    # unstable sort; lakeflux answers the smallest (docs/influxql.md).
    add(Case(f"SELECT mode(state) FROM net WHERE time >= {t0} AND time < {t2}"))
    add(Case(f"SELECT mode(state) FROM net WHERE time >= {t0} AND time < {t1} GROUP BY time(20m)"))
    add(Case(f"SELECT mode(state) FROM net WHERE time >= {t0} AND time < {t1} GROUP BY host"))
    for fn in ["count", "sum", "mean", "median", "spread", "stddev", "min", "max", "first", "last"]:
        for fld, meas in agg_fields.items():
            add(Case(f"SELECT {fn}({fld}) FROM {meas} WHERE time >= {t0} AND time < {t2}"))
            add(Case(f"SELECT {fn}({fld}) FROM {meas} WHERE time >= {t0} AND time < {t1} GROUP BY time(10m)"))
            add(Case(f"SELECT {fn}({fld}) FROM {meas} WHERE time >= {t0} AND time < {t1} GROUP BY host"))
        add(Case(f"SELECT {fn}(usage_idle) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(15m), host, "
                 "cpu"))
    for fn in ["count", "first", "last", "mode"]:
        add(Case(f"SELECT {fn}(condition) FROM weather"))
        add(Case(f"SELECT {fn}(raining) FROM weather WHERE time >= {t0} AND time < {t3} GROUP BY time(90m)"))
    for q in [
        f"SELECT mean(usage_user), max(usage_system), count(usage_user) FROM cpu WHERE time >= {t0} AND time < {t3} "
        "GROUP BY host",
        f"SELECT mean(usage_idle) FROM cpu WHERE time >= {t1} AND time < {t3} GROUP BY host, cpu",
        f"SELECT mean(usage_user), max(usage_system) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(1m)",
        f"SELECT percentile(usage_user, 50) FROM cpu WHERE {r0}",
        f"SELECT percentile(usage_user, 90), percentile(usage_user, 10) FROM cpu WHERE {r0} GROUP BY host",
        f"SELECT percentile(used, 95) FROM mem WHERE time >= {t0} AND time < {t1} GROUP BY time(20m)",
        f"SELECT percentile(usage_user, 0) FROM cpu WHERE {r0}",
        f"SELECT percentile(usage_user, 100) FROM cpu WHERE {r0}",
        f"SELECT percentile(usage_user, 33.3) FROM cpu WHERE {r0} AND host = 'server01'",
        f"SELECT max(usage_user), host, cpu FROM cpu WHERE {r0}",
        f"SELECT min(usage_user), usage_system FROM cpu WHERE {r0} GROUP BY host",
        f"SELECT first(usage_user), usage_idle, region FROM cpu WHERE {r0} GROUP BY host",
        "SELECT last(temperature), condition FROM weather",
        f"SELECT max(usage_user) FROM cpu WHERE {r0} GROUP BY time(2m), host",
        f"SELECT max(usage_user), min(usage_user) FROM cpu WHERE {r0}",
        f"SELECT spread(used), stddev(used), median(used) FROM mem WHERE time >= {t0} AND time < {t1} "
        "GROUP BY time(10m), host",
        f"SELECT count(usage_user) FROM cpu WHERE time >= {t0} AND time < {t3}",
        f"SELECT count(*) FROM cpu WHERE {r0}",
        f"SELECT mean(*) FROM mem WHERE {r0} GROUP BY host",
        f"SELECT max(/usage_/) FROM cpu WHERE {r0}",
        f"SELECT count(/usage_/) FROM cpu WHERE {r0} GROUP BY time(5m)",
        "SELECT mean(value), sum(count) FROM events",
        "SELECT count(value) FROM events GROUP BY kind",
        f"SELECT mean(usage_user) AS avg_user, max(usage_user) AS peak FROM cpu WHERE {r0} GROUP BY host",
        f"SELECT mean(usage_user) * 100, mean(usage_user) / mean(usage_system) FROM cpu WHERE {r0}",
        f"SELECT sum(used) - sum(free), sum(used) / 1000 FROM mem WHERE {r0} GROUP BY time(2m)",
        f"SELECT mean(usage_user) + 1 FROM cpu WHERE {r0} GROUP BY time(1m) fill(0)",
        "SELECT distinct(condition) FROM weather",
        "SELECT distinct(humidity) FROM weather GROUP BY time(1h)",
        "SELECT count(distinct(condition)) FROM weather",
        "SELECT count(distinct(kind)) FROM events",
        "SELECT DISTINCT condition FROM weather",
        "SELECT integral(value) FROM events",
        "SELECT integral(value, 1m) FROM events",
        f"SELECT integral(usage_user) FROM cpu WHERE {r0} AND host = 'server01' GROUP BY time(5m)",
        f"SELECT integral(usage_user, 1m) FROM cpu WHERE {r0} AND host = 'server02' AND cpu = 'cpu1' "
        "GROUP BY time(3m)",
        f"SELECT mean(usage_user) FROM cpu WHERE time >= {t0 + 5 * S} AND time <= {t0 + 5 * M}",
        f"SELECT mean(usage_user) FROM cpu WHERE time > {t0} AND time < {t0 + 5 * M} GROUP BY time(1m)",
        f"SELECT sum(packets) FROM net WHERE time >= {t0} AND time < {t1} GROUP BY time(7m)",
        f"SELECT sum(packets) FROM net WHERE time >= {t0} AND time < {t1} GROUP BY time(7m, 2m)",
        f"SELECT sum(packets) FROM net WHERE time >= {t0} AND time < {t1} GROUP BY time(10m, -3m)",
        f"SELECT mean(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m) ORDER BY time DESC",
        f"SELECT mean(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m) LIMIT 2",
        f"SELECT mean(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m) LIMIT 2 OFFSET 3",
        f"SELECT mean(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m), host SLIMIT 2",
        f"SELECT last(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY host, cpu",
        "SELECT first(used) FROM mem GROUP BY host",
        f"SELECT mean(usage_user) FROM cpu WHERE {r0} AND host = 'nosuchhost' GROUP BY time(1m)",
        f"SELECT mean(nosuchfield) FROM cpu WHERE {r0}",
        f"SELECT top(usage_user, 3) FROM cpu WHERE {r0}",
        f"SELECT top(usage_user, 2), host, cpu FROM cpu WHERE {r0}",
        f"SELECT top(usage_user, host, 2) FROM cpu WHERE {r0}",
        f"SELECT bottom(usage_user, 2) FROM cpu WHERE {r0} GROUP BY host",
        f"SELECT bottom(used, 2), free FROM mem WHERE time >= {t0} AND time < {t1} GROUP BY time(20m)",
        "SELECT top(value, kind, 1) FROM events",
        f"SELECT top(usage_user, 3) FROM cpu WHERE {r0} GROUP BY time(5m)",
        f"SELECT max(usage_user) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m), host fill(none)",
    ]:
        add(Case(q))

    # --- fill -----------------------------------------------------------------------------------------------
    rng = f"time >= {t0} AND time < {t1}"
    for fill in ["", " fill(null)", " fill(none)", " fill(previous)", " fill(linear)", " fill(0)", " fill(-1.5)",
                 " fill(100)"]:
        add(Case(f"SELECT mean(value) FROM events WHERE {rng} GROUP BY time(5m){fill}"))
        add(Case(f"SELECT count(value), sum(count) FROM events WHERE {rng} GROUP BY time(10m){fill}"))
        add(Case(f"SELECT mean(value) FROM events WHERE {rng} GROUP BY time(10m), kind{fill}"))
        add(Case(f"SELECT max(temperature), min(humidity) FROM weather WHERE time >= {t0} AND time < {t3} "
                 f"GROUP BY time(10m){fill}"))

    # --- transformations ------------------------------------------------------------------------------------
    net = f"time >= {t0} AND time < {t0 + 20 * M} AND host = 'server02'"
    for q in [
        f"SELECT derivative(bytes_recv) FROM net WHERE {net}",
        f"SELECT derivative(bytes_recv, 1m) FROM net WHERE {net}",
        f"SELECT non_negative_derivative(bytes_recv, 1s) FROM net WHERE time >= {t0 + 95 * M} AND "
        f"time < {t0 + 110 * M} AND host = 'server02'",
        f"SELECT difference(bytes_recv) FROM net WHERE {net}",
        f"SELECT non_negative_difference(bytes_recv) FROM net WHERE time >= {t0 + 95 * M} AND "
        f"time < {t0 + 110 * M} GROUP BY host",
        f"SELECT moving_average(packets, 3) FROM net WHERE {net}",
        f"SELECT cumulative_sum(packets) FROM net WHERE {net}",
        f"SELECT elapsed(packets) FROM net WHERE {net}",
        f"SELECT elapsed(packets, 1s) FROM net WHERE {net}",
        f"SELECT derivative(bytes_recv), difference(bytes_recv) FROM net WHERE {net} ORDER BY time DESC",
        "SELECT derivative(value), cumulative_sum(count) FROM events",
        f"SELECT derivative(mean(usage_user)) FROM cpu WHERE {r0} GROUP BY time(1m)",
        f"SELECT derivative(mean(usage_user), 1s) FROM cpu WHERE time >= {t0 + 5 * M} AND time < {t0 + 15 * M} "
        "GROUP BY time(1m)",
        f"SELECT non_negative_derivative(max(bytes_recv), 1s) FROM net WHERE time >= {t0} AND time < {t1} "
        "GROUP BY time(5m), host",
        f"SELECT non_negative_derivative(last(bytes_recv)) FROM net WHERE time >= {t0 + 90 * M} AND "
        f"time < {t2} GROUP BY time(2m), host",
        f"SELECT difference(sum(packets)) FROM net WHERE time >= {t0 + 10 * M} AND time < {t1} GROUP BY time(5m)",
        f"SELECT non_negative_difference(sum(packets)) FROM net WHERE time >= {t0} AND time < {t1} "
        "GROUP BY time(5m)",
        f"SELECT moving_average(mean(usage_user), 3) FROM cpu WHERE time >= {t0 + 10 * M} AND time < {t1} "
        "GROUP BY time(5m)",
        f"SELECT cumulative_sum(count(usage_user)) FROM cpu WHERE time >= {t0 + 10 * M} AND time < {t1} "
        "GROUP BY time(5m)",
        f"SELECT elapsed(count(value), 1m) FROM events WHERE {rng} GROUP BY time(5m) fill(none)",
        f"SELECT derivative(mean(value)) FROM events WHERE {rng} GROUP BY time(5m)",
        f"SELECT derivative(mean(value)) FROM events WHERE {rng} GROUP BY time(5m) fill(0)",
        f"SELECT difference(mean(value)) FROM events WHERE {rng} GROUP BY time(5m) fill(previous)",
        f"SELECT mean(value), difference(mean(value)) FROM events WHERE {rng} GROUP BY time(10m)",
        f"SELECT derivative(mean(usage_user), 1m) * 60 FROM cpu WHERE {r0} GROUP BY time(2m)",
        f"SELECT cumulative_sum(difference(mean(value))) FROM events WHERE {rng} GROUP BY time(10m) fill(0)",
        f"SELECT difference(mean(usage_user)) FROM cpu WHERE time >= {t0} AND time < {t1} GROUP BY time(10m) "
        "ORDER BY time DESC",
    ]:
        add(Case(q))

    # --- math -------------------------------------------------------------------------------------------------
    for fn in ["abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10", "sin", "cos", "tan", "asin",
               "acos", "atan"]:
        add(Case(f"SELECT {fn}(temperature / 100) FROM weather"))
    for q in ["SELECT pow(value, 2), log(value, 10), atan2(value, count) FROM events",
              "SELECT abs(temperature), round(temperature), ceil(humidity) FROM weather",
              f"SELECT round(mean(usage_user)) FROM cpu WHERE {r0} GROUP BY time(2m)",
              f"SELECT abs(derivative(mean(usage_user))) FROM cpu WHERE {r0} GROUP BY time(2m)"]:
        add(Case(q))

    # --- time zones -------------------------------------------------------------------------------------------
    for tz in ["America/New_York", "Europe/Paris", "Asia/Kolkata", "UTC"]:
        add(Case(f"SELECT count(usage_user) FROM cpu WHERE time >= {t0} AND time < {t3} GROUP BY time(1h) "
                 f"tz('{tz}')"))
        add(Case(f"SELECT mean(value) FROM events WHERE time >= {t0} AND time < {t1} GROUP BY time(20m) "
                 f"tz('{tz}')", epoch=None))
        add(Case(f"SELECT value FROM events WHERE time < {t0 + 20 * M} tz('{tz}')", epoch=None))
    add(Case(f"SELECT count(usage_user) FROM cpu WHERE time >= '{_iso(t0)}' AND time < '{_iso(t3)}' "
             "GROUP BY time(1d) tz('America/Chicago')"))
    for day, tz in [(DST_US_START, "America/New_York"), (DST_US_END, "America/New_York"),
                    (DST_EU_END, "Europe/Paris"), (DST_EU_END, "Europe/London")]:
        span = f"time >= {day - 30 * H} AND time <= {day + 30 * H}"
        for interval in ["1d", "1h", "2h", "12h", "90m"]:
            # A window that is not a whole number of hours, across a clock change: see DIFFERENCES.
            odd = interval == "90m" and day != DST_US_START and tz != "Europe/Paris"
            add(Case(f"SELECT count(v), sum(n) FROM dst WHERE {span} GROUP BY time({interval}) tz('{tz}')", epoch=None,
                     differs="dst-odd-interval" if odd else None))
        add(Case(f"SELECT count(v) FROM dst WHERE {span} GROUP BY time(1d, 6h) tz('{tz}')"))
        add(Case(f"SELECT first(v) FROM dst WHERE {span} GROUP BY time(1d) fill(none) tz('{tz}')", epoch=None))
        add(Case(f"SELECT v FROM dst WHERE time >= {day - 2 * H} AND time <= {day + 2 * H} tz('{tz}')", epoch=None))
        add(Case(f"SELECT count(v) FROM dst WHERE time >= '{_iso(day - 20 * H)[:10]} 00:00:00' AND time < "
                 f"'{_iso(day + 20 * H)[:10]} 12:00:00' GROUP BY time(1d) tz('{tz}')"))

    # --- subqueries ---------------------------------------------------------------------------------------------
    for q in [
        f"SELECT max(m) FROM (SELECT mean(usage_user) AS m FROM cpu WHERE {r0} GROUP BY time(1m), host)",
        f"SELECT max(m) FROM (SELECT mean(usage_user) AS m FROM cpu WHERE {r0} GROUP BY time(1m), host) "
        "GROUP BY host",
        f"SELECT mean(total) FROM (SELECT usage_user + usage_system AS total FROM cpu WHERE {r0}) GROUP BY host",
        f"SELECT sum(packets) FROM (SELECT packets FROM net WHERE {r0} AND host = 'server01')",
        f"SELECT derivative(m, 1m) FROM (SELECT max(bytes_recv) AS m FROM net WHERE {net} GROUP BY time(2m))",
        f"SELECT mean(m) FROM (SELECT mean(usage_user) AS m FROM cpu GROUP BY time(1m), host) WHERE {r0} "
        "GROUP BY time(5m)",
        "SELECT count(v) FROM (SELECT value AS v FROM events WHERE kind = 'a')",
        f"SELECT * FROM (SELECT mean(value) FROM events GROUP BY time(10m), kind) WHERE {rng}",
        f"SELECT top(m, 2) FROM (SELECT max(usage_user) AS m FROM cpu WHERE {r0} GROUP BY host)",
    ]:
        add(Case(q))

    # --- what Grafana's InfluxQL editor sends -------------------------------------------------------------------
    grafana = f"time >= {ms0}ms and time <= {ms1}ms"
    for interval in ["10s", "1m", "5m", "200ms"]:
        add(Case(f'SELECT mean("usage_user") FROM "cpu" WHERE {grafana} GROUP BY time({interval}) fill(null)',
                 epoch="ms"))
    for q in [
        f'SELECT mean("usage_user") FROM "cpu" WHERE ("host" =~ /^server01$/) AND {grafana} GROUP BY time(1m) '
        "fill(null)",
        f'SELECT mean("usage_user") FROM "cpu" WHERE ("host" =~ /^(server01|server03)$/) AND {grafana} '
        'GROUP BY time(5m), "host" fill(null)',
        f'SELECT mean("usage_user") FROM "autogen"."cpu" WHERE ("region" = \'us-west\') AND {grafana} '
        'GROUP BY time(10m), "host"::tag fill(none)',
        f'SELECT max("used_percent") FROM "mem" WHERE {grafana} GROUP BY time(15m), "host" fill(previous)',
        f'SELECT non_negative_derivative(mean("bytes_recv"), 1s) FROM "net" WHERE {grafana} GROUP BY time(5m), '
        '"host" fill(null)',
        f'SELECT mean("usage_user") AS "user", mean("usage_system") AS "system" FROM "cpu" WHERE {grafana} '
        "GROUP BY time(10m) fill(null)",
        f'SELECT last("used_percent") FROM "mem" WHERE {grafana} GROUP BY "host"',
        f'SELECT "usage_user", "usage_system" FROM "cpu" WHERE ("host" = \'server01\' AND "cpu" = \'cpu0\') '
        f"AND {grafana} LIMIT 20",
        f'SELECT mean("usage_user") FROM "cpu" WHERE {grafana} GROUP BY time(1h) fill(0)',
        f'SELECT count("usage_user") FROM "cpu" WHERE {grafana} GROUP BY time(10m), "region" fill(0)',
        f'SELECT sum("packets") FROM "net" WHERE time >= {ms0}ms and time <= {ms3}ms GROUP BY time(30m) '
        "fill(null)",
        f'SELECT mean("usage_idle") * -1 + 100 FROM "cpu" WHERE {grafana} GROUP BY time(20m) fill(null)',
        f'SELECT mean("temperature") FROM "weather" WHERE ("location" =~ /^coyote_creek$/) AND time >= {ms0}ms '
        f"and time <= {ms3}ms GROUP BY time(30m) fill(linear)",
        'SELECT mean("usage_user") FROM "cpu" WHERE "host" =~ /^server0[1-4]$/ AND time >= now() - 30m '
        "GROUP BY time(1m), \"host\" fill(none)",
        'SELECT count("usage_user") FROM "cpu" WHERE time >= now() - 2h and time <= now() GROUP BY time(30m) '
        "fill(null)",
        'SELECT last("usage_user") FROM "cpu" WHERE time > now() - 6h GROUP BY "host", "cpu"',
        "SHOW MEASUREMENTS",
        "SHOW MEASUREMENTS LIMIT 1",
        "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)cpu/ LIMIT 100",
        "SHOW MEASUREMENTS WITH MEASUREMENT =~ /e/",
        "SHOW MEASUREMENTS WITH MEASUREMENT = \"mem\"",
        "SHOW FIELD KEYS",
        'SHOW FIELD KEYS FROM "cpu"',
        'SHOW FIELD KEYS FROM "weather", "events"',
        "SHOW FIELD KEYS FROM /^(cpu|mem)$/",
        "SHOW TAG KEYS",
        'SHOW TAG KEYS FROM "cpu"',
        'SHOW TAG KEYS FROM "weather" LIMIT 1',
        'SHOW TAG KEYS FROM "cpu" LIMIT 2 OFFSET 1',
        'SHOW TAG VALUES FROM "cpu" WITH KEY = "host"',
        'SHOW TAG VALUES FROM "cpu" WITH KEY IN ("host", "region")',
        'SHOW TAG VALUES FROM "cpu" WITH KEY =~ /reg|cpu/',
        'SHOW TAG VALUES FROM "cpu" WITH KEY != "host"',
        'SHOW TAG VALUES FROM "cpu" WITH KEY = "host" WHERE "region" = \'us-east\'',
        'SHOW TAG VALUES FROM "cpu" WITH KEY = "host" WHERE "region" =~ /^us-west$/',
        'SHOW TAG VALUES FROM "weather" WITH KEY = "station" WHERE "location" = \'coyote_creek\'',
        'SHOW TAG VALUES FROM /net|mem/ WITH KEY = "host"',
        "SHOW DATABASES",
        f"SHOW MEASUREMENTS ON {DB}",
        "show measurements",
        f'SHOW TAG KEYS ON "{DB}" FROM "cpu"',
        f"SHOW FIELD KEYS ON {DB} FROM mem",
        f'SHOW TAG VALUES ON "{DB}" FROM "cpu" WITH KEY = "region"',
        'show tag values from "cpu" with key = "cpu"',
        f'SELECT mean("value") FROM "events" WHERE ("kind" =~ /^(a|b)$/) AND {grafana} GROUP BY time(10m), "kind" '
        "fill(null)",
        f'SELECT last("temperature") AS "temp", last("humidity") AS "hum" FROM "weather" WHERE time >= {ms0}ms and '
        f"time <= {ms3}ms GROUP BY time(1h) fill(none)",
        f'SELECT count("value") FROM "events" WHERE {grafana} GROUP BY time(1h) fill(0)',
        f'SELECT mean("used_percent") FROM "mem" WHERE ("host" = \'server02\') AND {grafana} GROUP BY time(2m) '
        "fill(linear)",
        f'SELECT spread("bytes_recv") FROM "net" WHERE {grafana} GROUP BY time(15m), "host" fill(null)',
        f'SELECT "value", "kind" FROM "events" WHERE {grafana} ORDER BY time DESC LIMIT 5',
    ]:
        add(Case(q, epoch="ms"))
    add(Case(f"SHOW TAG KEYS FROM cpu WHERE time > {t0}"))
    add(Case(f"SHOW MEASUREMENTS WHERE host = 'server01' AND time > {t0}", differs="show-time-condition"))
    add(Case(f"SHOW MEASUREMENTS WHERE \"kind\" = 'b' AND time > {t0}", differs="show-time-condition"))
    add(Case("SHOW MEASUREMENTS WHERE host = 'server01'"))
    add(Case("SHOW MEASUREMENTS WHERE host =~ /old/", differs="metadata-cutoff"))
    add(Case('SHOW TAG VALUES WITH KEY = "host"', epoch="ms", differs="metadata-cutoff"))
    add(Case('SHOW TAG VALUES WITH KEY = "host" LIMIT 2', epoch="ms", differs="metadata-cutoff"))
    add(Case('SHOW TAG VALUES FROM "archive" WITH KEY = "host"', differs="metadata-cutoff"))
    add(Case(f'SHOW TAG VALUES FROM "archive" WITH KEY = "host" WHERE time > {base - 10 * 24 * H}'))
    add(Case("SHOW RETENTION POLICIES", differs="show-retention-policies"))
    add(Case(f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY host ORDER BY time DESC LIMIT 3",
             differs="desc-series-order"))
    add(Case(f"SELECT max(used) FROM mem WHERE time >= {t0} AND time < {t1} GROUP BY time(20m), host "
             "ORDER BY time DESC LIMIT 2", differs="desc-series-order"))
    add(Case(f"SELECT mean(used) FROM mem WHERE time >= {t0} AND time < {t1} GROUP BY time(30m), host "
             "ORDER BY time DESC", differs="desc-series-order"))
    add(Case(f"SELECT integral(usage_user) FROM cpu WHERE {r0} GROUP BY host", differs="integral-series-order"))

    # --- several statements, output formats, bind parameters -------------------------------------------------
    add(Case(f"SELECT count(usage_user) FROM cpu WHERE {r0}; SELECT count(used) FROM mem WHERE {r0}"))
    add(Case("SELECT mean(value) FROM events; SHOW TAG KEYS FROM events; SELECT value FROM events LIMIT 2"))
    add(Case("SELECT mean(value) FROM events; SELECT nope(value) FROM events; SELECT count(value) FROM events",
             differs="error-text", error="nope"))
    for epoch in [None, "ns", "u", "ms", "s", "m", "h"]:
        add(Case(f"SELECT value FROM events WHERE time >= {t0 + 13 * M}", epoch=epoch))
    add(Case(f"SELECT usage_user FROM cpu WHERE host = $host AND cpu = $cpu AND {r0} LIMIT 3",
             params={"host": "server03", "cpu": "cpu1"}))
    add(Case("SELECT value FROM events WHERE value > $min AND kind = $kind", params={"min": 5, "kind": "a"}))
    add(Case("SELECT value FROM events WHERE value > $min", params={"min": 9.5}))
    add(Case(f"SELECT value FROM events WHERE time > now() - 6h AND time < '{_iso(t0)}' + 15m"))
    add(Case(f"SELECT value FROM events WHERE time >= {t0 // S}s AND time <= {t0 // 1000 + 14 * 60_000_000}u"))
    add(Case("SELECT count FROM events WHERE count / 2 > 2 AND count % 2 = 1"))
    add(Case("SELECT count FROM events WHERE kind = 'a' AND (count < 3 OR count > 6)"))

    # --- errors (InfluxDB 3 reports them per statement; 1.x often with HTTP 400) ------------------------------
    for q in ["SELECT FROM cpu", "SELEC * FROM cpu", "SELECT * FROM", "SELECT * FROM cpu WHERE",
              "SELECT count(value) FROM events; SELECT * FROM events WHERE"]:
        add(Case(q, differs="parse-error-status", error="parsing error"))
    for q, text in [
        ("SHOW SERIES", "parsing error"),
        ("SHOW SERIES FROM cpu", "parsing error"),
        ("SHOW USERS", "parsing error"),
        ("SHOW CONTINUOUS QUERIES", "parsing error"),
        ("CREATE USER bob WITH PASSWORD 'x'", "parsing error"),
        ("GRANT ALL TO bob", "parsing error"),
        ("CREATE CONTINUOUS QUERY cq ON corpus BEGIN SELECT mean(value) INTO m FROM events GROUP BY time(1h) END",
         "parsing error"),
        (f"SELECT mean(usage_user) INTO cpu_copy FROM cpu WHERE {r0} GROUP BY time(1m)", "parsing error"),
        ("SELECT sample(usage_user, 2) FROM cpu", "sample"),
    ]:
        add(Case(q, differs="unsupported-statement" if "sample" not in q else "sample", error=text))
    for q, text in [
        (f"SELECT usage_user, mean(usage_user) FROM cpu WHERE {r0}", "mixing aggregate and non-aggregate"),
        (f"SELECT usage_user FROM cpu WHERE {r0} GROUP BY time(1m)", "GROUP BY requires at least one aggregate"),
        (f"SELECT nosuchfunction(usage_user) FROM cpu WHERE {r0}", "undefined function"),
        (f"SELECT derivative(usage_user) FROM cpu WHERE {r0} GROUP BY time(1m)", "aggregate function required"),
        (f"SELECT derivative(mean(usage_user)) FROM cpu WHERE {r0}", "requires a GROUP BY interval"),
        (f"SELECT distinct(usage_user), mean(usage_user) FROM cpu WHERE {r0}", "distinct"),
        (f"SELECT top(usage_user, 2), max(usage_user) FROM cpu WHERE {r0}", "top"),
        (f"SELECT moving_average(usage_user) FROM cpu WHERE {r0}", "moving_average"),
        (f"SELECT difference(usage_user), usage_user FROM cpu WHERE {r0}", "mixing"),
        ("SELECT usage_user FROM cpu WHERE time > now() - 1h OR host = 'a'", "time"),
    ]:
        add(Case(q, differs="error-text", error=text))
    return out


def _iso(t: int) -> str:
    import datetime as dt

    when = dt.datetime.fromtimestamp(t // S, dt.UTC)
    frac = t % S
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac:09d}" if frac else "") + "Z"
