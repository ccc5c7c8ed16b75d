"""Example plugin for the test kit (also shown in the README): flags hot rooms, remembers alerts."""
# LineBuilder is a builtin the engine installs for plugins.
# ruff: noqa: F821


def process_writes(influxdb3_local, table_batches, args=None):
    limit = float((args or {}).get("limit", "30"))
    for batch in table_batches:
        if batch["table_name"] != "temperature":
            continue
        for row in batch["rows"]:
            if row["value"] > limit:
                seen = influxdb3_local.cache.get("alerts", 0) + 1
                influxdb3_local.cache.put("alerts", seen, ttl=60)
                baseline = influxdb3_local.query(
                    "SELECT avg(value) AS avg FROM temperature WHERE room = $room", {"room": row["room"]})
                line = LineBuilder("hot_rooms").tag("room", row["room"]).float64_field("value", row["value"])
                line.float64_field("baseline", baseline[0]["avg"]).int64_field("alerts", seen)
                influxdb3_local.write(line.time_ns(row["time"]))
    influxdb3_local.info("checked", len(table_batches), "tables")


def process_scheduled_call(influxdb3_local, call_time, args=None):
    influxdb3_local.info("tick", call_time.isoformat())


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    if "room" not in query_parameters:
        raise ValueError("room is required")
    return {"room": query_parameters["room"], "alerts": influxdb3_local.cache.get("alerts", 0)}
