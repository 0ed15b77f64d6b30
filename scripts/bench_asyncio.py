#!/usr/bin/env python3
"""The cost of awaiting a ring read (ringfeed.aio) over a blocking read.

A writer in this process publishes a 10-row bar batch every ~1 ms, stamped with
CLOCK_MONOTONIC in its first `ts`; a reader in another process takes each batch as a
polars DataFrame and records now - stamp. The reader alternates between a blocking
loop (`for b in reader`) and an asyncio one (`async for b in AsyncReader(reader)`, with
a second task ticking on the same loop, as an application would have), `rounds` times
each, on the same ring, so both see the same machine. Reports p50/p99 of each and the
added latency (asyncio p50 - blocking p50; target ≤ 20 µs, issue 14). asyncio is the
default path (the loop waits on the reader's io_uring futex-wait fd); a third mode runs
the fallback of kernels without it (a waiting thread that wakes the loop). Two more
modes measure asyncio's own floor on this machine: the same hand-off through a socket,
read blocking and awaited with loop.add_reader (floor_added_p50_us: what any fd-woken
await adds, whatever the transport).

    .venv/bin/python scripts/bench_asyncio.py [--n 1000] [--rounds 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_python import SmallFrame, now, pct, sent_at  # noqa: E402

import ringfeed as rf  # noqa: E402
from ringfeed.aio import AsyncReader  # noqa: E402


def reader(name: str, n: int, rounds: int, conn: Any, pipe: Any, loop_kind: str) -> None:
    if loop_kind == "uvloop":
        import uvloop  # type: ignore[import-not-found]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    r = rf.Reader.open(name, start="next", wait=60)
    out: dict[str, list[float]] = {"blocking": [], "asyncio": [], "asyncio_thread_fallback": [],
                                   "floor_blocking": [], "floor_asyncio": []}

    def blocking() -> None:
        conn.send("go")
        for _ in range(n):
            b = r.read()
            df = pl.DataFrame(b)
            out["blocking"].append((now() - sent_at(df)) / 1e3)
            del df, b
            conn.send(1)

    async def awaited() -> None:
        ar = AsyncReader(r)
        stop = asyncio.Event()

        async def ticker() -> None:  # another task on the loop, as in an application
            while not stop.is_set():
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        conn.send("go")
        for _ in range(n):
            b = await ar.read()
            df = pl.DataFrame(b)
            out["asyncio"].append((now() - sent_at(df)) / 1e3)
            del df, b
            conn.send(1)
        stop.set()
        await t

    async def thread_fallback() -> None:
        # The path of kernels without an io_uring futex wait (and of remote readers): the
        # wait runs on a thread, which wakes the loop with call_soon_threadsafe.
        ar = AsyncReader(r)
        ar._evented = False
        conn.send("go")
        for _ in range(n):
            b = await ar.read()
            df = pl.DataFrame(b)
            out["asyncio_thread_fallback"].append((now() - sent_at(df)) / 1e3)
            del df, b
            conn.send(1)
        if ar._waiter is not None:
            ar._waiter.stop()

    def floor_blocking() -> None:
        # asyncio's own floor: the same hand-off through a socket (8 bytes, the send
        # time), read blocking ...
        conn.send("go")
        for _ in range(n):
            sent = int.from_bytes(pipe.recv_bytes(), "little")
            out["floor_blocking"].append((now() - sent) / 1e3)
            conn.send(1)

    async def floor_asyncio() -> None:
        # ... and awaited through loop.add_reader: what any fd-woken await adds.
        loop = asyncio.get_running_loop()
        fd_was_blocking = os.get_blocking(pipe.fileno())
        conn.send("go")
        for _ in range(n):
            woken: asyncio.Future[None] = loop.create_future()
            loop.add_reader(pipe.fileno(), lambda w=woken: w.done() or w.set_result(None))
            await woken
            loop.remove_reader(pipe.fileno())
            sent = int.from_bytes(pipe.recv_bytes(), "little")
            out["floor_asyncio"].append((now() - sent) / 1e3)
            conn.send(1)
        os.set_blocking(pipe.fileno(), fd_was_blocking)  # uvloop made it non-blocking

    for _ in range(rounds):
        blocking()
        asyncio.run(awaited())
        asyncio.run(thread_fallback())
        floor_blocking()
        asyncio.run(floor_asyncio())
    conn.send(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="messages per round and mode")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.001, help="seconds between messages")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                    help="the event loop (uvloop: pip install uvloop)")
    ap.add_argument("--out", type=Path, help="write the result as JSON here too")
    a = ap.parse_args()
    name = f"bench-aio-{uuid.uuid4().hex[:8]}"
    frame = SmallFrame()
    w = rf.Writer.create(name, frame.batch.schema, slots=8, slot_bytes=64 << 10, max_readers=1)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    pipe_w, pipe_r = ctx.Pipe()
    p = ctx.Process(target=reader, args=(name, a.n, a.rounds, child, pipe_r, a.loop))
    p.start()
    for _ in range(a.rounds):
        for mode in ("ring", "ring", "ring", "pipe", "pipe"):
            assert parent.recv() == "go"
            for _ in range(a.n):
                time.sleep(a.interval)
                if mode == "ring":
                    w.write(frame.stamp())
                else:
                    pipe_w.send_bytes(now().to_bytes(8, "little"))
                parent.recv()
    out = parent.recv()
    p.join(30)
    w.close()
    res: dict[str, Any] = {"loop": a.loop}
    for mode, xs in out.items():
        res[mode] = {"n": len(xs), "p50_us": round(pct(xs, 50), 1), "p99_us": round(pct(xs, 99), 1)}
    res["added_p50_us"] = round(res["asyncio"]["p50_us"] - res["blocking"]["p50_us"], 1)
    res["added_p99_us"] = round(res["asyncio"]["p99_us"] - res["blocking"]["p99_us"], 1)
    res["floor_added_p50_us"] = round(
        res["floor_asyncio"]["p50_us"] - res["floor_blocking"]["p50_us"], 1)
    res["fallback_added_p50_us"] = round(
        res["asyncio_thread_fallback"]["p50_us"] - res["blocking"]["p50_us"], 1)
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
