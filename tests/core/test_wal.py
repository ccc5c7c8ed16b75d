import orjson
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
    assert pf.num_row_groups == 1  # both tables' rows, back to back
    meta = orjson.loads(pf.schema_arrow.metadata[META_KEY])
    assert (meta["version"], meta["seq"]) == (3, 0)
    assert [(e["table"], e["first_row"], e["rows"]) for e in meta["tables"]] == [("cpu", 0, 2), ("mem", 2, 1)]


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


def _version_2(segment: Segment, compression: str = "none") -> bytes:
    """`segment` laid out as version 2 wrote it: one row group per table, its unused slots null."""
    import io

    from lakeflux.wal.segment import _slots

    slot_types: dict[str, pa.DataType] = {}
    entries = []
    for i, t in enumerate(segment.tables):
        slots = _slots(t.data.schema)
        for f, slot in zip(t.data.schema, slots, strict=True):
            slot_types.setdefault(slot, f.type)
        entries.append({"db": t.db, "table": t.table, "row_group": i, "rows": t.data.num_rows, "tags": list(t.tags),
                        "columns": [[f.name, slot] for f, slot in zip(t.data.schema, slots, strict=True)],
                        "min_time": None, "max_time": None})
    meta = {"version": 2, "seq": segment.seq, "writer_id": segment.writer_id, "min_time": None, "max_time": None,
            "tables": entries}
    schema = pa.schema([pa.field(n, k) for n, k in sorted(slot_types.items())], metadata={META_KEY: orjson.dumps(meta)})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, compression=compression) as writer:
        for t, e in zip(segment.tables, entries, strict=True):
            column_in = {slot: name for name, slot in e["columns"]}
            cols = [t.data.column(column_in[f.name]) if f.name in column_in else pa.nulls(t.data.num_rows, f.type)
                    for f in schema]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=max(1, t.data.num_rows))
    return sink.getvalue()


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_segments_of_earlier_versions_still_read(compression):
    """Version 2 wrote one row group per table (and before that, lz4 and plain integers): such segments
    replay and read by table as before."""
    import io

    key = paths.wal_segment("n", 4)
    old = MemoryStore()
    old.put_if_absent(key, _version_2(seg(4), compression))
    pf = pq.ParquetFile(io.BytesIO(old.get(key)))
    assert pf.num_row_groups == 2
    assert pf.metadata.row_group(0).column(0).compression == {"none": "UNCOMPRESSED", "lz4": "LZ4"}[compression]
    wal = Wal(old, "n", "w")
    [got] = list(wal.replay(-1))
    assert [(t.table, t.data.to_pydict()) for t in got.tables] == [(t.table, t.data.to_pydict()) for t in seg(4).tables]
    assert wal.read(4, only={("db2", "mem")}).tables[0].data.to_pydict() == {"free": [5], "time": [15]}
    assert wal.read(4, only={("db", "cpu")}).tables[0].data.to_pydict() == seg(4).tables[0].data.to_pydict()


def test_a_table_spanning_row_groups_reads_by_range(monkeypatch):
    """A segment past the writer's row group limit spans row groups: a table's run is read from each of
    them and only them."""
    import io

    import lakeflux.wal.segment as segment

    tables = [WalTable("db", f"t{i}", pa.table({"v": pa.array(range(i * 10, i * 10 + 7), pa.int64()),
                                                 "time": pa.array(range(7), pa.int64())}), ()) for i in range(4)]
    real = pq.ParquetWriter.write_table
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lambda self, t, row_group_size=None: real(self, t, 5))
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(Segment(seq=0, writer_id="w", tables=tables))
    monkeypatch.undo()
    assert pq.ParquetFile(io.BytesIO(store.get(paths.wal_segment("n", 0)))).num_row_groups == 6
    for t in tables:
        [got] = wal.read(0, only={("db", t.table)}).tables
        assert got.data.equals(t.data)
    assert [t.data.to_pydict() for t in wal.read(0).tables] == [t.data.to_pydict() for t in tables]
    assert segment.decode(store.get(paths.wal_segment("n", 0)), "k", only=set()).tables == []


def test_a_table_without_rows_round_trips():
    empty = pa.table({"v": pa.array([], pa.float64()), "time": pa.array([], pa.int64())})
    tables = [WalTable("db", "a", empty, ()), seg(0).tables[0], WalTable("db", "b", empty, ())]
    store = MemoryStore()
    wal = Wal(store, "n", "w")
    wal.commit(Segment(seq=0, writer_id="w", tables=tables))
    assert [(t.table, t.data.num_rows) for t in wal.read(0).tables] == [("a", 0), ("cpu", 2), ("b", 0)]
    assert wal.read(0, only={("db", "b")}).tables[0].data.num_rows == 0
