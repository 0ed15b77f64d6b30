"""A lease lives as long as any Python object refers to the slot's memory."""

from __future__ import annotations

import gc

import polars as pl
import pyarrow as pa
import pytest
from helpers import bar_batch

import ringfeed as rf


def test_frames_outlive_reader_close_and_overwrites(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema(), slots=2, on_full="overwrite")
    r = rf.Reader.open(name)
    w.write(bar_batch(1, 5000))
    b = r.read(5)
    assert b is not None
    df = b.to_polars()
    tbl = b.to_arrow()
    series = df["close"]
    expected = pl.DataFrame(bar_batch(1, 5000))
    del b
    r.close()
    assert r.closed
    # The writer cycles through every other buffer many times over; the leased one must not be touched.
    for seq in range(2, 200):
        w.write(bar_batch(seq, 5000))
    gc.collect()
    assert df.equals(expected)
    assert tbl.equals(bar_batch(1, 5000))
    assert series.equals(expected["close"])
    w.close()
    assert df.equals(expected)  # also after the writer closed and removed the arena name


def test_lease_released_when_last_object_goes(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        w.write(bar_batch(1, 100))
        b = r.read(5)
        assert b is not None and r.leases == 1
        df = b.to_polars()
        arr = b.to_arrow().column("open")
        del b
        assert r.leases == 1
        del df
        assert r.leases == 1
        del arr
        gc.collect()
        assert r.leases == 0


def test_too_many_leases_then_recovers(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), leases_per_reader=2) as w, rf.Reader.open(name) as r:
        for seq in range(1, 4):
            w.write(bar_batch(seq, 10))
        held = [r.read(5), r.read(5)]
        with pytest.raises(rf.TooManyLeasesError) as e:
            r.read(5)
        assert "leases_per_reader" in str(e.value)
        assert e.value.max == 2
        held.clear()
        b = r.read(5)  # the third batch was not skipped
        assert b is not None and b.seq == 3


def test_batch_outlives_writer_close(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema())
    r = rf.Reader.open(name)
    w.write(bar_batch(1, 1000))
    w.close()
    b = r.read(5)
    assert b is not None
    with pytest.raises(rf.ClosedError):
        r.read(5)
    r.close()
    del r, w
    gc.collect()
    assert b.to_arrow().equals(bar_batch(1, 1000))


def test_dataframe_from_a_dropped_reader_object(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema(), slots=2)

    def grab() -> pl.DataFrame:
        r = rf.Reader.open(name)
        w.write(bar_batch(9, 300))
        b = r.read(5)
        assert b is not None
        return b.to_polars()  # reader and batch go out of scope here

    df = grab()
    gc.collect()
    for seq in range(10, 60):
        w.write(bar_batch(seq, 300))
    assert df.equals(pl.DataFrame(bar_batch(9, 300)))
    w.close()


def test_arrow_slice_keeps_lease(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slots=2) as w, rf.Reader.open(name) as r:
        w.write(bar_batch(1, 1000))
        b = r.read(5)
        assert b is not None
        tail = b.to_arrow().column("close").slice(990)
        del b
        for seq in range(2, 50):
            w.write(bar_batch(seq, 1000))
            nb = r.read(5)
            del nb
        assert tail.to_pylist() == [1 + j * 0.5 + 0.25 for j in range(990, 1000)]
        assert r.leases == 1
        del tail
        assert r.leases == 0


def test_many_batches_through_a_small_ring(name: str) -> None:
    # Steady state: read, convert, drop; leases never accumulate.
    with rf.Writer.create(name, rf.bar_schema(), slots=4, on_full="block", timeout=5.0) as w, rf.Reader.open(name) as r:
        for seq in range(1, 301):
            w.write(bar_batch(seq, 50))
            b = r.read(5)
            assert b is not None and b.seq == seq
            df = b.to_polars()
            assert df["ts"].dt.epoch("ns")[0] == seq * 1_000_000_000
        assert r.leases == 1  # `b` and `df` of the last round share one lease
        del b, df
        assert r.leases == 0


def test_pa_table_of_batch_is_independent_of_batch_object(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        w.write(bar_batch(3, 10))
        t = pa.table(r.read(5))  # the Batch object is a temporary
        gc.collect()
        assert r.leases == 1
        assert t.to_batches()[0].equals(bar_batch(3, 10))


def test_copy_holds_no_lease(name: str) -> None:
    src = pa.record_batch(
        {
            "x": pa.array(range(100), pa.float64()),
            "d": pa.array([f"v{i % 3}" for i in range(100)]).dictionary_encode(),
            "s": pa.array([f"long string number {i}" for i in range(100)], pa.string_view()),
        }
    )
    with rf.Writer.create(name, src.schema, slots=2, leases_per_reader=1) as w, rf.Reader.open(name) as r:
        w.write(src)
        b = r.read(5)
        assert b is not None
        c = b.copy()
        assert (c.seq, c.ts_ns, len(c)) == (b.seq, b.ts_ns, len(b))
        assert b.is_zero_copy and not c.is_zero_copy
        for col in c.to_arrow().columns:
            for buf in col.buffers():
                assert buf is None or not (c.arena_range[0] <= buf.address < c.arena_range[1])
        del b
        assert r.leases == 0
        kept = c.to_polars()
        for seq in range(2, 40):  # with one lease allowed, holding `c` does not block reading
            w.write(src)
            nb = r.read(5)
            assert nb is not None
            del nb
        assert c.to_arrow().equals(src)
        assert kept.equals(pl.DataFrame(src))
