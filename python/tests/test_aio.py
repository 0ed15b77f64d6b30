"""asyncio faces (ringfeed.aio): ``async for`` over a local ring and over a replay,
awaited client calls equal to the blocking ones, an event loop that keeps running while
a read waits, and a wait that burns no CPU (nothing polls)."""

from __future__ import annotations

import asyncio
import resource
import signal
import subprocess
import sys
import threading
import time

import polars as pl
import pyarrow as pa
import pytest

import ringfeed as rf
from ringfeed.aio import AsyncReader, connect_async
from daemons import T0, minutes

T0_MS = T0 // 1_000_000


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def test_async_for_over_a_ring_keeps_the_loop_running(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=16)

    def feed() -> None:
        for k in range(20):
            time.sleep(0.01)
            w.write(pa.record_batch([pa.array([k, k + 100])], schema=schema))
        w.close()

    async def main() -> tuple[list[int], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        got: list[int] = []
        async with AsyncReader(rf.Reader.open(name, start="oldest")) as r:
            threading.Thread(target=feed).start()
            async for b in r:  # stops when the writer closes the ring
                got.extend(b.to_polars()["k"].to_list())
        done.set()
        await t
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got == [x for k in range(20) for x in (k, k + 100)]
    # ~0.2 s of waiting: a loop blocked by the reads would tick once or twice.
    assert ticks > 50, ticks


def test_an_idle_wait_burns_no_cpu(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=4)

    async def main() -> float:
        async with AsyncReader(rf.Reader.open(name, start="next")) as r:
            await r.read(0)  # start the waiter
            t0, c0 = time.monotonic(), cpu_seconds()
            assert await r.read(timeout=1.0) is None  # nothing comes: times out
            elapsed, cpu = time.monotonic() - t0, cpu_seconds() - c0
            assert elapsed >= 0.9
            # A batch written now wakes it at once.
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, lambda: w.write(pa.record_batch([pa.array([7])], schema=schema)))
            b = await r.read(timeout=5.0)
            assert b is not None and b.to_polars()["k"].to_list() == [7]
            return cpu

    cpu = asyncio.run(main())
    w.close()
    assert cpu < 0.1, f"{cpu:.3f} s of CPU for a 1 s idle wait"


def test_awaited_client_calls_equal_the_blocking_ones(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A", "B"], 0, 90))
        want = c.bars("demo", "A,B", "5m")

    async def main() -> None:
        async with await connect_async(daemon) as ac:
            await ac.ping()
            got = await ac.bars("demo", "A,B", "5m")
            assert got.equals(want)
            # Concurrent calls on one client run in order on its thread, all answered.
            many = await asyncio.gather(*(ac.bars("demo", "A", "1m", limit=k + 1) for k in range(8)))
            assert [m.height for m in many] == [k + 1 for k in range(8)]
            table = await ac.bars_arrow("demo", "B", "1h")
            assert isinstance(table, pa.Table) and table.num_rows == 2
            assert "demo" in await ac.datasets()
            ready = await ac.ready("demo")
            assert ready["datasets"][0]["symbols"] == ["A", "B"]
            n = await ac.append("demo", minutes(["C"], 0, 3))
            assert n == 3
            # A replay: the stored rows from a time, then live ones, awaited.
            r = await ac.replay("demo", "1m", T0_MS + 85 * 60_000, symbols="A")
            seen: list[float] = []
            async with r:
                async def feed() -> None:
                    await ac.append("demo", minutes(["A"], 90, 3))

                asyncio.get_running_loop().create_task(feed())
                while len(seen) < 8:
                    b = await r.read(timeout=20)
                    assert b is not None, seen
                    seen.extend(float(x) for x in b.to_polars()["close"].to_list())
            assert seen == [m + 0.5 for m in range(85, 93)]

    asyncio.run(main())


def test_an_async_reader_ends_with_the_ring_and_closes_its_source(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=4)
    src = rf.Reader.open(name, start="oldest")
    w.write(pa.record_batch([pa.array([1])], schema=schema))
    w.close()

    async def main() -> tuple[list[pl.DataFrame], rf.Reader]:
        r = AsyncReader(src)
        out = [b.to_polars() async for b in r]
        await r.aclose()
        return out, src

    out, src = asyncio.run(main())
    assert [f["k"].to_list() for f in out] == [[1]]
    assert src.closed


def test_closing_ends_a_pending_wait(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=4)

    async def main() -> float:
        r = AsyncReader(rf.Reader.open(name, start="next"))
        pending = asyncio.ensure_future(r.read())  # waits forever: nothing is written
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await r.aclose()
        took = time.monotonic() - t0
        try:
            await asyncio.wait_for(pending, 5)
        except rf.ClosedError:
            pass  # the wait saw the close
        return took

    took = asyncio.run(main())
    w.close()
    assert took < 2.0, took


def _armable(r: rf.Reader) -> bool:
    try:
        r.arm()
        r.disarm()
        return True
    except OSError:
        return False


def test_an_awaited_read_is_woken_by_the_loop_itself_without_a_thread(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=16)
    src = rf.Reader.open(name, start="next")
    if not _armable(src):
        pytest.skip("this kernel has no io_uring futex wait (Linux < 6.7 or io_uring disabled): "
                    "AsyncReader waits on a thread here, which the other tests cover")

    async def main() -> tuple[list[int], int]:
        threads = threading.active_count()
        most = threads
        got: list[int] = []
        async with AsyncReader(src) as r:
            loop = asyncio.get_running_loop()
            for k in range(30):
                loop.call_later(0.005, lambda k=k: w.write(pa.record_batch([pa.array([k])], schema=schema)))
                b = await r.read(timeout=10)
                assert b is not None
                got.extend(b.to_polars()["k"].to_list())
                most = max(most, threading.active_count())
            assert r._evented is True  # the loop waited on the reader's fd
        return got, most - threads

    got, extra_threads = asyncio.run(main())
    w.close()
    assert got == list(range(30))
    assert extra_threads == 0, "no waiting thread was started"


def test_a_cancelled_awaited_read_loses_no_batch(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=16)

    async def main() -> list[int]:
        got: list[int] = []
        async with AsyncReader(rf.Reader.open(name, start="next")) as r:
            for k in range(5):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(r.read(), 0.02)  # cancelled while armed
                w.write(pa.record_batch([pa.array([k])], schema=schema))
                b = await r.read(timeout=10)
                assert b is not None
                got.extend(b.to_polars()["k"].to_list())
        return got

    assert asyncio.run(main()) == list(range(5))
    w.close()


def test_the_thread_fallback_reads_every_batch_in_order(name: str) -> None:
    schema = pa.schema([("k", pa.int64())])
    w = rf.Writer.create(name, schema, slots=64)

    async def main() -> list[int]:
        got: list[int] = []
        r = AsyncReader(rf.Reader.open(name, start="next"))
        r._evented = False  # as on a kernel without io_uring futex waits
        loop = asyncio.get_running_loop()
        for k in range(20):
            loop.call_later(0.002, lambda k=k: w.write(pa.record_batch([pa.array([k])], schema=schema)))
            b = await r.read(timeout=10)
            assert b is not None
            got.extend(b.to_polars()["k"].to_list())
        assert r._waiter is not None
        await r.aclose()
        return got

    assert asyncio.run(main()) == list(range(20))
    w.close()


WRITER_THEN_WAIT = """
import sys, ringfeed as rf, pyarrow as pa
w = rf.Writer.create(sys.argv[1], pa.schema([("x", pa.int64())]))
w.write(pa.record_batch({"x": [1]}))
print("wrote", flush=True)
sys.stdin.readline()
"""


def test_an_armed_reader_notices_a_killed_writer(name: str) -> None:
    p = subprocess.Popen([sys.executable, "-c", WRITER_THEN_WAIT, name],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "wrote"

        async def main() -> None:
            async with AsyncReader(rf.Reader.open(name, start="oldest")) as r:
                b = await r.read(timeout=10)
                assert b is not None and b.to_polars()["x"].to_list() == [1]
                pending = asyncio.ensure_future(r.read())  # armed: nothing more comes
                await asyncio.sleep(0.2)
                assert not pending.done()
                p.send_signal(signal.SIGKILL)
                with pytest.raises(rf.WriterGoneError):
                    await asyncio.wait_for(pending, 10)

        asyncio.run(main())
    finally:
        p.kill()
        p.wait(30)
