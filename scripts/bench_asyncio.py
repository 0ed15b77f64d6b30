#!/usr/bin/env python3
"""The cost of awaiting a ring read (ringfeed.aio) over a blocking read.

A writer in this process publishes a 10-row bar batch every ~1 ms, stamped with
CLOCK_MONOTONIC in its first `ts`; a reader in another process takes each batch as a
polars DataFrame and records now - stamp. The reader alternates between a blocking
loop (`for b in reader`) and an asyncio one (`async for b in AsyncReader(reader)`, with
a second task ticking on the same loop, as an application would have), `rounds` times
each, on the same ring, so both see the same machine. Reports p50/p99 of each and the
added latency (asyncio p50 - blocking p50; target ≤ 20 µs, issue 14), and the split of
the asyncio path: send → the waiter thread holds the batch, and that thread → the
awaiting coroutine (a third mode, the same path with time stamps).

    .venv/bin/python scripts/bench_asyncio.py [--n 1000] [--rounds 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import queue
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_python import SmallFrame, now, pct, sent_at  # noqa: E402

import ringfeed as rf  # noqa: E402
from ringfeed.aio import AsyncReader  # noqa: E402


def reader(name: str, n: int, rounds: int, conn: Any) -> None:
    r = rf.Reader.open(name, start="next", wait=60)
    out: dict[str, list[float]] = {"blocking": [], "asyncio": [], "thread_has_batch": [], "thread_to_coroutine": []}

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

    async def split() -> None:
        # AsyncReader's path, stamped: when the waiter thread holds the batch, and when
        # the awaiting coroutine runs again (the thread -> loop hop).
        jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        threading.Thread(target=lambda: [j() for j in iter(jobs.get, None)], daemon=True).start()
        loop = asyncio.get_running_loop()
        conn.send("go")
        for _ in range(n):
            fut = loop.create_future()

            def job(fut: Any = fut) -> None:
                b = r.read()
                loop.call_soon_threadsafe(fut.set_result, (b, now()))

            jobs.put(job)
            b, t_thread = await fut
            t_loop = now()
            df = pl.DataFrame(b)
            sent = sent_at(df)
            out["thread_has_batch"].append((t_thread - sent) / 1e3)
            out["thread_to_coroutine"].append((t_loop - t_thread) / 1e3)
            del df, b
            conn.send(1)
        jobs.put(None)

    for _ in range(rounds):
        blocking()
        asyncio.run(awaited())
        asyncio.run(split())
    conn.send(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="messages per round and mode")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.001, help="seconds between messages")
    ap.add_argument("--out", type=Path, help="write the result as JSON here too")
    a = ap.parse_args()
    name = f"bench-aio-{uuid.uuid4().hex[:8]}"
    frame = SmallFrame()
    w = rf.Writer.create(name, frame.batch.schema, slots=8, slot_bytes=64 << 10, max_readers=1)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=reader, args=(name, a.n, a.rounds, child))
    p.start()
    for _ in range(3 * a.rounds):
        assert parent.recv() == "go"
        for _ in range(a.n):
            time.sleep(a.interval)
            w.write(frame.stamp())
            parent.recv()
    out = parent.recv()
    p.join(30)
    w.close()
    res: dict[str, Any] = {}
    for mode, xs in out.items():
        res[mode] = {"n": len(xs), "p50_us": round(pct(xs, 50), 1), "p99_us": round(pct(xs, 99), 1)}
    res["added_p50_us"] = round(res["asyncio"]["p50_us"] - res["blocking"]["p50_us"], 1)
    res["added_p99_us"] = round(res["asyncio"]["p99_us"] - res["blocking"]["p99_us"], 1)
    print(json.dumps(res, indent=1))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
