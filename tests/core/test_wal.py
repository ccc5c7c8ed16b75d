import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeflux.errors import Corrupt, Fenced, Unavailable
from lakeflux.store import paths
from lakeflux.store.memory import MemoryStore
from lakeflux.testing.faulty import FaultyStore
from lakeflux.wal import Segment, Wal, WalTable
from lakeflux.wal.segment import META_KEY


def seg(seq, writer="w"):
    cpu = pa.table({"host": ["a", None], "v": [1.0, 2.0], "time": pa.array([10, 20], pa.int64())})
    mem = pa.table({"free": pa.array([5], pa.int64()), "time": pa.array([15], pa.int64())})
    return Segment(seq=seq, writer_id=writer, tables=[WalTable("db", "cpu", cpu, ("host",)),
                                                      WalTable("db2", "mem", mem, ())])


def test_roundtrip_and_self_describing_metadata():
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(seg(0))
    got = wal.read(0)
    assert [(t.db, t.table, t.tags) for t in got.tables] == [("db", "cpu", ("host",)), ("db2", "mem", ())]
    assert got.tables[0].data.to_pydict() == {"host": ["a", None], "v": [1.0, 2.0], "time": [10, 20]}
    assert got.tables[1].data.to_pydict() == {"free": [5], "time": [15]}
    # A plain Parquet reader sees a valid file with the metadata.
    import io
    pf = pq.ParquetFile(io.BytesIO(store.get(paths.wal_segment("n", 0))))
    assert pf.num_row_groups == 2
    assert b'"seq":0' in pf.schema_arrow.metadata[META_KEY]


def test_read_one_table_by_range():
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(seg(3))
    got = wal.read(3, only={("db2", "mem")})
    assert [t.table for t in got.tables] == ["mem"]
    assert got.tables[0].data.column("free").to_pylist() == [5]


def test_slot_taken_by_other_writer_fences():
    store = MemoryStore()
    Wal(store, "n", "a").commit(seg(0, "a"))
    with pytest.raises(Fenced):
        Wal(store, "n", "b", sleep=lambda s: None).commit(seg(0, "b"))


def test_lost_response_is_resolved_by_reading_back():
    inner = MemoryStore()
    faulty = FaultyStore(inner, seed=1)
    faulty.lose_response("put_if_absent", times=1)
    wal = Wal(faulty, "n", "w", sleep=lambda s: None)
    wal.commit(seg(0))
    assert wal.read(0).rows == 3


def test_persistent_failure_is_unavailable():
    faulty = FaultyStore(MemoryStore(), seed=1)
    faulty.fail_before("put_if_absent", times=100)
    with pytest.raises(Unavailable):
        Wal(faulty, "n", "w", sleep=lambda s: None).commit(seg(0))


def test_replay_skips_corrupt_segment_unless_strict():
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(seg(0))
    store.put_if_absent(paths.wal_segment("n", 1), b"not parquet")
    wal.commit(seg(2))
    assert [s.seq for s in wal.replay(-1)] == [0, 2]
    with pytest.raises(Corrupt):
        list(wal.replay(-1, fail_on_error=True))
    assert wal.list_seqs(after=0) == [1, 2]


def test_many_tables_share_typed_slots():
    """A flush touching many tables keeps the file as wide as its widest table, not the sum of all."""
    import io

    tables = []
    for i in range(300):
        data = pa.table({f"tag{i}": ["x"], f"f{i}": [float(i)], f"n{i}": pa.array([i], pa.int64()),
                         "time": pa.array([i], pa.int64())})
        tables.append(WalTable("db", f"t{i}", data, (f"tag{i}",)))
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(Segment(seq=0, writer_id="w", tables=tables))
    width = len(pq.ParquetFile(io.BytesIO(store.get(paths.wal_segment("n", 0)))).schema_arrow)
    assert width == 4  # string/0, double/0, int64/0, int64/1
    got = wal.read(0, only={("db", "t123")})
    assert got.tables[0].data.to_pydict() == {"tag123": ["x"], "f123": [123.0], "n123": [123], "time": [123]}
    assert [t.table for t in wal.read(0).tables] == [f"t{i}" for i in range(300)]


def test_integers_at_their_limits_round_trip():
    """Integer slots are delta-encoded: deltas between extremes wrap, and must come back exact."""
    n = 7 * 300
    u = pa.array([0, 2**64 - 1, 0, 2**63, 2**63 - 1, 1, 2**64 - 1] * 300, pa.uint64())
    i = pa.array([-2**63, 2**63 - 1, 0, -1, 2**63 - 1, -2**63, 5] * 300, pa.int64())
    data = pa.table({"u": u, "i": i, "time": pa.array(range(n), pa.int64())})
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(Segment(seq=0, writer_id="w", tables=[WalTable("db", "t", data, ())]))
    assert wal.read(0).tables[0].data.equals(data)


def test_segments_of_earlier_versions_still_read():
    """Earlier versions wrote segments with lz4 and plain integers; the same file written that way (same
    schema, metadata and row groups) replays and reads by table as before."""
    import io

    store = MemoryStore()
    Wal(store, "n", "w").commit(seg(4))
    key = paths.wal_segment("n", 4)
    current = pq.ParquetFile(io.BytesIO(store.get(key)))
    strings = [f.name for f in current.schema_arrow if pa.types.is_string(f.type)]
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, current.schema_arrow, compression="lz4", use_dictionary=strings or False,
                          write_statistics=False) as writer:
        for rg in range(current.num_row_groups):
            writer.write_table(current.read_row_group(rg), row_group_size=max(1, current.metadata.row_group(rg).num_rows))
    old = MemoryStore()
    old.put_if_absent(key, sink.getvalue())
    assert pq.ParquetFile(io.BytesIO(old.get(key))).metadata.row_group(0).column(0).compression == "LZ4"
    wal = Wal(old, "n", "w")
    [got] = list(wal.replay(-1))
    assert [(t.table, t.data.to_pydict()) for t in got.tables] == [(t.table, t.data.to_pydict()) for t in seg(4).tables]
    assert wal.read(4, only={("db2", "mem")}).tables[0].data.to_pydict() == {"free": [5], "time": [15]}
