"""lakeflux: an object-store-first time-series lakehouse with an embedded Python processing engine."""

__version__ = "0.1.0"
# The InfluxDB version we report on /ping and in headers: clients gate features on it.
INFLUXDB_COMPAT_VERSION = "3.10.0"
