#!/usr/bin/env python3
"""Retention and trim, timed through the `ringfeed` CLI (issue 13, item 5).

1. A symbol-year of 1m bars (the year up to yesterday, so a 90-day retention keeps
   something), ingested hot into two stores: one written down as is, one with
   `retention 90d` set first (which drops the expired hot days directly, without
   writing them down). Prints the bytes on disk and the time of each step, then the
   effect on queries: the whole history and the last 30 days through `ringfeed query`
   (Arrow to /dev/null, median of 5), beside `pl.read_parquet` of each store's own files
   (when polars is installed; run with the repo's .venv/bin/python).
2. Ten symbols over the same year, written down (compacted months), then
   `trim --symbol S3 --before <mid-year>`: one symbol of ten, every part rewritten.

Prints numbers; asserts nothing. Env: RINGFEED (binary; default the newest of
target/{release,debug}/ringfeed), DAYS (365), SYMBOLS (10), KEEP (keep the temp dir).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAYS = int(os.environ.get("DAYS", "365"))
SYMBOLS = int(os.environ.get("SYMBOLS", "10"))


def binary() -> str:
    env = os.environ.get("RINGFEED")
    if env:
        return env
    found = [p for p in (ROOT / "target" / prof / "ringfeed" for prof in ("release", "debug")) if p.is_file()]
    if not found:
        sys.exit("no ringfeed binary: cargo build --release -p ringfeed-cli (or set RINGFEED)")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def run(*args: str) -> float:
    t = time.perf_counter()
    out = subprocess.run([binary(), *args], capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"ringfeed {' '.join(args)} failed:\n{out.stderr}")
    return took


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_csv(path: Path, symbols: list[str], first: dt.date, days: int) -> int:
    n = 0
    with path.open("w") as f:
        f.write("ts,symbol,open,high,low,close,volume\n")
        for s in symbols:
            px = 100.0
            for d in range(days):
                day = first + dt.timedelta(days=d)
                for m in range(1440):
                    px += ((m * 7919 + d * 104729) % 201 - 100) / 1000.0
                    f.write(
                        f"{day}T{m // 60:02d}:{m % 60:02d}:00Z,{s},{px:.3f},{px + 0.05:.3f},{px - 0.05:.3f},{px + 0.01:.3f},{1 + m % 9}\n"
                    )
                    n += 1
    return n


def median_of(f, n: int = 5) -> float:
    return sorted(f() for _ in range(n))[n // 2]


def query_times(data: Path, since: dt.date) -> str:
    """`ringfeed query` of all history and of the days from `since`, and polars reading
    the store's 1m files, in ms."""
    q = ["query", "--dataset", "b", "--format", "arrow", "--data-dir", str(data)]

    def cli(extra: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run([binary(), *q, *extra], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    all_ms = median_of(lambda: cli([])) * 1e3
    recent_ms = median_of(lambda: cli(["--start", str(since)])) * 1e3
    out = f"query all {all_ms:6.1f} ms, last 30 days {recent_ms:5.1f} ms"
    try:
        import polars as pl
    except ImportError:
        return out + " (polars not installed: no baseline)"
    files = sorted(str(p) for p in (data / "dataset=b" / "tf=1m").rglob("*.parquet"))

    def read() -> float:
        t = time.perf_counter()
        pl.read_parquet(files)
        return time.perf_counter() - t

    return out + f"; pl.read_parquet of its {len(files)} files {median_of(read) * 1e3:6.1f} ms"


def ingest(data: Path, csv: Path) -> float:
    return run("ingest", "--dataset", "b", "--timeframe", "1m", "--fsync", "never", "--data-dir", str(data), str(csv))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_retention."))
    try:
        first = dt.date.today() - dt.timedelta(days=DAYS)
        print(f"binary: {binary()}; {DAYS} days of 1m bars from {first}; dir {tmp}")
        one = tmp / "one.csv"
        rows = write_csv(one, ["S0"], first, DAYS)
        print(f"\n1. one symbol-year: {rows:,} rows")
        for label, retention in (("none", None), ("90d", "90d")):
            data = tmp / f"data-{label}"
            t_ingest = ingest(data, one)
            hot = du(data)
            t_ret = run("retention", "b", retention, "--data-dir", str(data)) if retention else 0.0
            t_wd = run("write-down", "--all", "--data-dir", str(data))
            print(
                f"  retention {label:>4}: ingest {t_ingest:6.2f} s ({hot / 1e6:7.1f} MB hot); "
                f"retention {t_ret:5.2f} s; write-down {t_wd:6.2f} s; on disk after {du(data) / 1e6:7.1f} MB"
            )
            since = first + dt.timedelta(days=DAYS - 30)
            print(f"  retention {label:>4}: {query_times(data, since)}")
        many = tmp / "many.csv"
        syms = [f"S{i}" for i in range(SYMBOLS)]
        rows = write_csv(many, syms, first, DAYS)
        data = tmp / "data-trim"
        t_ingest = ingest(data, many)
        t_wd = run("write-down", "--all", "--data-dir", str(data))
        before = du(data)
        cut = first + dt.timedelta(days=DAYS // 2)
        t_trim = run("trim", "--dataset", "b", "--symbol", "S3", "--before", f"{cut}T12:00", "--data-dir", str(data))
        print(
            f"\n2. {SYMBOLS} symbols, {rows:,} rows: ingest {t_ingest:.2f} s, write-down {t_wd:.2f} s, "
            f"{before / 1e6:.1f} MB cold\n"
            f"  trim --symbol S3 --before {cut}T12:00: {t_trim:.2f} s; on disk after {du(data) / 1e6:.1f} MB"
        )
        t_all = run("trim", "--dataset", "b", "--before", f"{cut}", "--data-dir", str(data))
        print(f"  trim (every symbol) --before {cut}: {t_all:.2f} s; on disk after {du(data) / 1e6:.1f} MB")
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
