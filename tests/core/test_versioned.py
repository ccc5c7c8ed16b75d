"""Versioned JSON objects in the store: anything but a readable object of the right version is Corrupt,
naming what it is and its key, whichever reader meets it."""

from __future__ import annotations

import orjson
import pytest

from lakeflux.buffer import manifest
from lakeflux.cluster import compaction, registry, relay
from lakeflux.errors import Corrupt
from lakeflux.versioned import decode_versioned

READERS = [
    (manifest.Manifest.from_bytes, manifest.FORMAT_VERSION, "snapshot manifest"),
    (compaction.CompactionManifest.from_bytes, compaction.FORMAT_VERSION, "compaction manifest"),
    (registry.NodeRecord.from_bytes, registry.FORMAT_VERSION, "node record"),
    (relay.RelayEntry.from_bytes, relay.FORMAT_VERSION, "relay entry"),
]


def test_decode_versioned_builds_from_the_object_without_its_version():
    assert decode_versioned(b'{"version": 3, "a": 1}', 3, "thing", "k", dict) == {"a": 1}


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json", "line 1 column 1"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"a": 1}', "unsupported version None"),
    (b'{"version": 99, "a": 1}', "unsupported version 99"),
])
def test_decode_versioned_refuses_what_it_cannot_read(data, reason):
    with pytest.raises(Corrupt, match=f"thing some/key is unreadable: .*{reason}"):
        decode_versioned(data, 3, "thing", "some/key", dict)


def test_a_build_that_fails_is_corrupt_too():
    with pytest.raises(Corrupt, match="thing k is unreadable: 'missing'"):
        decode_versioned(b'{"version": 1}', 1, "thing", "k", lambda d: d["missing"])
    with pytest.raises(Corrupt, match="thing k is unreadable"):
        decode_versioned(b'{"version": 1, "n": "x"}', 1, "thing", "k", lambda d: int(d["n"]))


@pytest.mark.parametrize(("read", "version", "what"), READERS)
@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"version": -1}', None])
def test_every_reader_reports_a_corrupt_object_by_name_and_key(read, version, what, data):
    data = orjson.dumps({"version": version}) if data is None else data  # right version, no fields
    with pytest.raises(Corrupt, match=f"^{what} node0/x.json is unreadable: "):
        read(data, "node0/x.json")
