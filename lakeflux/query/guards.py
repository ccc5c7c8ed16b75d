"""Functions whose result size an argument sets, checked against a query's memory before they allocate.

DataFusion's memory pool (`--exec-mem-pool-bytes`) accounts for what operators hold (sorts, joins,
aggregates), not for the values a scalar function builds: `SELECT array_repeat(1, 1000000000)` allocated
8 GB in one kernel call (during planning even, when the optimizer folds the constant), and
`repeat('x', 100000)` over 30,000 rows built batches of 800 MB, past which Arrow's 32-bit offsets
overflow and the engine panics. Nothing can interrupt a kernel once it runs, so these functions are
replaced, in every query's context, by versions that compute how many bytes a batch's result will take
and refuse (an error naming the limit) before allocating when it is more than a query's share of the pool.

Replaced: `repeat(string, n)`, and `array_repeat(element, n)` / `list_repeat` for integer elements
(the replacement takes Int64 elements: repeating strings or floats into arrays is refused by type).
`lpad` / `rpad` (string, n[, fill]) and the scalar `range` / `generate_series` (integer start, stop, step)
are replaced when a query calls them: a replacement has one signature, so the query's text is read for the
number of arguments of its calls (`sized_calls`; calls of one function with different numbers are given
the defaults explicitly), and once checked the result is computed by DataFusion's own function, on the
batch, in a private context (exactly its semantics: characters as it counts them, nulls, negative counts).
Not checked: `range` / `generate_series` over dates and timestamps (the native function is planned again
when the integer replacement does not fit the arguments' types), and the table functions
`FROM range(…)`, which stream their rows in batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionConfig, SessionContext, col, udf
from datafusion import functions as f

# Errors raised inside a Python UDF reach the caller wrapped in DataFusion's text (the Python exception's
# repr, a traceback); the limit's own words are found again between these markers (query/running.py).
MARK = "[[lakeflux-limit]]"


def limit_message(text: str) -> str:
    return f"{MARK}{text}{MARK}"


def limit_text_in(message: str) -> str | None:
    """The text a guard raised, if `message` (an engine error) carries one."""
    start = message.find(MARK)
    end = message.find(MARK, start + len(MARK)) if start >= 0 else -1
    return message[start + len(MARK):end] if end > start else None


def register_guards(ctx: SessionContext, limit_bytes: int, limit_text: str,
                    calls: dict[str, int] | None = None) -> None:
    """Replace the size-setting functions of `ctx` with checked ones (`limit_text` names the limit); those
    of SIZED (lpad, rpad, range, generate_series) only as named in `calls`, with that many arguments."""

    def check(function: str, need: int) -> None:
        if need > limit_bytes:
            raise ValueError(limit_message(
                f"{function} would build {need} bytes in one batch, more than a query's share of memory "
                f"({limit_bytes} bytes: {limit_text})"))

    def repeat(strings: pa.Array, counts: pa.Array) -> pa.Array:
        counts = pc.max_element_wise(counts, 0, skip_nulls=False)  # DataFusion: a negative count repeats 0 times
        lengths = pc.cast(pc.binary_length(strings), pa.int64())
        check("repeat()", pc.sum(pc.multiply(lengths, counts)).as_py() or 0)
        return pc.binary_repeat(strings, counts)

    def array_repeat(elements: pa.Array, counts: pa.Array) -> pa.Array:
        clamped = pc.max_element_wise(counts, 0, skip_nulls=False)
        times = pc.fill_null(clamped, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        check("array_repeat()", int(times.sum()) * 8 + 4 * (len(times) + 1))
        offsets = np.zeros(len(times) + 1, dtype=np.int64)
        np.cumsum(times, out=offsets[1:])
        values = pc.take(elements, pa.array(np.repeat(np.arange(len(times)), times)))
        return pa.LargeListArray.from_arrays(pa.array(offsets), values, mask=pc.is_null(clamped)).cast(
            pa.list_(pa.int64()))

    # Volatile: never folded into a constant while planning, which would then be copied into every row of a
    # batch unchecked (`repeat('x', 100000) FROM range(30000)` is 800 MB per batch of 8,192 rows); evaluated
    # per batch, the check sees the batch's whole result.
    ctx.register_udf(udf(repeat, [pa.string(), pa.int64()], pa.string(), "volatile", "repeat"))
    for name in ("array_repeat", "list_repeat"):
        ctx.register_udf(udf(array_repeat, [pa.int64(), pa.int64()], pa.list_(pa.int64()), "volatile", name))

    for name, arity in (calls or {}).items():
        _register_sized(ctx, name, arity, check)


# Replaced only when a query calls them, with the number of arguments its calls have (one signature each);
# the defaults that make a call of fewer arguments one of the most.
SIZED = {"lpad": 3, "rpad": 3, "range": 3, "generate_series": 3}
RANGES = ("range", "generate_series")


def _register_sized(ctx: SessionContext, name: str, arity: int, check: Callable[[str, int], None]) -> None:
    native = {"lpad": f.lpad, "rpad": f.rpad, "range": f.range, "generate_series": f.generate_series}[name]
    if name in RANGES:
        if not 1 <= arity <= 3:
            return  # not a call DataFusion plans: its own error

        def ranged(*args: pa.Array) -> pa.Array:
            start, stop, step = ((None, args[0], None) if len(args) == 1 else (*args, None)[:3])
            check(f"{name}()", _range_bytes(start, stop, step, name == "generate_series", len(args[0])))
            return _natively(native, args, pa.list_(pa.int64()))

        ctx.register_udf(udf(ranged, [pa.int64()] * arity, pa.list_(pa.int64()), "volatile", name))
        return
    if arity not in (2, 3):
        return

    def padded(*args: pa.Array) -> pa.Array:
        check(f"{name}()", _pad_bytes(*args))
        # A negative count pads to nothing (as DataFusion folds a constant one); its kernel panics on one.
        counts = pc.max_element_wise(args[1], 0, skip_nulls=False)
        return _natively(native, (args[0], counts, *args[2:]), pa.string())

    ctx.register_udf(udf(padded, [pa.string(), pa.int64(), pa.string()][:arity], pa.string(), "volatile", name))


def native_ranges(ctx: SessionContext) -> None:
    """Put DataFusion's own range functions back into `ctx` (a query ranging over dates or timestamps)."""
    native = SessionContext()
    for name in RANGES:
        ctx.register_udf(native.udf(name))


def _pad_bytes(strings: pa.Array, counts: pa.Array, fills: pa.Array | None = None) -> int:
    """At most the bytes lpad / rpad build: each string's own bytes (a longer one is cut) plus `n` units
    of fill, a unit at most one byte for an ASCII fill (a space without one), else the fill's bytes."""
    own = _numbers(pc.binary_length(strings))
    n = np.maximum(_numbers(counts), 0)
    unit = np.ones(len(n)) if fills is None else np.where(
        _numbers(pc.string_is_ascii(fills)) > 0, 1.0, _numbers(pc.binary_length(fills)))
    return int(np.sum(own + n * unit))


def _range_bytes(start: pa.Array | None, stop: pa.Array, step: pa.Array | None, inclusive: bool, rows: int) -> int:
    """The bytes of the Int64 lists range / generate_series build for each row's arguments."""
    first = np.zeros(rows) if start is None else _numbers(start)
    every = np.ones(rows) if step is None else _numbers(step)
    span = _numbers(stop) - first
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.where(every != 0, span / np.where(every != 0, every, 1), 0.0)
    count = np.floor(steps) + 1 if inclusive else np.ceil(steps)
    count = np.where((every != 0) & (count > 0), count, 0)
    return int(np.sum(count)) * 8 + 4 * (rows + 1)


def _numbers(values: pa.Array) -> np.ndarray:
    """As float64, null as 0 (a null argument makes a null result: nothing built)."""
    return pc.fill_null(pc.cast(values, pa.float64()), 0.0).to_numpy(zero_copy_only=False)


def _natively(function: Callable[..., Any], args: tuple[pa.Array, ...], out: pa.DataType) -> pa.Array:
    """DataFusion's own `function` over one batch's arguments, in a private context on a thread of its own
    (this one runs inside the query's engine), one partition so rows keep their order."""
    done: list[pa.Array | BaseException] = []

    def run() -> None:
        try:
            batch = pa.table({f"a{i}": a for i, a in enumerate(args)})
            ctx = SessionContext(SessionConfig().with_target_partitions(1))
            df = ctx.from_arrow(batch).select(function(*[col(f"a{i}") for i in range(len(args))]).alias("r"))
            chunks = [b.column(0) for b in df.collect()]
            done.append(pa.concat_arrays(chunks).cast(out) if chunks else pa.array([], out))
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            done.append(e)

    worker = threading.Thread(target=run, name="lakeflux-sized-function")
    worker.start()
    worker.join()
    result = done[0]
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass(frozen=True)
class _Call:
    name: str
    open: int  # index of its "("
    close: int  # index of its ")"
    args: int


def sized_calls(sql: str) -> tuple[str, dict[str, int]]:
    """The SIZED functions `sql` calls, each with its calls' number of arguments, and `sql` itself, or, when
    calls of one function differ in that, `sql` with its defaults written out in the shorter ones (lpad('x',
    3) → lpad('x', 3, ' '), range(5) → range(0, 5, 1)). String literals, quoted names and comments are
    skipped (but a quoted name of one of them); a name right after a "." (qualified) is not a call of the
    function."""
    calls = _calls(sql)
    arities: dict[str, set[int]] = {}
    for c in calls:
        arities.setdefault(c.name, set()).add(c.args)
    mixed = {name for name, found in arities.items() if len(found) > 1}
    inserts: list[tuple[int, str]] = []
    for c in calls:
        if c.name not in mixed or not 1 <= c.args < SIZED[c.name]:
            continue
        if c.name in RANGES:
            if c.args == 1:
                inserts.append((c.open + 1, "0, "))
            inserts.append((c.close, ", 1"))
        elif c.args == 2:
            inserts.append((c.close, ", ' '"))
    for at, text in sorted(inserts, reverse=True):
        sql = sql[:at] + text + sql[at:]
    return sql, {name: (SIZED[name] if name in mixed else found.pop()) for name, found in arities.items()}


def _calls(sql: str) -> list[_Call]:
    """Calls of SIZED functions in `sql`, in order of their closing parentheses."""
    calls: list[_Call] = []
    stack: list[tuple[str | None, int, int]] = []  # per open "(": the function it calls, where, commas
    previous = ""  # the last significant character before a name
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == '"' and sql[i + 1:].split('"', 1)[0] in SIZED:  # a quoted name is a name too
            word = sql[i + 1:].split('"', 1)[0]
            after = i + len(word) + 2
            while after < n and sql[after].isspace():
                after += 1
            if after < n and sql[after] == "(" and previous != ".":
                stack.append((word, after, 0))
                i, previous = after + 1, "("
                continue
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # a doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            i, previous = end + 1, ch
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch.isalpha() or ch == "_":
            end = i
            while end < n and (sql[end].isalnum() or sql[end] in "_$"):
                end += 1
            word = sql[i:end].lower()
            after = end
            while after < n and sql[after].isspace():
                after += 1
            if word in SIZED and after < n and sql[after] == "(" and previous != ".":
                stack.append((word, after, 0))
                i, previous = after + 1, "("
                continue
            i, previous = end, "a"
            continue
        if ch == "(":
            stack.append((None, i, 0))
        elif ch == "," and stack:
            name, at, commas = stack[-1]
            stack[-1] = (name, at, commas + 1)
        elif ch == ")" and stack:
            name, at, commas = stack.pop()
            if name is not None:
                empty = not sql[at + 1:i].strip()
                calls.append(_Call(name, at, i, 0 if empty else commas + 1))
        if not ch.isspace():
            previous = ch
        i += 1
    return calls
