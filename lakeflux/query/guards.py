"""Functions whose result size an argument sets, checked against a query's memory before they allocate.

DataFusion's memory pool (`--exec-mem-pool-bytes`) accounts for what operators hold (sorts, joins,
aggregates), not for the values a scalar function builds: `SELECT array_repeat(1, 1000000000)` allocated
8 GB in one kernel call (during planning even, when the optimizer folds the constant), and
`repeat('x', 100000)` over 30,000 rows built batches of 800 MB, past which Arrow's 32-bit offsets
overflow and the engine panics. Nothing can interrupt a kernel once it runs, so these functions are
replaced, in every query's context, by versions that compute how many bytes a batch's result will take
and refuse (an error naming the limit) before allocating when it is more than a query's share of the pool.
Other functions can still build large values from constants (lpad, rpad, a scalar range()): they are not
checked before they allocate.

Replaced: `repeat(string, n)`, and `array_repeat(element, n)` / `list_repeat` for integer elements
(the replacement takes Int64 elements: repeating strings or floats into arrays is refused by type).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf

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


def register_guards(ctx: SessionContext, limit_bytes: int, limit_text: str) -> None:
    """Replace the size-setting functions of `ctx` with checked ones (`limit_text` names the limit)."""

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
