"""Runtime test plugin: records each call's `table_batches`, then waits while the gate is closed.

The test puts in the process-wide cache: "gate_calls" (a list the calls are appended to) and "gate" (a
`threading.Event`; calls wait until it is set). A call made before the test put them there (a trigger that
catches up at a restart starts with the server) waits for them. With `args["out"]` each call writes back one line
counting the rows it saw (a downsampler's shape).
"""

import time


def process_writes(influxdb3_local, table_batches, args=None):
    calls = influxdb3_local.cache.get("gate_calls", use_global=True)
    while calls is None:
        time.sleep(0.01)
        calls = influxdb3_local.cache.get("gate_calls", use_global=True)
    calls.append(table_batches)
    gate = influxdb3_local.cache.get("gate", use_global=True)
    if gate is not None:
        while not gate.wait(0.02):  # short waits: a stop's KeyboardInterrupt lands between them
            pass
    if args and args.get("out"):
        rows = sum(len(batch["rows"]) for batch in table_batches)
        influxdb3_local.write_to_db(args["out"], LineBuilder("seen").int64_field("rows", rows))  # noqa: F821
