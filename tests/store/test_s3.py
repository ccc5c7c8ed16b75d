"""S3Store specifics against moto's real HTTP server: conditional PUTs, lost responses on the wire
(through a loopback proxy that really drops connections), error mapping, DataFusion's native reader."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from lakeflux.errors import Invalid, NotFound, Unavailable
from lakeflux.store import S3Store, compare_stored
from lakeflux.testing.s3server import LossyProxy, S3Endpoint, free_port

pytestmark = pytest.mark.s3


@pytest.fixture
def proxy(store_bucket: S3Endpoint) -> Iterator[LossyProxy]:
    p = LossyProxy(store_bucket.endpoint_url)
    yield p
    p.close()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def lossy_store(store_bucket: S3Endpoint, proxy: LossyProxy, slept: list[float]) -> S3Store:
    """An S3Store that reaches moto through the proxy; retry back-off goes to `slept`, not to sleep."""
    through_proxy = dataclasses.replace(store_bucket, endpoint_url=proxy.url)
    return through_proxy.store(prefix=f"lossy-{uuid.uuid4().hex[:8]}", sleep=slept.append)


def test_moto_honours_if_none_match(store_bucket: S3Endpoint) -> None:
    """The property everything rests on: a second conditional PUT of a key gets 412, not an overwrite."""
    store = store_bucket.store(prefix=f"inm-{uuid.uuid4().hex[:8]}")
    assert store.put_if_absent("k", b"one") is True
    assert store.put_if_absent("k", b"two") is False
    assert store.get("k") == b"one"


def test_lost_response_of_our_put_is_resolved_as_ours(lossy_store: S3Store, proxy: LossyProxy) -> None:
    proxy.lose_put_responses(1)
    assert lossy_store.put_if_absent("k", b"mine") is True
    assert proxy.lost == 1  # the response really was lost, and no hidden resend turned it into a 412
    assert lossy_store.get("k") == b"mine"


def test_lost_412_is_resolved_as_theirs(lossy_store: S3Store, proxy: LossyProxy) -> None:
    assert lossy_store.put_if_absent("k", b"theirs") is True
    proxy.lose_put_responses(1)
    assert lossy_store.put_if_absent("k", b"mine") is False
    assert proxy.lost == 1
    assert lossy_store.get("k") == b"theirs"


def test_put_that_never_arrived_is_retried(
    lossy_store: S3Store, proxy: LossyProxy, slept: list[float]
) -> None:
    proxy.fail_puts(1)
    assert lossy_store.put_if_absent("k", b"mine") is True
    assert proxy.failed == 1
    assert slept == [0.2]
    assert lossy_store.get("k") == b"mine"


def test_lost_then_retried_put_is_still_ours(lossy_store: S3Store, proxy: LossyProxy) -> None:
    """First attempt cut off, second lands but its response is lost: the read-back finds our bytes."""
    proxy.fail_puts(1)
    proxy.lose_put_responses(1)
    assert lossy_store.put_if_absent("k", b"mine") is True
    assert (proxy.failed, proxy.lost) == (1, 1)


def test_gives_up_after_bounded_attempts(lossy_store: S3Store, proxy: LossyProxy, slept: list[float]) -> None:
    proxy.fail_puts(3)
    with pytest.raises(Unavailable, match="failed 3 times"):
        lossy_store.put_if_absent("k", b"mine")
    assert slept == [0.2, 0.4]
    assert compare_stored(lossy_store, "k", b"mine") is None


def test_unreachable_server_is_unavailable(store_bucket: S3Endpoint) -> None:
    endpoint = dataclasses.replace(store_bucket, endpoint_url=f"http://127.0.0.1:{free_port()}")
    store = endpoint.store(prefix="x", sleep=lambda _: None, connect_timeout=2.0)
    with pytest.raises(Unavailable):
        store.put_if_absent("k", b"x")
    with pytest.raises(Unavailable):
        store.list("")
    with pytest.raises(Unavailable):
        store.get("k")


def test_missing_bucket_is_unavailable_not_not_found(store_bucket: S3Endpoint) -> None:
    store = dataclasses.replace(store_bucket, bucket=f"missing-{uuid.uuid4().hex[:8]}").store()
    with pytest.raises(Unavailable, match="NoSuchBucket"):
        store.get("k")
    with pytest.raises(Unavailable, match="refused"):
        store.put_if_absent("k", b"x")


def test_plain_http_endpoint_needs_allow_http() -> None:
    with pytest.raises(Invalid, match="allow-http"):
        S3Store("bucket", endpoint="http://127.0.0.1:9000")


def test_prefix_isolates_stores(store_bucket: S3Endpoint) -> None:
    tag = uuid.uuid4().hex[:8]
    a = store_bucket.store(prefix=f"{tag}/a")
    b = store_bucket.store(prefix=f"/{tag}/b/")
    a.put_if_absent("k", b"a")
    assert b.put_if_absent("k", b"b") is True
    assert [m.key for m in a.list("")] == ["k"]
    assert a.url == f"s3://{store_bucket.bucket}/{tag}/a/"
    assert b.url_for("k") == f"s3://{store_bucket.bucket}/{tag}/b/k"
    with pytest.raises(NotFound):
        a.get("b/k")


def test_list_pages_through_many_objects(store_bucket: S3Endpoint) -> None:
    store = store_bucket.store(prefix=f"many-{uuid.uuid4().hex[:8]}")
    keys = [f"k/{i:05d}" for i in range(1005)]  # more than one 1000-key page
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store.put(key, b""), keys))
    assert [m.key for m in store.list("k/")] == keys


def test_datafusion_reads_the_bucket_natively(store_bucket: S3Endpoint) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datafusion = pytest.importorskip("datafusion")
    store = store_bucket.store(prefix=f"df-{uuid.uuid4().hex[:8]}")
    for day, values in (("2024-01-01", [1, 2]), ("2024-01-02", [3])):
        buf = io.BytesIO()
        pq.write_table(pa.table({"v": values}), buf)
        store.put_if_absent(f"node0/tables/db/cpu/date={day}/f.parquet", buf.getvalue())
    ctx = datafusion.SessionContext()
    ctx.register_object_store("s3://", store.datafusion_store(), store.bucket)
    ctx.register_parquet("cpu", store.url_for("node0/tables/db/cpu/"))
    assert ctx.sql("SELECT sum(v) AS s FROM cpu").to_pylist() == [{"s": 6}]
