"""Reliability plugin: the healthy neighbour; counts the rows it sees in the global cache."""


def process_writes(influxdb3_local, table_batches, args=None):
    rows = sum(len(batch["rows"]) for batch in table_batches)
    seen = influxdb3_local.cache.get("good_rows", 0, use_global=True)
    influxdb3_local.cache.put("good_rows", seen + rows, use_global=True)


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"ok": True}
