"""A distributed query over the lake (issue 14): the README's Sail example, run as written (a driver and two
workers in one process on 127.0.0.1, Spark Connect), reads the published Delta tables on the file store and
on S3 (moto) and answers a GROUP BY over several files exactly as lakeflux's own SQL does, after snapshots,
a late-write compaction and a retention expiry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
from delta_reading import commits

from lakeflux.config import Config, S3Settings
from lakeflux.store import open_store
from lakeflux.testing.s3server import S3Endpoint
from lakeflux.testing.server import InProcessServer

# Sail runs in a child process (the README's script): nothing of it is imported into the test process.
if find_spec("pysail") is None or find_spec("pyspark") is None:
    pytest.skip("pysail and pyspark-client are test dependencies: pip install -e '.[test]'", allow_module_level=True)
pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
# Time is a long of nanoseconds for outside engines, a timestamp in lakeflux's SQL.
QUESTION = ("SELECT host, region, count(*) AS n, sum(usage) AS s, min({t}) AS lo, max({t}) AS hi "
            "FROM cpu GROUP BY host, region ORDER BY host, region")
LAKE_LINE = 'lake = "data/node0/tables"'


def readme_example() -> str:
    text = README.read_text()
    start = text.index("## Distributed queries over the lake")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.index("\n## ", start + 1)], flags=re.S)
    assert LAKE_LINE in block
    return str(block)


def build_lake(cfg: Config) -> list[dict]:
    """Days −6 … −1 (UTC), points in each day's first hours, snapshotted in two rounds; a late write
    compacts one day; a retention period ending at noon of day −4 expires the three oldest days (whole
    files: no row lakeflux still shows is left out of the Delta table, none it hides is left in).
    Returns lakeflux's answer to QUESTION; nothing is left buffered."""
    today = time.time_ns() // DAY * DAY

    def points(day: int, first: int, n: int, value: float) -> str:
        return "\n".join(f"cpu,host=h{i % 4},region=r{i % 3} usage={value + i} {today - day * DAY + i * 60 * 10**9}"
                         for i in range(first, first + n))

    with InProcessServer(cfg) as srv:
        assert srv.write("mydb", "\n".join(points(d, 0, 120, d) for d in (6, 5, 4))).status == 204
        srv.call(srv.services.buffer.persist())
        assert srv.write("mydb", "\n".join(points(d, 0, 120, d) for d in (3, 2, 1))).status == 204
        srv.call(srv.services.buffer.persist())
        assert srv.write("mydb", points(2, 60, 90, 1000.0)).status == 204  # late: rewrites and extends day −2
        srv.call(srv.services.buffer.persist())
        cutoff = today - 4 * DAY + 12 * HOUR
        retention = f"{(time.time_ns() - cutoff) // 10**9}s"
        reply = srv.request("PUT", "/api/v3/configure/database", {"db": "mydb", "retention_period": retention})
        assert reply.status == 200, reply.body
        srv.call(srv.services.buffer.housekeep())
        assert srv.services.buffer.tables.rows == 0
        store = srv.services.store
        operations = [[next(iter(a)) for a in c] for c in commits(store, "mydb", "cpu")]
        assert any("remove" in c and "add" in c for c in operations), "no compaction was published"
        assert operations[-1].count("remove") == 3 and "add" not in operations[-1], "no retention expiry"
        assert len(srv.services.buffer.persister.manifest.files_of("mydb", "cpu")) == 3  # several files
        return srv.query("mydb", QUESTION.format(t="CAST(time AS BIGINT)"))


def run_example(cwd: Path, lake: str | None = None, env: dict[str, str] | None = None) -> list[dict]:
    """The README's example, as written (the `lake` line replaced for S3), then the question as JSON."""
    code = readme_example()
    if lake is not None:
        code = code.replace(LAKE_LINE, f"lake = {lake!r}")
    code += (f"\nimport json\nrows = spark.sql({QUESTION.format(t='time')!r}).collect()\n"
             "print(json.dumps([r.asDict() for r in rows]))\nspark.stop()\nserver.stop()\n")
    script = cwd / "sail_example.py"  # a file: pyspark's client refuses to start from `python -c`
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RUST_LOG": "error", **(env or {})}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("|host|") for line in result.stdout.replace(" ", "").splitlines())  # its .show()
    return [{**r, "s": float(r["s"])} for r in json.loads(lines[-1])]


def test_the_readme_example_answers_as_lakeflux_on_the_file_store(tmp_path):
    cfg = Config(data_dir=tmp_path / "data", object_store="file", wal_flush_interval=0.02, without_auth=True)
    ours = build_lake(cfg)
    assert run_example(tmp_path) == ours


@pytest.mark.s3
def test_the_readme_example_answers_as_lakeflux_on_s3(tmp_path, s3_endpoint: S3Endpoint):
    e = s3_endpoint
    s3 = S3Settings(bucket=e.bucket, endpoint=e.endpoint_url, region=e.region, access_key_id=e.access_key,
                    secret_access_key=e.secret, allow_http=True)
    cfg = Config(data_dir=tmp_path / "data", object_store="s3", s3=s3, wal_flush_interval=0.02, without_auth=True)
    ours = build_lake(cfg)
    assert not (tmp_path / "data" / "node0" / "tables").exists()
    assert open_store(cfg).list("node0/tables/mydb/cpu/_delta_log/")
    env = {"AWS_ENDPOINT_URL": e.endpoint_url, "AWS_ACCESS_KEY_ID": e.access_key, "AWS_SECRET_ACCESS_KEY": e.secret,
           "AWS_REGION": e.region, "AWS_ALLOW_HTTP": "true"}
    assert run_example(tmp_path, lake=f"s3://{e.bucket}/node0/tables", env=env) == ours
