"""Every Arrow type the bar schema uses, plus strings, binary, lists, structs,
dictionaries and nulls, through a ring and back (pyarrow and polars)."""

from __future__ import annotations

import datetime as dt
import decimal

import polars as pl
import pyarrow as pa
import pytest
from helpers import bar_batch, in_range

import ringfeed as rf

N = 257  # not a multiple of 8 or 64: exercises bitmap tails

COLUMNS: dict[str, pa.Array] = {
    # the bar schema's types
    "ts": pa.array([i * 60_000_000_000 for i in range(N)], pa.timestamp("ns", "UTC")),
    "symbol": pa.array([f"SYM{i % 7}-long-enough-for-a-data-buffer" for i in range(N)], pa.string_view()),
    "f64": pa.array([i * 0.5 for i in range(N)], pa.float64()),
    # other primitives
    "i8": pa.array([i % 100 - 50 for i in range(N)], pa.int8()),
    "i16": pa.array([i * 3 for i in range(N)], pa.int16()),
    "i32": pa.array(range(N), pa.int32()),
    "i64": pa.array([i * 10**12 for i in range(N)], pa.int64()),
    "u8": pa.array([i % 256 for i in range(N)], pa.uint8()),
    "u32": pa.array(range(N), pa.uint32()),
    "u64": pa.array([2**63 + i for i in range(N)], pa.uint64()),
    "f32": pa.array([i / 4 for i in range(N)], pa.float32()),
    "bool": pa.array([i % 3 == 0 for i in range(N)], pa.bool_()),
    "ts_us_naive": pa.array([i for i in range(N)], pa.timestamp("us")),
    "date32": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(N)], pa.date32()),
    "dur": pa.array(range(N), pa.duration("ms")),
    "dec": pa.array([decimal.Decimal(i) / 100 for i in range(N)], pa.decimal128(12, 2)),
    # strings and binary, every layout
    "utf8": pa.array([f"s{i}" * (i % 5) for i in range(N)], pa.string()),
    "large_utf8": pa.array([f"L{i}" for i in range(N)], pa.large_string()),
    "binary": pa.array([bytes([i % 256]) * (i % 4) for i in range(N)], pa.binary()),
    "fsb": pa.array([i.to_bytes(4, "little") for i in range(N)], pa.binary(4)),
    # nested
    "list": pa.array([list(range(i % 4)) for i in range(N)], pa.list_(pa.int64())),
    "large_list": pa.array([[f"x{j}" for j in range(i % 3)] for i in range(N)], pa.large_list(pa.string())),
    "list_list": pa.array([[[i], [i, i]] for i in range(N)], pa.list_(pa.list_(pa.int32()))),
    "struct": pa.array([{"a": i, "b": f"b{i}"} for i in range(N)], pa.struct([("a", pa.int64()), ("b", pa.string())])),
    # dictionaries
    "dict": pa.array([f"D{i % 5}" for i in range(N)]).dictionary_encode(),
    "dict_i8": pa.DictionaryArray.from_arrays(pa.array([i % 3 for i in range(N)], pa.int8()), pa.array(["a", "b", "c"])),
}


def with_nulls(a: pa.Array) -> pa.Array:
    return pa.array([None if i % 5 == 1 else v for i, v in enumerate(a.to_pylist())], a.type)


def roundtrip(name: str, batch: pa.RecordBatch) -> tuple[rf.Batch, pa.RecordBatch]:
    """Through a ring that keeps every layout as given (the default stores strings and
    binary as views: see test_strings_are_stored_as_views_by_default)."""
    with rf.Writer.create(name, batch.schema, strings="as_given") as w, rf.Reader.open(name) as r:
        seq = w.write(batch)
        got = r.read(timeout=5)
        assert got is not None and got.seq == seq == 1
        return got, got.to_arrow()


@pytest.mark.parametrize("col", sorted(COLUMNS))
def test_each_type_roundtrips(name: str, col: str) -> None:
    batch = pa.record_batch({col: COLUMNS[col]})
    b, back = roundtrip(name, batch)
    assert back.equals(batch), (back, batch)
    assert back.schema == batch.schema
    assert b.is_zero_copy


@pytest.mark.parametrize("col", sorted(c for c in COLUMNS if not c.startswith("dict")))
def test_each_type_with_nulls_roundtrips(name: str, col: str) -> None:
    arr = with_nulls(COLUMNS[col])
    assert arr.null_count > 0
    batch = pa.record_batch({col: arr})
    _, back = roundtrip(name, batch)
    assert back.equals(batch)
    assert back.column(0).null_count == arr.null_count


def test_dictionary_with_null_keys(name: str) -> None:
    keys = pa.array([None if i % 4 == 0 else i % 3 for i in range(N)], pa.int32())
    batch = pa.record_batch({"d": pa.DictionaryArray.from_arrays(keys, pa.array(["x", "y", "z"]))})
    _, back = roundtrip(name, batch)
    assert back.equals(batch)


def test_all_columns_at_once(name: str) -> None:
    batch = pa.record_batch(COLUMNS)
    b, back = roundtrip(name, batch)
    assert back.equals(batch)
    assert len(b) == b.num_rows == N and b.num_columns == len(COLUMNS)
    assert b.schema == batch.schema


def test_empty_batch(name: str) -> None:
    batch = pa.record_batch({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string_view())})
    b, back = roundtrip(name, batch)
    assert len(b) == 0 and back.equals(batch)


def test_sliced_batch_roundtrips(name: str) -> None:
    batch = pa.record_batch({"x": COLUMNS["i64"], "s": COLUMNS["utf8"], "l": COLUMNS["list"]}).slice(3, 100)
    _, back = roundtrip(name, batch)
    assert back.equals(batch)


def test_bar_schema_roundtrip_via_polars(name: str) -> None:
    src = bar_batch(7, 1000)
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        w.write(pl.DataFrame(src))  # polars frame: nullable fields, conformed to the ring's
        b = r.read(5)
        assert b is not None
        assert b.to_arrow().equals(src)
        df = b.to_polars()
        assert df.equals(pl.DataFrame(src))
        assert df.schema["ts"] == pl.Datetime("ns", "UTC")
        assert df.schema["symbol"] == pl.String


def test_polars_types_roundtrip(name: str) -> None:
    df = pl.DataFrame(
        {
            "i": pl.Series(range(N), dtype=pl.Int64),
            "u": pl.Series(range(N), dtype=pl.UInt16),
            "f": pl.Series([i / 3 for i in range(N)], dtype=pl.Float32),
            "b": [i % 2 == 0 for i in range(N)],
            "s": [None if i % 9 == 0 else f"str{i}" for i in range(N)],
            "l": [[i, None] for i in range(N)],
            "ts": pl.datetime_range(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1) + dt.timedelta(minutes=N - 1), "1m", eager=True, time_unit="ns", time_zone="UTC"),
            "d": pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 1, 1) + dt.timedelta(days=N - 1), eager=True),
            "st": [{"x": i, "y": str(i)} for i in range(N)],
            "cat": pl.Series([f"c{i % 3}" for i in range(N)], dtype=pl.Categorical),
        }
    )
    with rf.Writer.create(name) as w:
        w.write(df)  # a writer created without a schema makes its arena on the first write
        with rf.Reader.open(name, start="oldest") as r:
            b = r.read(5)
            assert b is not None
            assert b.to_polars().equals(df)
            assert pl.DataFrame(b).equals(df)


def test_pycapsule_consumers(name: str) -> None:
    src = bar_batch(1, 64)
    with rf.Writer.create(name, src.schema) as w, rf.Reader.open(name) as r:
        w.write(src)
        b = r.read(5)
        assert b is not None
        assert pa.table(b).equals(pa.Table.from_batches([src]))
        assert pa.record_batch(b).equals(src)
        assert pa.RecordBatchReader.from_stream(b).read_all().equals(pa.Table.from_batches([src]))
        assert pl.DataFrame(b).equals(pl.DataFrame(src))


def test_schema_from_first_frame_and_multi_chunk_table(name: str) -> None:
    t = pa.Table.from_batches([bar_batch(1, 10), bar_batch(2, 20), bar_batch(3, 0), bar_batch(4, 5)])
    with rf.Writer.create(name) as w:
        assert w.schema is None
        last = w.write(t)  # one ring batch per non-empty chunk
        assert last == 3
        assert w.schema == t.schema
        with rf.Reader.open(name, start="oldest") as r:
            got = [r.read(5) for _ in range(3)]
            assert [len(b) for b in got if b is not None] == [10, 20, 5]
            assert r.read(0) is None


def test_empty_table_publishes_one_empty_batch(name: str) -> None:
    t = pa.Table.from_batches([], schema=rf.bar_schema())
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        assert w.write(t) == 1
        b = r.read(5)
        assert b is not None and len(b) == 0


def test_conforms_layouts_to_the_ring_schema(name: str) -> None:
    ring = pa.schema([("s", pa.string()), ("l", pa.list_(pa.int64())), ("d", pa.dictionary(pa.int32(), pa.string()))])
    with rf.Writer.create(name, ring, strings="as_given") as w, rf.Reader.open(name) as r:
        # polars: string_view, large_list, and plain strings where the ring wants a dictionary
        w.write(pl.DataFrame({"s": ["a", None, "c"], "l": [[1], [], [2, 3]], "d": ["x", "y", "x"]}))
        b = r.read(5)
        assert b is not None
        t = b.to_arrow()
        assert t.schema == ring
        assert t.column("s").to_pylist() == ["a", None, "c"]
        assert t.column("l").to_pylist() == [[1], [], [2, 3]]
        assert t.column("d").to_pylist() == ["x", "y", "x"]


def test_write_accepts_any_capsule_object(name: str) -> None:
    src = bar_batch(2, 10)

    class OnlyStream:
        def __arrow_c_stream__(self, requested_schema: object = None) -> object:
            return pa.Table.from_batches([src]).__arrow_c_stream__(requested_schema)

    class OnlyArray:
        def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
            return src.__arrow_c_array__(requested_schema)

    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        w.write(OnlyStream())
        w.write(OnlyArray())
        for _ in range(2):
            b = r.read(5)
            assert b is not None and b.to_arrow().equals(src)


def test_strings_are_stored_as_views_by_default(name: str) -> None:
    """A new user's first ring: a pyarrow table with plain utf8 strings, written with its
    own schema. The ring stores views, so polars reads the column without an O(rows)
    copy (its views buffer is inside the arena); the values are unchanged."""
    n = 10_000
    table = pa.table(
        {
            "ts": pa.array([i * 60_000_000_000 for i in range(n)], pa.timestamp("ns", "UTC")),
            "symbol": pa.array([f"SYMBOL-{i % 7}-long-enough-to-need-a-data-buffer" for i in range(n)], pa.string()),
            "raw": pa.array([bytes([i % 256]) * 20 for i in range(n)], pa.binary()),
            "close": pa.array([i * 0.5 for i in range(n)], pa.float64()),
        }
    )
    with rf.Writer.create(name, table.schema, slot_bytes=8 << 20) as w, rf.Reader.open(name) as r:
        assert r.schema.field("symbol").type == pa.string_view()
        assert r.schema.field("raw").type == pa.binary_view()
        w.write(table)
        b = r.read(5)
        assert b is not None and b.is_zero_copy
        back = b.to_arrow()
        assert back.column("symbol").to_pylist() == table.column("symbol").to_pylist()
        assert back.column("raw").to_pylist() == table.column("raw").to_pylist()
        df = b.to_polars()
        views = df["symbol"].to_arrow(compat_level=pl.CompatLevel.newest())
        chunk = views.chunks[0] if isinstance(views, pa.ChunkedArray) else views
        assert chunk.type == pa.string_view()
        for buf in chunk.buffers()[1:]:
            assert buf is not None and in_range(buf.address, b.arena_range), "polars copied the strings"
