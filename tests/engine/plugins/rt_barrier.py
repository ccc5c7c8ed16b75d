"""Runtime test plugin: every call waits at the barrier stored in the global cache."""

import threading


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    barrier = influxdb3_local.cache.get("barrier", use_global=True)
    try:
        barrier.wait(timeout=20)
    except threading.BrokenBarrierError:
        return {"met": False}
    return {"met": True}
