"""Bad input gives typed errors with messages that say what to do."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
from conftest import run_python
from helpers import bar_batch

import ringfeed as rf


def test_error_hierarchy() -> None:
    for cls in (
        rf.ArenaNotFoundError,
        rf.ArenaExistsError,
        rf.SchemaMismatchError,
        rf.LaggedError,
        rf.WriterGoneError,
        rf.ClosedError,
        rf.BatchTooLargeError,
        rf.TooManyLeasesError,
        rf.RingFullError,
        rf.CorruptBatchError,
    ):
        assert issubclass(cls, rf.RingfeedError)
    assert issubclass(rf.RingfeedError, Exception)


def test_missing_arena(name: str) -> None:
    with pytest.raises(rf.ArenaNotFoundError, match="start its writer first"):
        rf.Reader.open(name)


def test_open_waits_for_the_arena_then_gives_up(name: str) -> None:
    with pytest.raises(rf.ArenaNotFoundError):
        rf.Reader.open(name, wait=0.2)


def test_arena_exists_and_force(name: str) -> None:
    """force replaces only a dead writer's leftover, never a live writer's ring
    (two daemons with one arena prefix must not replace each other's topics)."""
    w = rf.Writer.create(name, rf.bar_schema())
    with pytest.raises(rf.ArenaExistsError, match="alive"):
        rf.Writer.create(name, rf.bar_schema())
    with pytest.raises(rf.ArenaExistsError, match="alive"):
        rf.Writer.create(name, rf.bar_schema(), force=True)
    w.write(bar_batch(1, 3))  # the live writer is untouched
    # A leftover: its writer process died without closing.
    res = run_python("import sys, os, ringfeed as rf; w = rf.Writer.create(sys.argv[1] + '-x', rf.bar_schema()); os._exit(0)", name)
    assert res.returncode == 0, res.stderr
    with pytest.raises(rf.ArenaExistsError, match="force"):
        rf.Writer.create(name + "-x", rf.bar_schema())
    w2 = rf.Writer.create(name + "-x", rf.bar_schema(), force=True)
    w2.close()
    w.close()


def test_closed_arena(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema())
    r = rf.Reader.open(name)
    w.write(bar_batch(1, 3))
    w.close()
    assert w.closed
    w.close()  # idempotent
    with pytest.raises(rf.ClosedError):
        w.write(bar_batch(2, 3))
    with pytest.raises(rf.ArenaNotFoundError):  # closing removes the name
        rf.Reader.open(name)
    b = r.read(5)  # what was published is still read
    assert b is not None and b.seq == 1
    with pytest.raises(rf.ClosedError, match="every batch was read"):
        r.read(5)
    with pytest.raises(rf.ClosedError):  # and it stays closed
        r.read(0)


def test_closed_reader(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()):
        r = rf.Reader.open(name)
        r.close()
        r.close()
        assert r.closed
        with pytest.raises(rf.ClosedError, match="closed"):
            r.read(0)
        with pytest.raises(rf.ClosedError):
            r.leases


@pytest.mark.parametrize(
    "frame, match",
    [
        (pa.record_batch({"ts": pa.array([1], pa.int64())}), "7 columns expected"),
        (bar_batch(1, 3).rename_columns(["ts", "sym", "open", "high", "low", "close", "volume"]), '"symbol" expected'),
        (bar_batch(1, 3).set_column(2, "open", pa.array([1, 2, 3], pa.int64())), 'column "open": expected Float64.*has Int64'),
        (bar_batch(1, 3).set_column(0, "ts", pa.array([1, 2, 3], pa.timestamp("us", "UTC"))), 'column "ts"'),
    ],
)
def test_wrong_schema(name: str, frame: pa.RecordBatch, match: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name) as r:
        with pytest.raises(rf.SchemaMismatchError, match=match):
            w.write(frame)
        assert r.read(0) is None  # nothing was published
        w.write(bar_batch(1, 3))  # the writer is still usable
        assert r.read(5) is not None


def test_nulls_in_non_nullable_column(name: str) -> None:
    df = pl.DataFrame(bar_batch(1, 3)).with_columns(pl.lit(None, pl.Float64).alias("open"))
    with rf.Writer.create(name, rf.bar_schema()) as w:
        with pytest.raises(rf.SchemaMismatchError, match="open"):
            w.write(df)


@pytest.mark.parametrize("obj", [42, "frame", {"a": [1, 2]}, [1, 2, 3], None, object()])
def test_not_a_frame(name: str, obj: object) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w:
        with pytest.raises(TypeError, match="polars.DataFrame"):
            w.write(obj)  # type: ignore[arg-type]


def test_not_a_schema(name: str) -> None:
    with pytest.raises(TypeError, match="schema"):
        rf.Writer.create(name, {"a": "int64"})  # type: ignore[arg-type]


def test_oversize_batch(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slot_bytes=64 << 10) as w, rf.Reader.open(name) as r:
        with pytest.raises(rf.BatchTooLargeError, match="slot_bytes") as e:
            w.write(bar_batch(1, 10_000))
        assert e.value.size > e.value.slot_bytes == w.slot_bytes == 64 << 10
        assert r.read(0) is None
        w.write(bar_batch(1, 10))
        assert r.read(5) is not None


@pytest.mark.parametrize("bad", ["", "a/b", "..", "../../etc/passwd", "x" * 300])
def test_invalid_name(bad: str) -> None:
    """A bad ring name is an InvalidNameError: caught by `except rf.RingfeedError`
    and by `except ValueError`, from every entry point that takes a name."""
    for call in (
        lambda: rf.Writer.create(bad, rf.bar_schema()),
        lambda: rf.Reader.open(bad),
        lambda: rf.remove(bad),
    ):
        with pytest.raises(rf.InvalidNameError, match="invalid arena name") as e:
            call()
        assert isinstance(e.value, rf.RingfeedError)
        assert isinstance(e.value, ValueError)
        assert isinstance(e.value, rf.InvalidArgumentError)


def test_argument_errors_are_ringfeed_errors(name: str) -> None:
    """Wrong types and out-of-range numbers raise RingfeedErrors that are also the
    builtin a caller would catch (TypeError / ValueError), not bare builtins."""
    cases = [
        (lambda: rf.Reader.open(123), rf.ArgumentTypeError, TypeError, "str"),  # type: ignore[arg-type]
        (lambda: rf.Writer.create(name, rf.bar_schema(), slots="8"), rf.ArgumentTypeError, TypeError, "int"),  # type: ignore[arg-type]
        (lambda: rf.Writer.create(name, rf.bar_schema(), slots=-1), rf.InvalidArgumentError, ValueError, "range"),
        (lambda: rf.Writer.create(name, rf.bar_schema(), force=1), rf.ArgumentTypeError, TypeError, "bool"),  # type: ignore[arg-type]
        (lambda: rf.Writer.create(name, rf.bar_schema(), timeout="1"), rf.ArgumentTypeError, TypeError, "number"),  # type: ignore[arg-type]
    ]
    for call, exc, builtin, match in cases:
        with pytest.raises(exc, match=match) as e:
            call()
        assert isinstance(e.value, rf.RingfeedError) and isinstance(e.value, builtin)
    with rf.Writer.create(name, rf.bar_schema()):
        with pytest.raises(rf.InvalidArgumentError, match="range"):
            rf.Reader.open(name, spin_us=-5)


def test_invalid_options(name: str) -> None:
    with pytest.raises(ValueError, match="on_full"):
        rf.Writer.create(name, rf.bar_schema(), on_full="drop")
    with pytest.raises(ValueError, match="invalid ring options"):
        rf.Writer.create(name, rf.bar_schema(), slots=0)
    with rf.Writer.create(name, rf.bar_schema()):
        with pytest.raises(ValueError, match="start"):
            rf.Reader.open(name, start="newest")  # type: ignore[arg-type]
        with pytest.raises(rf.InvalidArgumentError, match="validate"):
            rf.Reader.open(name, validate="some")  # type: ignore[arg-type]


def test_lagged_reader_reports_missed_and_goes_on(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slots=2) as w, rf.Reader.open(name, start="oldest") as r:
        w.write(bar_batch(1, 3))
        for seq in range(2, 11):
            w.write(bar_batch(seq, 3))
        with pytest.raises(rf.LaggedError, match="missed") as e:
            r.read(5)
        assert e.value.missed == 8  # seqs 1..8 are gone; 9 and 10 remain
        got = [r.read(5), r.read(5)]
        assert [b.seq for b in got if b is not None] == [9, 10]


def test_ring_full_in_block_mode(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema(), slots=2, on_full="block", timeout=0.3) as w:
        r = rf.Reader.open(name, start="oldest")
        w.write(bar_batch(1, 3))
        w.write(bar_batch(2, 3))
        with pytest.raises(rf.RingFullError, match="reader pid"):
            w.write(bar_batch(3, 3))
        assert r.read(5) is not None  # make room
        assert w.write(bar_batch(3, 3)) == 3
        r.close()  # a closed reader no longer holds the writer back
        for seq in range(4, 10):
            w.write(bar_batch(seq, 3))


def test_remove_and_list(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema())
    assert name in rf.list_arenas()
    rf.remove(name)
    assert name not in rf.list_arenas()
    with pytest.raises(rf.ArenaNotFoundError):
        rf.remove(name)
    w.close()


def test_array_that_is_not_a_record_batch(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w:
        with pytest.raises(TypeError, match="struct array"):
            w.write(pa.array([1.0, 2.0]))


def test_a_batch_with_broken_offsets_is_refused_at_write_time(name: str) -> None:
    """Readers skip value checks (they trust what the writer wrote), so the writer
    checks every imported value, as the C++ writer does (one policy in ringfeed-arrow):
    decreasing utf8 offsets and invalid UTF-8 are refused, nothing is published (offsets
    past the data pyarrow itself refuses to build)."""
    import struct

    data = pa.py_buffer(b"abcdef")
    broken = {
        "decreasing offsets": (struct.pack("<3i", 0, 4, 2), data),
        "invalid utf-8": (struct.pack("<3i", 0, 2, 4), pa.py_buffer(b"\xff\xfe\xfd\xfc")),
    }
    for what, (offsets, values) in broken.items():
        arr = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets), values])
        with pytest.raises(pa.ArrowInvalid):
            arr.validate(full=True)  # pyarrow agrees the array is broken
        batch = pa.record_batch([arr], names=["s"])
        with rf.Writer.create(name, batch.schema, force=True) as w, rf.Reader.open(name) as r:
            with pytest.raises(rf.RingfeedError, match='column "s"'):
                w.write(batch)
            assert r.read(0) is None, what  # nothing was published
