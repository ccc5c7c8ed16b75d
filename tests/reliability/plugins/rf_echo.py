"""Reliability plugin: every write to its table writes to the same table again (recursion through its own
writes); it counts generations in the global cache."""


class Line:
    def __init__(self, n):
        self.n = n

    def build(self):
        return f"echo,src=plugin gen={self.n}i"


def process_writes(influxdb3_local, table_batches, args=None):
    n = influxdb3_local.cache.get("echo_generations", 0, use_global=True) + 1
    influxdb3_local.cache.put("echo_generations", n, use_global=True)
    influxdb3_local.write(Line(n))
