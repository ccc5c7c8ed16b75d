"""Crash storms (issue 7): a real `lakeflux serve` is SIGKILLed ≥ 20 times while three writers write
continuously, at random moments, while a snapshot has files staged, and right after a write that needs
a new table (a catalog commit); after each kill it restarts on the same store. At the end every
acknowledged line must be there exactly once and no batch half-visible. File store and S3 (moto)."""

from __future__ import annotations

import pytest

from lakeflux.store.file import FileStore
from lakeflux.testing.chaos import CrashStorm, StormReport

KILLS = 20
# A storm restarts a real server 20 times: minutes on a quiet machine, far more on a loaded one. The
# outcome is what is asserted, not the time; the suite-wide 300 s bound would only fail it under load.
STORM_TIMEOUT_S = 1800


def assert_storm_held(report: StormReport) -> None:
    assert report.kills >= KILLS
    assert not report.unexpected, report.unexpected[:5]
    assert report.check.problems == [], report.check.problems[:10]
    assert report.check.ok
    # The storm made progress across restarts, and really interrupted snapshots and catalog changes.
    assert report.check.acked_lines >= KILLS * 3 * 200
    assert report.moments["snapshot"] and report.moments["catalog"]
    assert report.snapshots_interrupted >= 1


@pytest.mark.slow
@pytest.mark.timeout(STORM_TIMEOUT_S)
def test_crash_storm_file_store(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    storm = CrashStorm(data, ["--object-store", "file"], observer=FileStore(data), seed=11)
    assert_storm_held(storm.run(KILLS))


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.timeout(STORM_TIMEOUT_S)
def test_crash_storm_s3(tmp_path, s3_endpoint):
    args = ["--object-store", "s3", "--bucket", s3_endpoint.bucket, "--aws-endpoint", s3_endpoint.endpoint_url,
            "--aws-allow-http", "--aws-access-key-id", s3_endpoint.access_key, "--aws-secret-access-key",
            s3_endpoint.secret, "--aws-default-region", s3_endpoint.region]
    storm = CrashStorm(tmp_path / "data", args, observer=s3_endpoint.store(), seed=12)
    assert_storm_held(storm.run(KILLS))
