"""Small batches (issue 17): the writer's schema cache, Reader.read_many, to_polars."""

from __future__ import annotations

import gc

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from helpers import bar_batch

import ringfeed as rf


def test_writer_cache_sees_a_changed_schema_under_the_same_shape(name: str) -> None:
    """Frames whose schema differs from the last one only in a name, a type or
    nullability are not taken for the cached schema: each is conformed or refused."""
    s = pa.schema([("x", pa.int64()), ("y", pa.float64())])
    with rf.Writer.create(name, s) as w, rf.Reader.open(name) as r:
        w.write(pa.record_batch([pa.array([1]), pa.array([1.5])], schema=s))
        w.write(pa.record_batch([pa.array([2]), pa.array([2.5])], schema=s))
        # Same shape, other name: refused, then the cached schema still works.
        other = pa.schema([("x", pa.int64()), ("z", pa.float64())])
        with pytest.raises(rf.SchemaMismatchError):
            w.write(pa.record_batch([pa.array([3]), pa.array([3.5])], schema=other))
        # Same names, other type: refused.
        wrong = pa.schema([("x", pa.int64()), ("y", pa.int64())])
        with pytest.raises(rf.SchemaMismatchError):
            w.write(pa.record_batch([pa.array([4]), pa.array([4])], schema=wrong))
        # Plain utf8 into a view column and back: conformed each time.
        w.write(pa.record_batch([pa.array([5]), pa.array([5.5])], schema=s))
        got = [r.read(0) for _ in range(3)]
        assert [b.to_polars()["x"][0] for b in got if b is not None] == [1, 2, 5]
        assert r.read(0) is None


def test_writer_cache_alternating_string_layouts(name: str) -> None:
    """utf8 and string_view frames alternate: the cache re-parses on each change
    and every batch lands with the ring's layout and the right values."""
    s = pa.schema([("sym", pa.string()), ("v", pa.float64())])
    with rf.Writer.create(name, s) as w, rf.Reader.open(name) as r:
        for i in range(6):
            typ = pa.string() if i % 2 == 0 else pa.string_view()
            sch = pa.schema([("sym", typ), ("v", pa.float64())])
            w.write(pa.record_batch([pa.array([f"S{i}"]).cast(typ), pa.array([float(i)])], schema=sch))
        vals = []
        for _ in range(6):
            b = r.read(0)
            assert b is not None
            assert b.schema.field("sym").type == pa.string_view()
            vals.append(b.to_polars().row(0))
        assert vals == [(f"S{i}", float(i)) for i in range(6)]


def test_writer_cache_still_validates_values(name: str) -> None:
    """A cached schema skips the parse, not the checks: bad UTF-8 behind a
    known schema is refused, and the ring goes on."""
    s = pa.schema([("sym", pa.string())])
    with rf.Writer.create(name, s) as w, rf.Reader.open(name) as r:
        w.write(pa.record_batch([pa.array(["ok"])], schema=s))
        offsets = pa.py_buffer(np.array([0, 2], dtype=np.int32).tobytes())
        bad = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(b"\xff\xfe")])
        with pytest.raises(rf.InvalidArgumentError):
            w.write(pa.record_batch([bad], schema=s))
        w.write(pa.record_batch([pa.array(["fine"])], schema=s))
        assert [r.read(0).to_polars()["sym"][0] for _ in range(2)] == ["ok", "fine"]  # type: ignore[union-attr]


def test_read_many_coalesces_every_pending_batch(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slots=64, leases_per_reader=2) as w, rf.Reader.open(name) as r:
        for seq in range(1, 21):
            w.write(bar_batch(seq, 3))
        b = r.read_many(0)
        assert b is not None
        # More batches than leases_per_reader: copied, no lease held.
        assert (b.first_seq, b.seq, b.batches, b.num_rows) == (1, 20, 20, 60)
        assert not b.is_zero_copy
        assert r.leases == 0
        df = b.to_polars()
        want = pl.concat([pl.DataFrame(bar_batch(s, 3)) for s in range(1, 21)])
        assert df.equals(want)
        assert b.to_arrow().num_rows == 60
        assert r.read_many(0) is None


def test_read_many_of_one_batch_is_zero_copy(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        w.write(bar_batch(1, 5))
        b = r.read_many(0)
        assert b is not None and b.batches == 1 and b.is_zero_copy and b.seq == b.first_seq == 1


def test_read_many_limit(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slots=16) as w, rf.Reader.open(name) as r:
        for seq in range(1, 11):
            w.write(bar_batch(seq, 1))
        with pytest.raises(rf.InvalidArgumentError):
            r.read_many(0, max_batches=0)
        a = r.read_many(0, max_batches=4)
        b = r.read_many(0)
        assert a is not None and b is not None
        assert (a.first_seq, a.seq) == (1, 4) and (b.first_seq, b.seq) == (5, 10)


def test_read_many_then_lag_is_raised_by_the_next_read(name: str) -> None:
    """A reader far behind an overwrite ring: read_many returns what it got,
    and the lag is raised once, by the next read; reading goes on."""
    with rf.Writer.create(name, rf.bar_schema(), slots=4) as w, rf.Reader.open(name) as r:
        for seq in range(1, 4):
            w.write(bar_batch(seq, 1))
        first = r.read(0)  # hold seq 1; the reader's cursor is at 2
        assert first is not None
        for seq in range(4, 20):
            w.write(bar_batch(seq, 1))
        seen: list[int] = []
        lagged = 0
        for _ in range(20):
            try:
                b = r.read_many(0)
            except rf.LaggedError as e:
                lagged += 1
                assert e.missed > 0
                continue
            if b is None:
                break
            seen.extend(range(b.first_seq, b.seq + 1))
        assert lagged >= 1
        assert seen == sorted(seen) and seen[-1] == 19
        del first
        w.write(bar_batch(20, 1))
        last = r.read(0)
        assert last is not None and last.seq == 20


def test_read_many_after_close_and_timeout(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema())
    r = rf.Reader.open(name)
    assert r.read_many(0) is None
    assert r.read_many(0.05) is None
    w.write(bar_batch(1, 2))
    w.write(bar_batch(2, 2))
    w.close()
    b = r.read_many(1)
    assert b is not None and b.batches == 2
    with pytest.raises(rf.ClosedError):
        r.read_many(1)
    r.close()
    with pytest.raises(rf.ClosedError):
        r.read_many(0)


def test_to_polars_and_schema_repeat(name: str) -> None:
    """The cached importers give the same frames, batch after batch, and frames
    outlive their batch (the lease drops only with the frame)."""
    with rf.Writer.create(name, rf.bar_schema(), slots=8, leases_per_reader=8) as w, rf.Reader.open(name) as r:
        assert r.schema is r.schema  # made once per reader
        assert r.schema.equals(rf.bar_schema())
        frames = []
        for seq in range(1, 6):
            w.write(bar_batch(seq, 4))
            b = r.read(0)
            assert b is not None
            frames.append(b.to_polars())
            del b
        gc.collect()
        for seq, df in enumerate(frames, 1):
            assert df.equals(pl.DataFrame(bar_batch(seq, 4)))
        assert r.leases == 5
        del df
        frames.clear()
        gc.collect()
        assert r.leases == 0
        # Still answers a real read after all that.
        w.write(bar_batch(9, 1))
        last = r.read(0)
        assert last is not None and last.to_polars().height == 1
