"""Dry-run test plugin: logs, reads its args, counts calls in the cache, writes back, queries."""
# LineBuilder is a builtin the engine installs for plugins.
# ruff: noqa: F821


def process_writes(influxdb3_local, table_batches, args=None):
    calls = influxdb3_local.cache.get("calls", 0) + 1
    influxdb3_local.cache.put("calls", calls)
    influxdb3_local.info("call", calls, "args", args)
    for batch in table_batches:
        influxdb3_local.info(batch["table_name"], len(batch["rows"]), sorted(batch["rows"][0]))
    existing = influxdb3_local.query("SELECT count(*) AS n FROM cpu")
    influxdb3_local.info("existing cpu rows", existing[0]["n"])
    line = LineBuilder("summary").tag("source", "dry").int64_field("tables", len(table_batches))
    influxdb3_local.write(line)
    influxdb3_local.write_sync_to_db("other", LineBuilder("ping").int64_field("n", 1))
    if args and args.get("clash") == "yes":
        # cpu.usage is a float in the catalog: an integer is a type clash the dry run must report.
        influxdb3_local.write(LineBuilder("cpu").tag("host", "x").int64_field("usage", 1))
    if args and args.get("fail") == "yes":
        raise ValueError("boom")
