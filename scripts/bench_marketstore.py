#!/usr/bin/env python3
"""MarketStore face benchmark (issue 15): a symbol-month through `/rpc` (the real
pymarketstore) beside the same query through Flight and the local client, and websocket
fan-out latency, in one run against one daemon.

Usage:
    CARGO_INCREMENTAL=0 cargo build --release -p ringfeed-daemon
    .venv/bin/python scripts/bench_marketstore.py [--reps 15] [--bin-dir DIR] [--out FILE.json]

The daemon: --bin-dir, else $RINGFEED_BIN_DIR, else <repo>/target/release. The Python
environment needs ringfeed (the wheel), polars, pyarrow and pymarketstore
(scripts/py_env.sh).

What it does, in a fresh temporary directory (the daemon stopped with SIGTERM at the end):
  0. seeds one symbol-month of 1m bars (January 2021, 44,640 rows, a seeded random walk)
     through the local client, one week per append; the HTTP face (`[http] listen`,
     `ohlcv_dataset`) and Flight (`[flight] listen`) both on loopback.
  1. the month as a table, --reps times per way in shuffled turns (every way a cache hit
     after its first call; median and min reported, every result checked for 44,640 rows):
       rpc_numpy       pymarketstore `Client.query(Params(sym, "1Min", "OHLCV", ...)).first().array`
       rpc_pandas      the same, `.df()` (a pandas DataFrame, as pymarketstore users read it)
       flight_polars   `rf.connect("grpc://...").bars(...)` -> polars DataFrame
       local_polars    `rf.connect(sock).bars(...)` (shared memory)
  2. websocket fan-out: N subscribers (N = 1, then 50: 5 processes of N/5 connections each,
     websocket-client as pymarketstore's StreamConn uses it) subscribe to `SYM/1Min/OHLCV`;
     the publisher appends one 1-row bar every 20 ms through the local socket, noting the
     wall clock just before each append; each subscriber notes the wall clock when a bar's
     message is decoded. Publish -> message latency p50/p99 over every (subscriber, bar).

Nothing here asserts anything about time.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import polars as pl

import ringfeed as rf
from bench_daemon_util import free_port, pct, wait_for_daemon

REPO = Path(__file__).resolve().parents[1]
MIN = 60_000_000_000
T0 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00Z
ROWS = 31 * 1440
SYM = "BTCUSDT"


def month(sym: str, start_min: int, n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed + start_min)
    close = 30_000 + np.cumsum(rng.normal(0, 5, n))
    ts = T0 + (np.arange(n, dtype=np.int64) + start_min) * MIN
    return pl.DataFrame({
        "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")),
        "symbol": [sym] * n,
        "open": close - 1, "high": close + 2, "low": close - 3, "close": close,
        "volume": rng.uniform(1, 10, n),
    })


SUBSCRIBER = r'''
import json, sys, threading, time, msgpack, websocket
url, n, count, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
got = [[] for _ in range(n)]
conns = []
for i in range(n):
    ws = websocket.WebSocket()
    ws.connect(url)
    ws.send(msgpack.dumps({"streams": ["%s/1Min/OHLCV"]}), opcode=websocket.ABNF.OPCODE_BINARY)
    msgpack.loads(ws.recv())  # the echo: subscribed
    conns.append(ws)
def run(i):
    ws = conns[i]
    while len(got[i]) < count:
        m = msgpack.loads(ws.recv())
        got[i].append((m["data"]["Epoch"], time.time_ns()))
ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in ts: t.start()
print("ready", flush=True)
for t in ts: t.join()
json.dump(got, open(out, "w"))
''' % SYM


def fanout(port: int, sock: str, subscribers: int, bars: int, tmp: Path, first_min: int) -> Dict[str, float]:
    procs = max(1, min(5, subscribers))
    per = [subscribers // procs + (1 if i < subscribers % procs else 0) for i in range(procs)]
    url = f"ws://127.0.0.1:{port}/ws"
    outs = [tmp / f"sub{subscribers}-{i}.json" for i in range(procs)]
    ps = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER, url, str(k), str(bars), str(o)],
                           stdout=subprocess.PIPE, text=True) for k, o in zip(per, outs)]
    for p in ps:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    sent: Dict[int, int] = {}
    with rf.connect(sock) as c:
        for k in range(bars):
            m = first_min + k
            frame = month(SYM, m, 1)
            t = time.time_ns()
            c.append("bench", frame)
            sent[(T0 + m * MIN) // 1_000_000_000] = t
            time.sleep(0.02)
    lat: List[float] = []
    for p, o in zip(ps, outs):
        p.wait(timeout=120)
        for conn in json.loads(o.read_text()):
            lat += [(t - sent[e]) / 1e3 for e, t in conn]
    return {"subscribers": subscribers, "messages": len(lat), "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--bars", type=int, default=200)
    ap.add_argument("--bin-dir", default=os.environ.get("RINGFEED_BIN_DIR", str(REPO / "target" / "release")))
    ap.add_argument("--out")
    args = ap.parse_args()
    import pymarketstore as pymkts

    with tempfile.TemporaryDirectory(prefix="rf-bench-ms-") as d:
        tmp = Path(d)
        http, flight = free_port(), free_port()
        sock = str(tmp / "rf.sock")
        cfg = tmp / "ringfeed.toml"
        cfg.write_text(
            f'data_dir = "{tmp / "data"}"\nsocket = "{sock}"\narena_prefix = "bms{os.getpid()}"\n'
            f'[http]\nlisten = "127.0.0.1:{http}"\nohlcv_dataset = "bench"\n'
            f'[flight]\nlisten = "127.0.0.1:{flight}"\n'
            f'[datasets.bench]\nbase = "1m"\nrollups = ["5m", "1h"]\nfsync = "never"\n'
        )
        daemon = subprocess.Popen([str(Path(args.bin_dir) / "ringfeedd"), "--config", str(cfg)],
                                  env={**os.environ, "RUST_LOG": "warn"})
        try:
            wait_for_daemon(sock, daemon)
            with rf.connect(sock) as c:
                for w in range(0, ROWS, 7 * 1440):
                    c.append("bench", month(SYM, w, min(7 * 1440, ROWS - w)))
            start_s, end_s = T0 // 10**9, T0 // 10**9 + ROWS * 60 - 1
            ms = pymkts.Client(f"http://127.0.0.1:{http}/rpc")
            params = pymkts.Params(SYM, "1Min", "OHLCV", start=start_s, end=end_s)
            remote = rf.connect(f"grpc://127.0.0.1:{flight}")
            local = rf.connect(sock)
            ways: Dict[str, Callable[[], int]] = {
                "rpc_numpy": lambda: len(ms.query(params).first().array),
                "rpc_pandas": lambda: len(ms.query(params).first().df()),
                "flight_polars": lambda: remote.bars("bench", SYM, "1m", start=T0, end=T0 + ROWS * MIN).height,
                "local_polars": lambda: local.bars("bench", SYM, "1m", start=T0, end=T0 + ROWS * MIN).height,
            }
            times: Dict[str, List[float]] = {k: [] for k in ways}
            for rep in range(args.reps + 1):
                order = list(ways)
                random.Random(rep).shuffle(order)
                for name in order:
                    t = time.perf_counter_ns()
                    n = ways[name]()
                    ms_ = (time.perf_counter_ns() - t) / 1e6
                    if n != ROWS:
                        raise SystemExit(f"{name}: {n} rows, expected {ROWS}")
                    if rep > 0:  # rep 0 warms every way (and the result cache)
                        times[name].append(ms_)
            query = {k: {"median_ms": statistics.median(v), "min_ms": min(v)} for k, v in times.items()}
            fan = [fanout(http, sock, n, args.bars, tmp, ROWS + 10 + i * (args.bars + 10)) for i, n in enumerate([1, 50])]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    result = {"rows": ROWS, "reps": args.reps, "query": query, "fanout": fan}
    print(f"## MarketStore face: symbol-month ({ROWS:,} 1m bars), {args.reps} reps, median (min) ms\n")
    print("| way | median ms | min ms |\n|---|---|---|")
    for k, v in query.items():
        print(f"| {k} | {v['median_ms']:.2f} | {v['min_ms']:.2f} |")
    print(f"\n## websocket fan-out, one 1-row bar every 20 ms, {args.bars} bars\n")
    print("| subscribers | messages | p50 µs | p99 µs |\n|---|---|---|---|")
    for f in fan:
        print(f"| {f['subscribers']} | {f['messages']} | {f['p50_us']:.0f} | {f['p99_us']:.0f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
