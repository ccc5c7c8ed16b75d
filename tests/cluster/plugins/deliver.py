"""Cluster test plugin: for every call, writes back how many rows of each batch tag `b` it was given, to the
database args["out"] (table `delivered`, tags b and table), so a test can check each batch reached it."""


def process_writes(influxdb3_local, table_batches, args=None):
    for batch in table_batches:
        counts = {}
        for row in batch["rows"]:
            counts[row["b"]] = counts.get(row["b"], 0) + 1
        for b, n in counts.items():
            line = LineBuilder("delivered").tag("b", b).tag("table", batch["table_name"]).int64_field("n", n)  # noqa: F821
            influxdb3_local.write_to_db(args["out"], line)
