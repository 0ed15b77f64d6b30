#!/usr/bin/env python3
"""Append latency while ringfeedd catches up on a year of hot days at start.

Ingests a year of generated 1m bars for one symbol (default rollups 5m, 15m, 1h,
1d; fsync never) with `ringfeed ingest`, so that every day is in the hot tier,
then starts `ringfeedd` with the default end-of-day write-down, which writes
every finished day to Parquet as it starts. Meanwhile it appends one live bar
every ~10 ms through the Python client and reports the append round trips
during the catch-up and after it, beside the same write-down done in one pass
by `ringfeed write-down --all` on a copy of the data.

    .venv/bin/python scripts/bench_write_down.py [--days 365] [--bin-dir target/release]

Needs the release binaries (`cargo build --release -p ringfeed-cli -p ringfeed-daemon`)
and the ringfeed wheel in the venv (scripts/py_env.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "xlang"))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import ringfeed as rf  # noqa: E402
from pss import year_of_bars  # noqa: E402

MIN = 60_000_000_000


def pct(xs: list[float], f: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(f * len(s)))]


def summary(xs: list[float]) -> str:
    return f"n={len(xs)} p50 {statistics.median(xs):.2f} ms, p99 {pct(xs, 0.99):.1f} ms, max {max(xs):.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "release")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rf-wd-"))
    try:
        pq.write_table(year_of_bars(a.days), work / "bars.parquet")
        ingest = [a.bin_dir / "ringfeed", "ingest", "--dataset", "y", "--fsync", "never", work / "bars.parquet"]
        subprocess.run(ingest + ["--data-dir", work / "data"], check=True, stderr=subprocess.DEVNULL)
        # Baseline: the same write-down in one pass, on a copy.
        shutil.copytree(work / "data", work / "copy")
        t = time.monotonic()
        subprocess.run([a.bin_dir / "ringfeed", "write-down", "--data-dir", work / "copy", "--all"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        one_pass = time.monotonic() - t

        sock = work / "rf.sock"
        log = open(work / "daemon.log", "w")
        env = {**os.environ, "RUST_LOG": "info"}
        d = subprocess.Popen([a.bin_dir / "ringfeedd", "--data-dir", work / "data", "--socket", sock,
                              "--arena-prefix", f"wd{os.getpid()}"], env=env, stderr=log)
        t0 = time.monotonic()
        while not sock.exists():
            time.sleep(0.005)
        c = rf.connect(str(sock))
        now_min = time.time_ns() // MIN * MIN
        during: list[float] = []
        after: list[float] = []
        i = 0
        done_at = None
        while len(after) < 200:
            row = pa.table({"ts": pa.array([now_min + i * MIN], pa.timestamp("ns", tz="UTC")), "symbol": ["LIVE"],
                            "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0]})
            s = time.perf_counter_ns()
            c.append("y", row)
            (after if done_at else during).append((time.perf_counter_ns() - s) / 1e6)
            i += 1
            if done_at is None and i % 10 == 0 and "ringfeed_write_downs_total 1" in c.stat():
                done_at = time.monotonic() - t0
            time.sleep(0.01)
        d.terminate()
        d.wait(30)
        print(f"write-down of {a.days} days x 5 timeframes: one pass (ringfeed write-down --all) {one_pass:.2f} s; "
              f"ringfeedd's catch-up at start done within {done_at:.1f} s of its start")
        print(f"append round trip during the catch-up (the first waits for the daemon to open the store): "
              f"{summary(during)}")
        print(f"append round trip during the catch-up, after the first: {summary(during[1:])}")
        print(f"append round trip after it: {summary(after)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
