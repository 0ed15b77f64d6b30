#!/usr/bin/env python3
"""Bar-store benchmarks beside DuckDB, in the same run, on a synthetic symbol-year of 1m bars.

Usage: python3 scripts/bench_store.py [--rows 525600] [--bin target/release/ringfeed]
Needs: a release `ringfeed` (cargo build --release -p ringfeed-cli) and `duckdb` in the
Python environment (pip install duckdb; the project's .venv is used by the wrapper below).
Prints a markdown table (medians of --repeat runs).
"""
import argparse, os, random, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gen_kline(path: Path, rows: int) -> None:
    """Binance kline CSV (12 columns, ms timestamps) with a random walk at 0.01 ticks."""
    rnd = random.Random(7)
    t0 = 1672531200000  # 2023-01-01
    p = 20000.0
    with open(path, "w") as f:
        for i in range(rows):
            o = p
            c = round(max(1.0, o + rnd.gauss(0, 8)), 2)
            h = round(max(o, c) + abs(rnd.gauss(0, 4)), 2)
            l = round(min(o, c) - abs(rnd.gauss(0, 4)), 2)
            v = round(abs(rnd.gauss(50, 20)), 5)
            t = t0 + i * 60000
            f.write(f"{t},{o:.2f},{h:.2f},{l:.2f},{c:.2f},{v},{t+59999},{v*o:.4f},{rnd.randint(10,900)},{v/2:.5f},{v*o/2:.4f},0\n")
            p = c


def timed(cmd, **kw):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def median(f, n):
    return statistics.median(f() for _ in range(n))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=525_600)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bin", default=None)
    a = ap.parse_args()
    rf = a.bin or next((str(p) for p in [ROOT / "target/release/ringfeed", ROOT / "target/store/release/ringfeed"] if p.exists()), None)
    if not rf:
        sys.exit("no release ringfeed binary: cargo build --release -p ringfeed-cli")
    try:
        import duckdb
    except ImportError:
        sys.exit("duckdb is not installed: pip install duckdb")
    tmp = Path(tempfile.mkdtemp(prefix="rf-bench-"))
    try:
        csv = tmp / "BTCUSDT-1m-2023.csv"
        gen_kline(csv, a.rows)
        n = a.rows
        res = []

        def ingest(extra, src, fmt):
            d = tmp / "store"
            shutil.rmtree(d, ignore_errors=True)
            return timed([rf, "ingest", "--data-dir", str(d), "--dataset", "b", "--timeframe", "1m",
                          "--symbol", "BTCUSDT", "--format", fmt, "--fsync", "never", *extra, str(src)])

        t_csv_none = median(lambda: ingest(["--rollups", "none"], csv, "binance-kline"), a.repeat)
        t_csv_roll = median(lambda: ingest([], csv, "binance-kline"), a.repeat)
        con = duckdb.connect()
        cols = "{'open_time':'BIGINT','open':'DOUBLE','high':'DOUBLE','low':'DOUBLE','close':'DOUBLE','volume':'DOUBLE','close_time':'BIGINT','quote_volume':'DOUBLE','trades':'BIGINT','taker_buy_base':'DOUBLE','taker_buy_quote':'DOUBLE','ignore':'BIGINT'}"
        rc = f"read_csv('{csv}', header=false, columns={cols})"

        def duck(sql):
            t = time.perf_counter()
            con.execute(sql).fetchall()
            return time.perf_counter() - t

        d_csv = median(lambda: duck(f"CREATE OR REPLACE TABLE k AS SELECT * FROM {rc}"), a.repeat)
        pq = tmp / "bars.parquet"
        con.execute(f"COPY (SELECT make_timestamp(open_time*1000) AS ts, 'BTCUSDT' AS symbol, open, high, low, close, volume FROM k) TO '{pq}' (FORMAT parquet)")
        t_pq = median(lambda: ingest(["--rollups", "none"], pq, "parquet"), a.repeat)
        d_pq = median(lambda: duck(f"CREATE OR REPLACE TABLE p AS SELECT * FROM read_parquet('{pq}')"), a.repeat)

        # Store with rollups for queries.
        ingest(["--rollups", "none"], csv, "binance-kline")
        store = tmp / "store"
        month = ["--start", "2023-03-01", "--end", "2023-04-01"]
        q = lambda tf, extra=(): timed([rf, "query", "--data-dir", str(store), "--dataset", "b", "--symbol", "BTCUSDT", "--timeframe", tf, "--format", "arrow", *extra])
        t_q_hot = median(lambda: q("1m", month), a.repeat)
        t_roll_hot = median(lambda: q("1h"), a.repeat)
        hot_bytes = du(store / "_hot")
        subprocess.run([rf, "write-down", "--data-dir", str(store), "--all"], check=True, stderr=subprocess.DEVNULL)
        t_q_cold = median(lambda: q("1m", month), a.repeat)
        t_roll_cold = median(lambda: q("1h"), a.repeat)
        cold_bytes = du(store / "dataset=b")
        d_month = median(lambda: duck("SELECT * FROM k WHERE open_time >= 1677628800000 AND open_time < 1680307200000"), a.repeat)
        d_roll = median(lambda: duck("SELECT time_bucket(INTERVAL 1 hour, make_timestamp(open_time*1000)) b, first(open ORDER BY open_time), max(high), min(low), last(close ORDER BY open_time), sum(volume) FROM k GROUP BY b"), a.repeat)
        dpq = tmp / "duck.parquet"
        con.execute(f"COPY (SELECT * EXCLUDE (close_time, ignore) FROM k) TO '{dpq}' (FORMAT parquet, COMPRESSION zstd)")
        csv_bytes = csv.stat().st_size

        rows = [
            ("ingest Binance kline CSV, no rollups", f"{n / t_csv_none / 1e6:.2f} M rows/s", f"read_csv: {n / d_csv / 1e6:.2f} M rows/s"),
            ("ingest Binance kline CSV + 5m,15m,1h,1d rollups", f"{n / t_csv_roll / 1e6:.2f} M rows/s", ""),
            ("ingest Parquet (ts,symbol,OHLCV)", f"{n / t_pq / 1e6:.2f} M rows/s", f"read_parquet: {n / d_pq / 1e6:.2f} M rows/s"),
            ("query 1 symbol-month of 1m, hot (CLI, arrow out)", f"{t_q_hot * 1e3:.1f} ms", f"in-memory table filter: {d_month * 1e3:.1f} ms"),
            ("query 1 symbol-month of 1m, cold (CLI, arrow out)", f"{t_q_cold * 1e3:.1f} ms", ""),
            ("symbol-year 1m -> 1h resample on read, hot (CLI total)", f"{t_roll_hot * 1e3:.1f} ms", f"time_bucket group-by: {d_roll * 1e3:.1f} ms"),
            ("symbol-year 1m -> 1h resample on read, cold (CLI total)", f"{t_roll_cold * 1e3:.1f} ms", ""),
            ("bytes/bar, cold Parquet (1m only)", f"{du(store / 'dataset=b' / 'tf=1m') / n:.1f}", f"DuckDB zstd Parquet: {dpq.stat().st_size / n:.1f}"),
            ("bytes/bar, hot WAL", f"{hot_bytes / n:.1f}", f"raw CSV: {csv_bytes / n:.1f}"),
        ]
        print(f"{n} rows, median of {a.repeat}; ringfeed = {rf}, duckdb {duckdb.__version__}\n")
        print("| what | ringfeed | DuckDB (same run) |\n|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} |")
        _ = cold_bytes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
