"""Names in object keys (store/paths.py): every name a catalog accepts gives a valid key of bounded length,
distinct names give distinct keys, and names whose keys worked before keep exactly those keys."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lakeflux.store import ObjectStore, paths
from lakeflux.store._common import check_write_key

AWKWARD = [".", "..", "...", "%2E", "%2E%2E", "x" * 300, "中" * 30, "中" * 28, "y" * 5000, "a/b", "a!b",
           " ", "\x00", "\x01\x1f", "..\\..", "😀" * 100, "x" * 255, "x" * 256, "x" * 212]
OLD_SAFE = "-_.,=:@ "


def old_segment(name: str) -> str:
    """How every earlier version escaped a name (unbounded, dots as they are)."""
    return quote(name, safe=OLD_SAFE)


def keys_of(name: str) -> list[str]:
    """Every key the name appears in, as table, database and trigger name."""
    table = paths.table_file("node0", "db", name, "2024-01-02", paths.snapshot_file_name(7))
    return [
        table,
        paths.staging_file("node0", 7, table),
        paths.trash_file("node0", 10**18, table),
        paths.trigger_cursor("node0", "db", name),
        paths.plugin_logs("node0", name, 3),
    ]


def fits(key: str) -> None:
    check_write_key(key)
    assert len(key.encode()) <= 1024, "S3 keys are at most 1024 bytes"
    for segment in key.split("/"):
        assert len(segment.encode()) <= 255, segment
    # A file store writes through `<last segment>.<32 hex>.lftmp` beside the object.
    assert len(key.rsplit("/", 1)[-1]) + 39 <= 255


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_names_give_valid_bounded_keys(name):
    for key in keys_of(name):
        fits(key)


@given(st.text(min_size=1, max_size=600))
def test_any_name_gives_valid_bounded_keys(name):
    for key in keys_of(name):
        fits(key)


@given(st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=400))
def test_distinct_names_give_distinct_keys(a, b):
    if a != b:
        assert paths.table_prefix("n", "db", a) != paths.table_prefix("n", "db", b)
        assert paths.trigger_cursor("n", "db", a) != paths.trigger_cursor("n", "db", b)


def test_dots_and_their_escapes_stay_apart():
    segments = {paths.name_segment(n) for n in [".", "..", "%2E", "%2E%2E", "...", "%252E"]}
    assert len(segments) == 6
    assert paths.name_segment(".") == "%2E" and paths.name_segment("..") == "%2E%2E"


@given(st.text(min_size=1, max_size=300))
def test_names_that_worked_before_keep_their_keys(name):
    old = old_segment(name)
    if old not in (".", "..") and len(old) <= 255:
        assert paths.table_prefix("n", "db", name) == f"n/tables/db/{old}/"
    if len(old) + len(".json") + 39 <= 255:  # the cursor's temp file fitted a file store
        assert paths.trigger_cursor("n", "db", name) == f"n/cursors/db/{old}.json"
        assert paths.legacy_trigger_cursor("n", "db", name) is None


def test_long_names_stay_readable_and_apart():
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    sa, sb = paths.name_segment(a), paths.name_segment(b)
    assert sa != sb and sa.startswith("x" * 200) and len(sa) == 255 and "!" in sa
    cjk = paths.name_segment("中" * 30)
    assert cjk.startswith("%E4%B8%AD") and "%" not in cjk[cjk.rindex("%") + 3:cjk.index("!")]


def test_a_long_trigger_names_old_cursor_key_is_known():
    name = "t" * 300
    assert paths.legacy_trigger_cursor("n", "db", name) == f"n/cursors/db/{name}.json"
    assert paths.trigger_cursor("n", "db", name) != f"n/cursors/db/{name}.json"


def test_old_table_files_get_their_current_key():
    name = "中" * 30
    old = f"node0/tables/db/{old_segment(name)}/date=2024-01-02/00000000000000000007.parquet"
    new = paths.current_table_file("node0", "db", name, old)
    assert new == paths.table_file("node0", "db", name, "2024-01-02", "00000000000000000007") != old
    assert paths.current_table_file("node0", "db", name, new) == new


@pytest.mark.parametrize("name", AWKWARD)
def test_every_store_takes_awkward_names(store: ObjectStore, name: str) -> None:
    for key in keys_of(name):
        assert store.put_if_absent(key, b"x")
        store.put(key, b"y")
        assert store.get(key) == b"y"
    listed = store.list(paths.table_prefix("node0", "db", name))
    assert [m.key for m in listed] == [keys_of(name)[0]]
