"""Reading the published Delta tables from tests: through delta-rs (an outside reader), and the raw log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from lakeflux.store import paths
from lakeflux.store.base import ObjectStore
from lakeflux.testing.s3server import S3Endpoint

NODE = "node0"


def root(db: str, table: str) -> str:
    return paths.table_prefix(NODE, db, table)


def commits(store: ObjectStore, db: str, table: str) -> list[list[dict[str, Any]]]:
    """Every commit of the table's log, in version order, as its list of actions (checks versions are dense)."""
    keys = [m.key for m in store.list(paths.delta_log_prefix(root(db, table))) if m.key.endswith(".json")]
    assert [paths.parse_seq(k) for k in keys] == list(range(len(keys))), keys
    return [[orjson.loads(line) for line in store.get(k).splitlines() if line.strip()] for k in keys]


def live_paths(store: ObjectStore, db: str, table: str, version: int | None = None) -> set[str]:
    """The table's files at `version` (default: the newest) by replaying adds and removes."""
    live: set[str] = set()
    for actions in commits(store, db, table)[: None if version is None else version + 1]:
        for a in actions:
            if "add" in a:
                live.add(a["add"]["path"])
            elif "remove" in a:
                live.discard(a["remove"]["path"])
    return live


class DeltaReader:
    """delta-rs (`deltalake`) over the lake of a file store directory or an S3 bucket on moto."""

    def __init__(self, data_dir: Path | None = None, s3: S3Endpoint | None = None) -> None:
        self.data_dir, self.s3 = data_dir, s3

    def uri(self, db: str, table: str) -> str:
        prefix = root(db, table).rstrip("/")
        if self.s3 is not None:
            return f"s3://{self.s3.bucket}/{prefix}"
        assert self.data_dir is not None
        return str(self.data_dir / prefix)

    def options(self) -> dict[str, str] | None:
        if self.s3 is None:
            return None
        return {"AWS_ENDPOINT_URL": self.s3.endpoint_url, "AWS_ACCESS_KEY_ID": self.s3.access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3.secret, "AWS_REGION": self.s3.region, "AWS_ALLOW_HTTP": "true"}

    def table(self, db: str, table: str, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri(db, table), version=version, storage_options=self.options())

    def rows(self, db: str, table: str, version: int | None = None) -> pa.Table:
        # to_pyarrow_table() of deltalake 1.6 now and then aborts the process at exit ("terminate called
        # without an active exception", delta-rs issue 2184); reading through its dataset does not.
        return self.table(db, table, version).to_pyarrow_dataset().to_table()

    def version(self, db: str, table: str) -> int:
        return int(self.table(db, table).version())


def sorted_rows(data: pa.Table, columns: list[str]) -> list[tuple]:
    """Rows as tuples of the given columns, sorted (None sorts first)."""
    cols = [data.column(c).to_pylist() for c in columns]
    return sorted(zip(*cols, strict=True), key=lambda r: tuple((v is not None, v) for v in r))
