"""Runtime test plugin: records every call in the process-wide cache under args["key"]."""

# Used at import time, from builtins, as official plugins do.
LOADED_LINE = LineBuilder("loaded").tag("by", "rt_recorder").int64_field("n", 1).build()  # noqa: F821


class TwoLines:
    """A write object whose build() returns several lines, one of them blank."""

    def __init__(self, count):
        self.count = count

    def build(self):
        return f"seen,kind=rows n={self.count}i\n\nseen,kind=calls n=1i"


def _record(influxdb3_local, args, item):
    key = args["key"] if args else "calls"
    calls = influxdb3_local.cache.get(key, None, use_global=True)
    if calls is None:
        calls = []
        influxdb3_local.cache.put(key, calls, use_global=True)
    calls.append(item)


def process_writes(influxdb3_local, table_batches, args=None):
    item = {"batches": table_batches, "args": args}
    if args and args.get("query"):
        item["query"] = influxdb3_local.query(args["query"])
    _record(influxdb3_local, args, item)
    if args and args.get("out"):
        rows = sum(len(batch["rows"]) for batch in table_batches)
        influxdb3_local.write_to_db(args["out"], TwoLines(rows))


def process_scheduled_call(influxdb3_local, call_time, args=None):
    _record(influxdb3_local, args, {"call_time": call_time, "args": args})


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"loaded": LOADED_LINE, "args": args, "params": query_parameters}
