"""lakeflux.tableformat: persisted tables published as open tables (Delta Lake), from the snapshot manifests."""

from .delta import LOG_RETENTION_S, Commit, DataFile, LogHead, delta_type, read_head, schema_string
from .publish import Publisher, TableChange

__all__ = ["LOG_RETENTION_S", "Commit", "DataFile", "LogHead", "Publisher", "TableChange", "delta_type", "read_head",
           "schema_string"]
