"""Runtime test plugin: fails the way args["mode"] says, counting attempts in the global cache."""

import threading

_lock = threading.Lock()


def _fail(influxdb3_local, args):
    with _lock:
        attempts = influxdb3_local.cache.get("attempts", 0, use_global=True) + 1
        influxdb3_local.cache.put("attempts", attempts, use_global=True)
    succeed_at = int(args.get("succeed_at", "0"))
    if succeed_at and attempts >= succeed_at:
        influxdb3_local.info("succeeded at attempt", attempts)
        return
    # Queued before failing: must be dropped, never written.
    influxdb3_local.write_to_db("failout", LineBuilder("dropped").int64_field("n", attempts))  # noqa: F821
    mode = args["mode"]
    if mode == "raise":
        raise ValueError(f"boom {attempts}")
    if mode == "exit":
        raise SystemExit(3)
    if mode == "interrupt":
        raise KeyboardInterrupt()


def process_writes(influxdb3_local, table_batches, args=None):
    _fail(influxdb3_local, args)


def process_scheduled_call(influxdb3_local, call_time, args=None):
    _fail(influxdb3_local, args)


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    raise RuntimeError("request went wrong")
