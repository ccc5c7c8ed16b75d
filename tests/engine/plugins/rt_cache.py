"""Runtime test plugin: exposes influxdb3_local.cache over process_request."""


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    op = query_parameters["op"]
    key = query_parameters["key"]
    use_global = query_parameters.get("global") == "1"
    cache = influxdb3_local.cache
    if op == "put":
        ttl = float(query_parameters["ttl"]) if "ttl" in query_parameters else None
        cache.put(key, query_parameters["value"], ttl, use_global=use_global)
        return {"ok": True}
    if op == "get":
        return {"value": cache.get(key, "missing", use_global=use_global)}
    return {"deleted": cache.delete(key, use_global=use_global)}
