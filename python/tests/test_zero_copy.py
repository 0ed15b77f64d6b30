"""Columns handed to pyarrow and polars point into the arena (checked by address)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from helpers import bar_batch, in_range

import ringfeed as rf

ROWS = 100_000


def read_bars(name: str, rows: int = ROWS) -> tuple[rf.Writer, rf.Reader, rf.Batch]:
    w = rf.Writer.create(name, rf.bar_schema(), slot_bytes=16 << 20)
    r = rf.Reader.open(name)
    w.write(bar_batch(1, rows))
    b = r.read(5)
    assert b is not None
    return w, r, b


def test_arena_range_is_a_real_mapping(name: str) -> None:
    w, r, b = read_bars(name, 10)
    lo, hi = b.arena_range
    assert 0 < lo < hi
    assert b.is_zero_copy


def test_to_arrow_buffers_live_in_the_arena(name: str) -> None:
    w, r, b = read_bars(name)
    t = b.to_arrow()
    checked = 0
    for col in t.columns:
        for buf in col.buffers():
            if buf is not None and buf.size > 0:
                assert in_range(buf.address, b.arena_range), col.type
                checked += 1
    assert checked >= 7  # ts, symbol views, five floats (short symbols need no data buffer)


def test_polars_numeric_and_timestamp_columns_are_zero_copy(name: str) -> None:
    w, r, b = read_bars(name)
    df = b.to_polars()
    for col in ("ts", "open", "high", "low", "close", "volume"):
        # allow_copy=False raises if polars had copied: the pointer is polars' own buffer
        arr = df[col].to_numpy(allow_copy=False)
        assert in_range(arr.__array_interface__["data"][0], b.arena_range), col
    # numpy sees the same numbers that are in the arena
    assert np.array_equal(df["volume"].to_numpy(), np.arange(ROWS, dtype=np.float64))


def test_polars_string_view_column_is_zero_copy(name: str) -> None:
    w, r, b = read_bars(name)
    df = pl.DataFrame(b)
    views = df["symbol"].to_arrow(compat_level=pl.CompatLevel.newest())
    assert views.type == pa.string_view()
    chunk = views.chunks[0] if isinstance(views, pa.ChunkedArray) else views
    views_buf = chunk.buffers()[1]
    assert views_buf is not None and in_range(views_buf.address, b.arena_range)


def test_reader_and_batch_keep_no_private_copy(name: str) -> None:
    # Two readers of one batch see the same bytes: same offsets from their mapping start.
    w, r1, b1 = read_bars(name, 1000)
    r2 = rf.Reader.open(name, start="oldest")
    b2 = r2.read(5)
    assert b2 is not None and b2.seq == b1.seq
    a1 = b1.to_arrow().column("close").buffers()[1].address - b1.arena_range[0]
    a2 = b2.to_arrow().column("close").buffers()[1].address - b2.arena_range[0]
    assert a1 == a2
