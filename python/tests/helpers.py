"""Frames used across the tests."""

from __future__ import annotations

import pyarrow as pa

import ringfeed as rf


def bar_batch(seq: int, rows: int) -> pa.RecordBatch:
    """Batch `seq` as `rf-xtest publish` makes it: row j has ts = seq*1e9 + j ns,
    symbol S{j%4}, open = seq + j*0.5, high = open+1, low = open-1,
    close = open+0.25, volume = j."""
    opens = [seq + j * 0.5 for j in range(rows)]
    return pa.record_batch(
        [
            pa.array([seq * 1_000_000_000 + j for j in range(rows)], pa.timestamp("ns", "UTC")),
            pa.array([f"S{j % 4}" for j in range(rows)], pa.string_view()),
            pa.array(opens, pa.float64()),
            pa.array([o + 1 for o in opens], pa.float64()),
            pa.array([o - 1 for o in opens], pa.float64()),
            pa.array([o + 0.25 for o in opens], pa.float64()),
            pa.array([float(j) for j in range(rows)], pa.float64()),
        ],
        schema=rf.bar_schema(),
    )


def in_range(addr: int, rng: tuple[int, int]) -> bool:
    return rng[0] <= addr < rng[1]


def mp_write_bars(name: str, batches: int, rows: int) -> None:
    """multiprocessing target: publish `batches` formula batches once a reader is attached."""
    import polars as pl

    with rf.Writer.create(name, rf.bar_schema(), on_full="block", timeout=30) as w:
        if not w.wait_for_readers(1, timeout=30):
            raise SystemExit(3)
        for seq in range(1, batches + 1):
            w.write(pl.DataFrame(bar_batch(seq, rows)))


def mp_read_bars(name: str, expect: int, rows: int) -> None:
    """multiprocessing target: read and verify `expect` formula batches, exit 0 if all match."""
    r = rf.Reader.open(name, start="oldest", wait=30)
    n = 0
    for b in r:
        n += 1
        if b.seq != n or not b.is_zero_copy or not b.to_arrow().equals(bar_batch(b.seq, rows)):
            raise SystemExit(4)
    raise SystemExit(0 if n == expect else 5)
