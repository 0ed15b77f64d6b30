#!/usr/bin/env python3
"""Web page benchmark (issue 15 item 5), one run against one daemon:

  1. append -> candle: the wall clock just before a 1-row append (local client) to the
     moment the page in headless Chromium decodes that bar from /ws
     (`window.__ringfeed.lastArrival`), beside a local Python subscriber of the same
     topic (a ring Reader in a thread) timing the same appends. One bar every 50 ms
     after the previous one arrived in both; p50/p99 of each.
  2. history for the chart: one symbol-month of 1m bars (44,640) as /api/bars JSON
     (urllib, parsed), beside the same query through the local client (polars), --reps
     times each in alternating turns, every answer checked for 44,640 rows (both are
     cache hits after their first call).

Usage:
    bash scripts/build_web.sh && CARGO_INCREMENTAL=0 cargo build --release -p ringfeed-daemon
    .venv/bin/python scripts/bench_web.py [--bars 100] [--reps 10] [--bin-dir DIR]

Needs Debian's chromium and playwright (python/requirements-dev.txt). Nothing here
asserts anything about time.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

import polars as pl
from playwright.sync_api import sync_playwright

import ringfeed as rf
from bench_daemon_util import free_port, pct, wait_for_daemon

REPO = Path(__file__).resolve().parents[1]
MIN = 60_000_000_000
T0 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00Z
MONTH = 31 * 1440
SYM = "BTCUSDT"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def bars(start: int, n: int) -> pl.DataFrame:
    px = [100.0 + ((m * 7919) % 1000) / 100 for m in range(start, start + n)]
    return pl.DataFrame({
        "ts": pl.Series([T0 + m * MIN for m in range(start, start + n)], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
        "symbol": [SYM] * n, "open": px, "high": [p + 1 for p in px], "low": [p - 1 for p in px],
        "close": [p + 0.5 for p in px], "volume": [1.0] * n,
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=100)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--bin-dir", default=os.environ.get("RINGFEED_BIN_DIR", str(REPO / "target" / "release")))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rf-bench-web-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sock = str(work / "rf.sock")
    (work / "rf.toml").write_text(
        f'data_dir = "{work / "data"}"\nsocket = "{sock}"\narena_prefix = "bweb{os.getpid()}"\n'
        f'write_down_delay = "off"\n[http]\nlisten = "127.0.0.1:{port}"\n'
        '[datasets.spot]\nbase = "1m"\nrollups = ["5m", "1h"]\nfsync = "never"\n')
    daemon = subprocess.Popen([str(Path(args.bin_dir) / "ringfeedd"), "--config", str(work / "rf.toml")],
                              env={**os.environ, "RUST_LOG": "warn"})
    out: Dict[str, Any] = {}
    try:
        wait_for_daemon(sock, daemon)
        client = rf.connect(sock)
        for week in range(0, MONTH, 7 * 1440):
            client.append("spot", bars(week, min(7 * 1440, MONTH - week)))

        # 1. append -> candle, beside a local subscriber.
        local_arrivals: Dict[int, float] = {}
        reader = client.subscribe("spot", "1m")
        stop = threading.Event()

        def follow() -> None:
            while not stop.is_set():
                b = reader.read(timeout=0.2)
                if b is None:
                    continue
                now = time.time()
                for t in b.to_polars()["ts"].dt.epoch("s").to_list():
                    local_arrivals.setdefault(int(t), now)

        th = threading.Thread(target=follow, daemon=True)
        th.start()
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(work / "profile"), executable_path="/usr/bin/chromium",
                                                       headless=True, args=FLAGS)
            page = ctx.new_page()
            page.goto(f"{url}/?dataset=spot&symbol={SYM}&timeframe=1m&limit=500")
            page.wait_for_function("() => window.__ringfeed && window.__ringfeed.liveReady && window.__ringfeed.candles === 500",
                                   timeout=60_000)
            web_ms: List[float] = []
            local_ms: List[float] = []
            for i in range(args.bars):
                m = MONTH + i
                t = (T0 + m * MIN) // 1_000_000_000
                time.sleep(0.05)
                t0 = time.time()
                client.append("spot", bars(m, 1))
                page.wait_for_function(f"() => window.__ringfeed.lastArrival?.time === {t}", timeout=30_000)
                arrived = page.evaluate("window.__ringfeed.lastArrival.ms") / 1000
                web_ms.append((arrived - t0) * 1000)
                while t not in local_arrivals:
                    time.sleep(0.001)
                local_ms.append((local_arrivals[t] - t0) * 1000)
            ctx.close()
        stop.set()
        th.join()
        out["append_to_candle_ms"] = {"p50": pct(web_ms, 0.5), "p99": pct(web_ms, 0.99), "n": len(web_ms)}
        out["append_to_local_subscriber_ms"] = {"p50": pct(local_ms, 0.5), "p99": pct(local_ms, 0.99), "n": len(local_ms)}

        # 2. a symbol-month for the chart: /api/bars JSON beside the local client.
        q = f"{url}/api/bars?dataset=spot&symbol={SYM}&timeframe=1m&start=2021-01-01&end=2021-02-01&limit=200000&from_end=false"
        times: Dict[str, List[float]] = {"api_bars_json": [], "local_polars": []}
        for _ in range(args.reps):
            t0 = time.perf_counter()
            with urllib.request.urlopen(q, timeout=120) as r:
                answer = json.loads(r.read())
            times["api_bars_json"].append(time.perf_counter() - t0)
            assert answer["rows"] == MONTH, answer["rows"]
            t0 = time.perf_counter()
            df = client.bars("spot", SYM, "1m", start="2021-01-01", end="2021-02-01")
            times["local_polars"].append(time.perf_counter() - t0)
            assert df.height == MONTH
        for k, v in times.items():
            out[f"month_{k}_ms"] = {"median": statistics.median(v) * 1000, "min": min(v) * 1000, "n": len(v)}
        client.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
