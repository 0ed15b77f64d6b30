#!/usr/bin/env python3
"""Bar-store benchmarks beside DuckDB, in the same run, on a synthetic symbol-year of 1m bars.

Usage:
    CARGO_TARGET_DIR=target/store cargo build --release -p ringfeed-cli
    CARGO_TARGET_DIR=target/store cargo build --release -p ringfeed-ingest --features bench-bin --bin store_bench
    .venv/bin/python scripts/bench_store.py [--rows 525600] [--repeat 5] [--json out.json]

Needs `duckdb` and `pyarrow` in the Python environment (`.venv/bin/pip install duckdb pyarrow`).
Prints `uptime` before and after and a markdown table (medians of --repeat runs).

Every ringfeed figure is paired with DuckDB doing the same work on the same bytes:
- ingest: the Binance kline CSV (and a Parquet copy of it) → ringfeed store (CLI wall clock:
  process start, store open, parse, WAL write; fsync never) vs DuckDB `read_csv`/`read_parquet`
  into an in-memory table (explicit column types, no sniffing);
- query one symbol-month of 1m bars, in process, the result as Arrow: ringfeed
  `open_read_only` + `query` from the hot WAL vs DuckDB opening its own database file and
  selecting the month; ringfeed from cold Parquet vs DuckDB `read_parquet` over the *same*
  Parquet files (hive partitions, with the date predicate so that it prunes files too);
- rollup of the symbol-year 1m → 1h: the in-memory kernel (ringfeed `resample::resample` on a
  loaded RecordBatch vs DuckDB `time_bucket` group-by on an in-memory table, same aggregates:
  first/max/min/last and five sums) and from disk (ringfeed resample on read from cold Parquet
  vs DuckDB `read_parquet` + group-by over the same files);
- bytes per bar on disk: the cold tier's 1m Parquet vs the raw CSV and DuckDB's zstd Parquet of
  the same columns (one file, and partitioned per day);
- the cold symbol-year of 1m bars → a DataFrame: ringfeed's query in process (store_bench, an
  Arrow RecordBatch, which polars takes without a copy) vs `pl.read_parquet` of the store's own
  files, for the compacted store (12 month files) and the same store written down with
  `--no-compact` (365 day files); and the compaction of those day files (`ringfeed compact`);
- ten symbols: the same year under ten symbols in one dataset (5.3M rows, 12 month files
  sorted by symbol): one symbol-month and the ten-symbol month, cold, vs DuckDB and polars
  over the same files.
- real data, when ../shared/data is beside the repo: the 45,031-row BTC perpetual 1m CSV and
  the two Binance kline files of ADABTC, CLI ingest vs DuckDB read_csv of the same files.
Needs polars too for the DataFrame rows (skipped with a note without it).
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T0_MS = 1672531200000  # 2023-01-01T00:00:00Z
MONTH = ("2023-03-01", "2023-04-01")
MONTH_NS = (1677628800 * 10**9, 1680307200 * 10**9)
SYMBOL = "BTCUSDT"


def gen_kline(path: Path, rows: int) -> None:
    """Binance kline CSV (12 columns, ms timestamps) with a random walk at 0.01 ticks."""
    rnd = random.Random(7)
    p = 20000.0
    with open(path, "w") as f:
        for i in range(rows):
            o = p
            c = round(max(1.0, o + rnd.gauss(0, 8)), 2)
            h = round(max(o, c) + abs(rnd.gauss(0, 4)), 2)
            l = round(min(o, c) - abs(rnd.gauss(0, 4)), 2)
            v = round(abs(rnd.gauss(50, 20)), 5)
            t = T0_MS + i * 60000
            f.write(f"{t},{o:.2f},{h:.2f},{l:.2f},{c:.2f},{v},{t+59999},{v*o:.4f},{rnd.randint(10,900)},{v/2:.5f},{v*o/2:.4f},0\n")
            p = c


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def median(f, n):
    return statistics.median(f() for _ in range(n))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def create_files(d: Path) -> float:
    """What a layout costs the file system: 365 new 4 KiB files in one directory, the WAL
    files a symbol-year creates (one per dataset-day; the old one-per-timeframe layout made
    five times as many for four rollups)."""
    t = time.perf_counter()
    for k in range(1):
        (d / str(k)).mkdir(parents=True)
        for day in range(365):
            with open(d / str(k) / f"{day}.wal", "wb") as f:
                f.write(b"\0" * 4096)
    return time.perf_counter() - t


def find(candidates):
    return next((str(p) for p in candidates if p.exists()), None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=525_600)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bin", default=None, help="ringfeed CLI (default: target/store/release/ringfeed)")
    ap.add_argument("--bench-bin", default=None, help="store_bench example binary")
    ap.add_argument("--json", default=None, help="also write the raw figures here")
    ap.add_argument("--fsync-always", action="store_true", help="also time ingest with fsync=always (slow)")
    a = ap.parse_args()
    # The store's own target dir first: target/release may hold another session's older build.
    rf = a.bin or find([ROOT / "target/store/release/ringfeed", ROOT / "target/release/ringfeed"])
    sb = a.bench_bin or find([ROOT / "target/store/release/store_bench", ROOT / "target/release/store_bench"])
    if not rf or not sb:
        sys.exit("build first: CARGO_TARGET_DIR=target/store cargo build --release -p ringfeed-cli && "
                 "CARGO_TARGET_DIR=target/store cargo build --release -p ringfeed-ingest --features bench-bin --bin store_bench")
    try:
        import duckdb
        import pyarrow  # noqa: F401  (DuckDB's Arrow output)
    except ImportError:
        sys.exit("duckdb and pyarrow are needed: .venv/bin/pip install duckdb pyarrow")
    up0 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"before: {up0}", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="rf-bench-"))
    R = a.repeat
    fig = {}
    try:
        csv = tmp / "BTCUSDT-1m-2023.csv"
        gen_kline(csv, a.rows)
        n = a.rows

        # Every ingest writes a new directory; they are deleted only at the end. This VM's ext4
        # has no journal, and without one ext4 skips inodes freed in the last ~30 s when it
        # allocates new ones (`recently_deleted`), which made file creation 3-5x slower
        # right after an `rm -rf` of the previous run's 2,000 files.
        seq = iter(range(10**6))
        fresh = lambda: tmp / f"run{next(seq)}"

        def cli_ingest(d, src, fmt, rollups, fsync="never"):
            extra = ["--rollups", "none"] if rollups == "none" else []
            return timed([rf, "ingest", "--data-dir", str(d), "--dataset", "b", "--timeframe", "1m",
                          "--symbol", SYMBOL, "--format", fmt, "--fsync", fsync, *extra, str(src)])

        def sb_json(*args):
            out = subprocess.run([sb, *map(str, args)], check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        mem = duckdb.connect()
        mem.execute("SET TimeZone='UTC'")
        cols = ("{'open_time':'BIGINT','open':'DOUBLE','high':'DOUBLE','low':'DOUBLE','close':'DOUBLE',"
                "'volume':'DOUBLE','close_time':'BIGINT','quote_volume':'DOUBLE','trades':'BIGINT',"
                "'taker_buy_base':'DOUBLE','taker_buy_quote':'DOUBLE','ignore':'BIGINT'}")
        rc = f"read_csv('{csv}', header=false, columns={cols})"

        def duck(con, sql):
            t = time.perf_counter()
            con.execute(sql)
            return time.perf_counter() - t

        def duck_arrow(con, sql):
            t = time.perf_counter()
            tbl = con.sql(sql).to_arrow_table()
            return time.perf_counter() - t, tbl.num_rows

        # --- ingest: CSV. ringfeed and DuckDB take turns, so both see the same load.
        runs = {"none": [], "roll": [], "duck": [], "files": []}
        for _ in range(R):
            runs["files"].append(create_files(fresh()))
            runs["none"].append(cli_ingest(fresh(), csv, "binance-kline", "none"))
            runs["roll"].append(cli_ingest(fresh(), csv, "binance-kline", "default"))
            runs["duck"].append(duck(mem, f"CREATE OR REPLACE TABLE k AS SELECT * FROM {rc}"))
        fig["ingest_csv_none"] = statistics.median(runs["none"])
        fig["ingest_csv_roll"] = statistics.median(runs["roll"])
        fig["duck_csv"] = statistics.median(runs["duck"])
        fig["create_files"] = statistics.median(runs["files"])
        fig["ingest_runs"] = runs
        if a.fsync_always:
            fig["ingest_csv_roll_fsync"] = median(lambda: cli_ingest(fresh(), csv, "binance-kline", "default", "always"), 1)
        try:  # (a store_bench older than the `parse` subcommand skips this)
            parse = [sb_json("parse", csv, "binance-kline", SYMBOL) for _ in range(R)]
            fig["parse_csv"] = statistics.median(x["secs"] for x in parse)
            fig["parse_csv_cpu"] = statistics.median(x["cpu_secs"] for x in parse)
        except subprocess.CalledProcessError:
            pass
        inproc = [sb_json("ingest", fresh(), csv, "binance-kline", "none", SYMBOL) for _ in range(R)]
        fig["ingest_csv_none_inproc"] = statistics.median(x["secs"] for x in inproc)
        fig["ingest_csv_none_upsert"] = statistics.median(x["upsert_secs"] for x in inproc)
        inproc = [sb_json("ingest", fresh(), csv, "binance-kline", "default", SYMBOL) for _ in range(R)]
        fig["ingest_csv_roll_inproc"] = statistics.median(x["secs"] for x in inproc)
        fig["ingest_csv_roll_upsert"] = statistics.median(x["upsert_secs"] for x in inproc)
        if Path("/dev/shm").is_dir():
            # The same on tmpfs: what is left once file creation costs ~nothing.
            shm = Path(tempfile.mkdtemp(prefix="rf-bench-", dir="/dev/shm"))
            try:
                k = iter(range(10**6))
                inproc = [sb_json("ingest", shm / f"r{next(k)}", csv, "binance-kline", "none", SYMBOL) for _ in range(R)]
                fig["ingest_csv_none_shm"] = statistics.median(x["secs"] for x in inproc)
                inproc = [sb_json("ingest", shm / f"r{next(k)}", csv, "binance-kline", "default", SYMBOL) for _ in range(R)]
                fig["ingest_csv_roll_shm"] = statistics.median(x["secs"] for x in inproc)
            finally:
                shutil.rmtree(shm, ignore_errors=True)

        # The canonical bar columns, as the store holds them.
        sel = ("to_timestamp(open_time / 1000) AS ts, 'BTCUSDT' AS symbol, open, high, low, close, volume, "
               "quote_volume, trades, taker_buy_base, taker_buy_quote")
        mem.execute(f"CREATE OR REPLACE TABLE bars AS SELECT {sel} FROM k ORDER BY ts")
        pq = tmp / "bars.parquet"
        mem.execute(f"COPY bars TO '{pq}' (FORMAT parquet)")
        # --- ingest: Parquet
        runs = {"rf": [], "duck": []}
        for _ in range(R):
            runs["rf"].append(cli_ingest(fresh(), pq, "parquet", "none"))
            runs["duck"].append(duck(mem, f"CREATE OR REPLACE TABLE p AS SELECT * FROM read_parquet('{pq}')"))
        fig["ingest_pq_none"] = statistics.median(runs["rf"])
        fig["duck_pq"] = statistics.median(runs["duck"])

        # --- stores for the queries: S1 with the default rollups, S0 without; S5 holds only
        # ts, symbol and OHLCV (the optional Binance columns null), for bytes per bar.
        s1, s0, s5 = tmp / "s1", tmp / "s0", tmp / "s5"
        cli_ingest(s1, csv, "binance-kline", "default")
        cli_ingest(s0, csv, "binance-kline", "none")
        pq5 = tmp / "ohlcv.parquet"
        mem.execute(f"COPY (SELECT ts, symbol, open, high, low, close, volume FROM bars) TO '{pq5}' (FORMAT parquet)")
        cli_ingest(s5, pq5, "parquet", "none")
        fig["hot_wal_bytes"] = du(s1 / "_hot" / "b")
        fig["hot_wal_files"] = sum(1 for _ in (s1 / "_hot" / "b").rglob("*.wal"))
        fig["hot_wal_bytes_none"] = du(s0 / "_hot" / "b")
        m0, m1 = MONTH_NS
        qm = ["b", SYMBOL, "1m", m0, m1, R]
        fig["q_month_hot"] = sb_json("query", s1, *qm)["secs"]
        cli_q = lambda d, tf, extra=(): timed([rf, "query", "--data-dir", str(d), "--dataset", "b", "--symbol", SYMBOL,
                                                "--timeframe", tf, "--format", "arrow", *extra])
        month = ["--start", MONTH[0], "--end", MONTH[1]]
        fig["q_month_hot_cli"] = median(lambda: cli_q(s1, "1m", month), R)
        fig["q_year_1h_hot_rollup"] = sb_json("query", s1, "b", SYMBOL, "1h", -2**62, 2**62, R)["secs"]
        fig["q_year_1h_hot_resample"] = sb_json("query", s0, "b", SYMBOL, "1h", -2**62, 2**62, R)["secs"]
        for s in (s1, s0, s5):
            subprocess.run([rf, "write-down", "--data-dir", str(s), "--all"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fig["q_month_cold"] = sb_json("query", s1, *qm)["secs"]
        fig["q_month_cold_cli"] = median(lambda: cli_q(s1, "1m", month), R)
        fig["q_year_1h_cold_rollup"] = sb_json("query", s1, "b", SYMBOL, "1h", -2**62, 2**62, R)["secs"]
        fig["q_year_1h_cold_resample"] = sb_json("query", s0, "b", SYMBOL, "1h", -2**62, 2**62, R)["secs"]
        fig["q_year_1h_cold_resample_cli"] = median(lambda: cli_q(s0, "1h"), R)
        fig["cli_noop"] = median(lambda: timed([rf, "--version"]), R)
        k = sb_json("resample", s0, "b", SYMBOL, "1h", max(R, 11))
        assert k["input_rows"] == n, k
        fig["resample_kernel"] = k["secs"]

        # DuckDB: its own database file (hot counterpart) and the store's Parquet files (cold).
        dbf = tmp / "duck.db"
        with duckdb.connect(str(dbf)) as c:
            c.execute("SET TimeZone='UTC'")
            c.execute(f"CREATE TABLE bars AS SELECT {sel} FROM {rc} ORDER BY ts")
        q_month = (f"SELECT * FROM bars WHERE symbol = '{SYMBOL}' AND ts >= '{MONTH[0]} 00:00:00+00' "
                   f"AND ts < '{MONTH[1]} 00:00:00+00' ORDER BY ts")

        def duck_file_month():
            t = time.perf_counter()
            c = duckdb.connect(str(dbf), read_only=True)
            c.execute("SET TimeZone='UTC'")
            rows = c.sql(q_month).to_arrow_table().num_rows
            c.close()
            assert rows == 31 * 1440 or n < 100_000, rows
            return time.perf_counter() - t

        fig["duck_month_dbfile"] = median(duck_file_month, R)
        glob = f"{s1}/dataset=b/tf=1m/*/*.parquet"
        rp = f"read_parquet('{glob}', hive_partitioning=true)"
        q_month_pq = (f"SELECT * EXCLUDE (dataset, tf, month) FROM {rp} WHERE month = '{MONTH[0][:7]}' "
                      f"AND symbol = '{SYMBOL}' AND ts >= '{MONTH[0]} 00:00:00+00' "
                      f"AND ts < '{MONTH[1]} 00:00:00+00' ORDER BY ts")

        def duck_pq_month():
            t = time.perf_counter()
            c = duckdb.connect()
            c.execute("SET TimeZone='UTC'")
            rows = c.sql(q_month_pq).to_arrow_table().num_rows
            c.close()
            assert rows == 31 * 1440 or n < 100_000, rows
            return time.perf_counter() - t

        fig["duck_month_parquet"] = median(duck_pq_month, R)
        agg = ("symbol, time_bucket(INTERVAL 1 hour, ts::TIMESTAMPTZ) AS bucket, first(open ORDER BY ts) AS open, max(high) AS high, "
               "min(low) AS low, last(close ORDER BY ts) AS close, sum(volume) AS volume, sum(quote_volume) AS quote_volume, "
               "sum(trades) AS trades, sum(taker_buy_base) AS taker_buy_base, sum(taker_buy_quote) AS taker_buy_quote")
        fig["duck_rollup_mem"] = median(lambda: duck_arrow(mem, f"SELECT {agg} FROM bars GROUP BY ALL ORDER BY ALL")[0], max(R, 11))
        fig["duck_rollup_old"] = median(lambda: duck_arrow(mem, "SELECT time_bucket(INTERVAL 1 hour, make_timestamp(open_time*1000)) b, first(open ORDER BY open_time), max(high), min(low), last(close ORDER BY open_time), sum(volume) FROM k GROUP BY b")[0], max(R, 11))
        glob0 = f"{s0}/dataset=b/tf=1m/*/*.parquet"
        fig["duck_rollup_parquet"] = median(
            lambda: duck_arrow(mem, f"SELECT {agg} FROM read_parquet('{glob0}') GROUP BY ALL ORDER BY ALL")[0], R)

        # --- bytes per bar
        fig["cold_1m_bytes"] = du(s1 / "dataset=b" / "tf=1m")
        fig["cold_1m_ohlcv_bytes"] = du(s5 / "dataset=b" / "tf=1m")
        fig["cold_all_bytes"] = du(s1 / "dataset=b")
        fig["cold_1m_files"] = sum(1 for _ in (s1 / "dataset=b" / "tf=1m").rglob("*.parquet"))
        fig["csv_bytes"] = csv.stat().st_size
        dpq = tmp / "duck.parquet"
        mem.execute(f"COPY bars TO '{dpq}' (FORMAT parquet, COMPRESSION zstd)")
        fig["duck_pq_bytes"] = dpq.stat().st_size
        dpart = tmp / "duckpart"
        mem.execute(f"COPY (SELECT *, strftime(ts, '%Y-%m-%d') AS date FROM bars) TO '{dpart}' "
                    f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))")
        fig["duck_pq_part_bytes"] = du(dpart)
        dpq5 = tmp / "duck5.parquet"
        mem.execute(f"COPY (SELECT ts, symbol, open, high, low, close, volume FROM bars) TO '{dpq5}' (FORMAT parquet, COMPRESSION zstd)")
        fig["duck_pq_ohlcv_bytes"] = dpq5.stat().st_size
        fig["rows"] = n
        year_and_ten_symbols(a, fig, tmp, rf, sb, sb_json, csv, cli_ingest, duckdb)
        real_data(a, fig, tmp, rf, duckdb)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    up1 = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"after:  {up1}", file=sys.stderr)
    fig["uptime_before"], fig["uptime_after"] = up0, up1
    if a.json:
        Path(a.json).write_text(json.dumps(fig, indent=1))

    f = fig
    rate = lambda s: n / s / 1e6
    ms = lambda s: s * 1e3
    ir = f["ingest_runs"]
    span = lambda v: f"(runs {rate(max(v)):.2f}–{rate(min(v)):.2f})"
    rows = [
        ("ingest Binance kline CSV, default rollups (5m,15m,1h,1d), CLI",
         f"{rate(f['ingest_csv_roll']):.2f} M rows/s {span(ir['roll'])}",
         f"read_csv → table: {rate(f['duck_csv']):.2f} M rows/s {span(ir['duck'])}", f"{f['duck_csv'] / f['ingest_csv_roll']:.2f}"),
        ("ingest Binance kline CSV, no rollups, CLI", f"{rate(f['ingest_csv_none']):.2f} M rows/s {span(ir['none'])}",
         f"{rate(f['duck_csv']):.2f} M rows/s", f"{f['duck_csv'] / f['ingest_csv_none']:.2f}"),
        ("  in process, rollups / none (of which upsert)",
         f"{rate(f['ingest_csv_roll_inproc']):.2f} / {rate(f['ingest_csv_none_inproc']):.2f} M rows/s "
         f"({ms(f['ingest_csv_roll_upsert']):.0f} / {ms(f['ingest_csv_none_upsert']):.0f} ms)", "", ""),
    ]
    rows.append(("  creating 365 files alone (a symbol-year's WALs, 4 KiB each), Python",
                 f"{ms(f['create_files']):.0f} ms (runs {ms(min(ir['files'])):.0f}–{ms(max(ir['files'])):.0f})", "", ""))
    if "parse_csv" in f:
        rows.append(("  CSV parse alone (2 threads), in process",
                     f"{rate(f['parse_csv']):.2f} M rows/s ({ms(f['parse_csv_cpu']):.0f} ms CPU)", "", ""))
    if "ingest_csv_none_shm" in f:
        rows.append(("  in process on tmpfs, rollups / none",
                     f"{rate(f['ingest_csv_roll_shm']):.2f} / {rate(f['ingest_csv_none_shm']):.2f} M rows/s", "", ""))
    if "ingest_csv_roll_fsync" in f:
        rows.append(("ingest Binance kline CSV, default rollups, fsync=always, CLI",
                     f"{rate(f['ingest_csv_roll_fsync']):.2f} M rows/s", "", ""))
    rows += [
        ("ingest Parquet, no rollups, CLI", f"{rate(f['ingest_pq_none']):.2f} M rows/s",
         f"read_parquet → table: {rate(f['duck_pq']):.2f} M rows/s", f"{f['duck_pq'] / f['ingest_pq_none']:.2f}"),
        ("query 1 symbol-month 1m, hot WAL, in process", f"{ms(f['q_month_hot']):.1f} ms",
         f"own .duckdb file: {ms(f['duck_month_dbfile']):.1f} ms", f"{f['duck_month_dbfile'] / f['q_month_hot']:.2f}"),
        ("query 1 symbol-month 1m, cold Parquet, in process", f"{ms(f['q_month_cold']):.1f} ms",
         f"read_parquet, same files: {ms(f['duck_month_parquet']):.1f} ms", f"{f['duck_month_parquet'] / f['q_month_cold']:.2f}"),
        ("  same via CLI (process, arrow to /dev/null): hot / cold", f"{ms(f['q_month_hot_cli']):.1f} / {ms(f['q_month_cold_cli']):.1f} ms",
         f"`ringfeed --version`: {ms(f['cli_noop']):.1f} ms", ""),
        ("rollup symbol-year 1m → 1h, in-memory kernel", f"{ms(f['resample_kernel']):.1f} ms",
         f"time_bucket group-by, in-memory table: {ms(f['duck_rollup_mem']):.1f} ms", f"{f['duck_rollup_mem'] / f['resample_kernel']:.2f}"),
        ("rollup symbol-year 1m → 1h, resample on read from cold", f"{ms(f['q_year_1h_cold_resample']):.1f} ms",
         f"read_parquet + group-by: {ms(f['duck_rollup_parquet']):.1f} ms", f"{f['duck_rollup_parquet'] / f['q_year_1h_cold_resample']:.2f}"),
        ("  1h for the year, stored rollup: hot / cold", f"{ms(f['q_year_1h_hot_rollup']):.1f} / {ms(f['q_year_1h_cold_rollup']):.1f} ms", "", ""),
        ("  1h for the year, resample on read: hot / cold CLI", f"{ms(f['q_year_1h_hot_resample']):.1f} / {ms(f['q_year_1h_cold_resample_cli']):.1f} ms",
         f"old script's OHLCV-only group-by: {ms(f['duck_rollup_old']):.1f} ms", ""),
        ("bytes/bar, cold Parquet 1m (all 11 columns)", f"{f['cold_1m_bytes'] / n:.1f} ({f['cold_1m_files']} files)",
         f"zstd Parquet, one file: {f['duck_pq_bytes'] / n:.1f}; per day: {f['duck_pq_part_bytes'] / n:.1f}",
         f"{f['duck_pq_bytes'] / f['cold_1m_bytes']:.2f}"),
        ("bytes/bar, cold Parquet 1m, ts+symbol+OHLCV only", f"{f['cold_1m_ohlcv_bytes'] / n:.1f}",
         f"zstd Parquet, one file: {f['duck_pq_ohlcv_bytes'] / n:.1f}", f"{f['duck_pq_ohlcv_bytes'] / f['cold_1m_ohlcv_bytes']:.2f}"),
        ("  cold incl. rollups; hot WAL, 1m + rollups / 1m only", f"{f['cold_all_bytes'] / n:.1f}; "
         f"{f['hot_wal_bytes'] / n:.1f} / {f['hot_wal_bytes_none'] / n:.1f} ({f['hot_wal_files']} WAL files)",
         f"CSV: {f['csv_bytes'] / n:.1f}", ""),
    ]
    rows += year_rows(f, n, ms)
    rows += real_rows(f, ms)
    print(f"\n{n} rows, median of {R}; ringfeed = {rf}, duckdb {duckdb.__version__}, {os.cpu_count()} CPUs")
    print(f"uptime before: {up0}\nuptime after:  {up1}\n")
    print("| measure | ringfeed | DuckDB or polars (same run) | ratio (>1 = ringfeed faster/smaller) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |")


def year_and_ten_symbols(a, fig, tmp, rf, sb, sb_json, csv, cli_ingest, duckdb):
    """The cold symbol-year → DataFrame, day files vs month files, compaction, ten symbols."""
    try:
        import polars as pl
    except ImportError:
        print("polars missing: the DataFrame rows are skipped (.venv/bin/pip install polars)", file=sys.stderr)
        return
    R = a.repeat
    yr = ["b", SYMBOL, "1m", -2**62, 2**62, R]

    def run(*cmd):
        subprocess.run([rf, *map(str, cmd)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def pl_read(files):
        def f():
            t = time.perf_counter()
            df = pl.read_parquet(files)
            assert df.height == fig["rows"], df.height
            return time.perf_counter() - t
        return f

    # Day files (write-down --no-compact) and month files (write-down), same rows.
    sd, sm = tmp / "sday", tmp / "smonth"
    cli_ingest(sd, csv, "binance-kline", "none")
    run("write-down", "--data-dir", sd, "--all", "--no-compact")
    cli_ingest(sm, csv, "binance-kline", "none")
    run("write-down", "--data-dir", sm, "--all")
    day_files = sorted(str(p) for p in (sd / "dataset=b" / "tf=1m").rglob("*.parquet"))
    month_files = sorted(str(p) for p in (sm / "dataset=b" / "tf=1m").rglob("*.parquet"))
    fig["year_day_files"], fig["year_month_files"] = len(day_files), len(month_files)
    # Turns, so both see the same load; each figure is itself a median of R runs.
    t = {"rf_day": [], "rf_month": [], "pl_day": [], "pl_month": []}
    for _ in range(3):
        t["rf_day"].append(sb_json("query", sd, *yr)["secs"])
        t["pl_day"].append(median(pl_read(day_files), R))
        t["rf_month"].append(sb_json("query", sm, *yr)["secs"])
        t["pl_month"].append(median(pl_read(month_files), R))
    for k, v in t.items():
        fig[f"year_{k}"] = statistics.median(v)
    # Compaction of the 365 day files (on copies, so the day store stays as it is).
    comp = []
    for i in range(3):
        d = tmp / f"comp{i}"
        shutil.copytree(sd, d)
        comp.append(timed([rf, "compact", "--data-dir", str(d)]))
    fig["compact_year_secs"] = statistics.median(comp)
    fig["compact_bytes_in"] = du(sd / "dataset=b" / "tf=1m")
    fig["compact_bytes_out"] = du(tmp / "comp0" / "dataset=b" / "tf=1m")

    # Ten symbols of the same year in one dataset, compacted: 12 month files sorted by symbol.
    s10 = tmp / "s10"
    syms = [f"S{k:02d}USDT" for k in range(10)]
    for sym in syms:
        subprocess.run([rf, "ingest", "--data-dir", str(s10), "--dataset", "b", "--timeframe", "1m", "--symbol", sym,
                        "--format", "binance-kline", "--fsync", "never", "--rollups", "none", str(csv)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("write-down", "--data-dir", s10, "--all")
    m0, m1 = MONTH_NS
    month_rows = 31 * 1440 if fig["rows"] >= 100_000 else None
    one = sb_json("query", s10, "b", syms[3], "1m", m0, m1, R)
    assert month_rows is None or one["rows"] == month_rows, one
    fig["ten_one_month"] = one["secs"]
    every = sb_json("query", s10, "b", "*", "1m", m0, m1, R)
    assert month_rows is None or every["rows"] == 10 * month_rows, every
    fig["ten_all_month"] = every["secs"]
    glob10 = f"{s10}/dataset=b/tf=1m/*/*.parquet"
    where = f"month = '{MONTH[0][:7]}' AND ts >= '{MONTH[0]} 00:00:00+00' AND ts < '{MONTH[1]} 00:00:00+00'"

    def duck(sql):
        def f():
            t0 = time.perf_counter()
            c = duckdb.connect()
            c.execute("SET TimeZone='UTC'")
            c.sql(sql).to_arrow_table()
            c.close()
            return time.perf_counter() - t0
        return f

    rp = f"read_parquet('{glob10}', hive_partitioning=true)"
    cols = "* EXCLUDE (dataset, tf, month)"
    fig["ten_one_month_duck"] = median(duck(f"SELECT {cols} FROM {rp} WHERE {where} AND symbol = '{syms[3]}' ORDER BY ts"), R)
    fig["ten_all_month_duck"] = median(duck(f"SELECT {cols} FROM {rp} WHERE {where} ORDER BY symbol, ts"), R)

    def pl_scan(sym):
        lo = pl.datetime(2023, 3, 1, time_zone="UTC")
        hi = pl.datetime(2023, 4, 1, time_zone="UTC")

        def f():
            t0 = time.perf_counter()
            q = pl.scan_parquet(glob10, hive_partitioning=True).filter(
                (pl.col("month") == MONTH[0][:7]) & (pl.col("ts") >= lo) & (pl.col("ts") < hi))
            if sym:
                q = q.filter(pl.col("symbol") == sym)
            q.collect()
            return time.perf_counter() - t0
        return f

    try:
        fig["ten_one_month_pl"] = median(pl_scan(syms[3]), R)
        fig["ten_all_month_pl"] = median(pl_scan(None), R)
    except Exception as e:  # an older polars: no hive columns or tz-aware literals
        print(f"polars scan skipped: {e}", file=sys.stderr)


def real_data(a, fig, tmp, rf, duckdb):
    """Ingest of the real files in ../shared/data/crypto (skipped when absent): the 45,031-row
    BTC perpetual 1m CSV and the two Binance kline files of ADABTC (21 rows), CLI vs DuckDB
    read_csv of the same file, turns, median of --repeat."""
    d = ROOT.parent / "shared" / "data" / "crypto"
    perp = d / "btc-perp-20211231-20220201_1m.csv"
    if not perp.is_file():
        print(f"{d} absent: the real-data ingest rows are skipped", file=sys.stderr)
        return
    klines = sorted(d.glob("ADABTC-1m-2021-11-2*.csv"))
    seq = iter(range(10**6))
    mem = duckdb.connect()

    def cli(src, fmt, rollups, symbol):
        out = tmp / f"real{next(seq)}"
        extra = ["--rollups", "none"] if rollups == "none" else []
        return timed([rf, "ingest", "--data-dir", str(out), "--dataset", "r", "--timeframe", "1m", "--symbol", symbol,
                      "--format", fmt, "--fsync", "never", *extra, *map(str, src)])

    def duck(sql):
        t = time.perf_counter()
        mem.execute(sql)
        return time.perf_counter() - t

    runs = {"roll": [], "none": [], "duck": [], "k_roll": [], "k_duck": []}
    files = ", ".join(f"'{k}'" for k in klines)
    for _ in range(a.repeat):
        runs["roll"].append(cli([perp], "csv", "default", "BTC-PERP"))
        runs["none"].append(cli([perp], "csv", "none", "BTC-PERP"))
        runs["duck"].append(duck(f"CREATE OR REPLACE TABLE p AS SELECT * FROM read_csv('{perp}')"))
        if klines:
            runs["k_roll"].append(cli(klines, "binance-kline", "default", "ADABTC"))
            runs["k_duck"].append(duck(f"CREATE OR REPLACE TABLE k AS SELECT * FROM read_csv([{files}], header=false)"))
    for k, v in runs.items():
        if v:
            fig[f"real_{k}"] = statistics.median(v)
    fig["real_perp_rows"] = sum(1 for _ in open(perp)) - 1
    fig["real_kline_rows"] = sum(sum(1 for _ in open(k)) for k in klines)


def real_rows(f, ms):
    if "real_roll" not in f:
        return [("real data (../shared/data/crypto)", "skipped: absent", "", "")]
    n = f["real_perp_rows"]
    rate = lambda s: f"{n / s / 1e6:.2f} M rows/s ({ms(s):.0f} ms)"
    rows = [
        (f"real BTC perpetual 1m CSV ({n:,} rows), CLI ingest, default rollups / none",
         f"{rate(f['real_roll'])} / {rate(f['real_none'])}", f"read_csv (auto): {rate(f['real_duck'])}",
         f"{f['real_duck'] / f['real_roll']:.2f} / {f['real_duck'] / f['real_none']:.2f}"),
    ]
    if "real_k_roll" in f:
        rows.append((f"real Binance kline CSV, ADABTC, 2 files ({f['real_kline_rows']} rows): process and setup cost",
                     f"{ms(f['real_k_roll']):.1f} ms", f"read_csv: {ms(f['real_k_duck']):.1f} ms",
                     f"{f['real_k_duck'] / f['real_k_roll']:.2f}"))
    return rows


def year_rows(f, n, ms):
    if "year_rf_month" not in f:
        return [("cold symbol-year → DataFrame", "skipped: no polars", "", "")]
    pl1 = f"; polars scan {ms(f['ten_one_month_pl']):.1f} ms" if "ten_one_month_pl" in f else ""
    pl10 = f"; polars scan {ms(f['ten_all_month_pl']):.1f} ms" if "ten_all_month_pl" in f else ""
    return [
        (f"cold symbol-year 1m → Arrow (a DataFrame without copy), month files ({f['year_month_files']}), in process",
         f"{ms(f['year_rf_month']):.1f} ms", f"pl.read_parquet of the same files: {ms(f['year_pl_month']):.1f} ms",
         f"{f['year_pl_month'] / f['year_rf_month']:.2f}"),
        (f"  same, day files ({f['year_day_files']}, `write-down --no-compact`)",
         f"{ms(f['year_rf_day']):.1f} ms", f"pl.read_parquet of the same files: {ms(f['year_pl_day']):.1f} ms",
         f"{f['year_pl_day'] / f['year_rf_day']:.2f}"),
        ("  gain of month files over day files (ringfeed)", f"{f['year_rf_day'] / f['year_rf_month']:.2f}×", "", ""),
        ("compaction of a symbol-year's 365 day files (`ringfeed compact`, CLI)",
         f"{ms(f['compact_year_secs']):.0f} ms ({n / f['compact_year_secs'] / 1e6:.2f} M rows/s); "
         f"{f['compact_bytes_in'] / n:.1f} → {f['compact_bytes_out'] / n:.1f} bytes/bar", "", ""),
        ("10 symbols × year, cold: 1 symbol-month, in process", f"{ms(f['ten_one_month']):.1f} ms",
         f"DuckDB {ms(f['ten_one_month_duck']):.1f} ms{pl1}", f"{f['ten_one_month_duck'] / f['ten_one_month']:.2f}"),
        ("10 symbols × year, cold: the 10-symbol month, in process", f"{ms(f['ten_all_month']):.1f} ms",
         f"DuckDB {ms(f['ten_all_month_duck']):.1f} ms{pl10}", f"{f['ten_all_month_duck'] / f['ten_all_month']:.2f}"),
    ]


if __name__ == "__main__":
    main()
