"""Runtime test plugin: a request that never ends by itself (until the trigger is stopped)."""

import time


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    influxdb3_local.cache.put("spinning", True, use_global=True)
    while True:
        time.sleep(0.01)
