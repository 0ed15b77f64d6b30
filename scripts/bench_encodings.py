#!/usr/bin/env python3
"""DuckDB's Parquet of the rows `parquet_encodings` generated, and polars reading the store's
own files, in the same run (issue 13). Run by the example
(`cargo run --release -p ringfeed-store --example parquet_encodings`), which leaves under DIR:
  data/year.arrow, data/month10.arrow   the generated rows (Arrow IPC)
  chosen/{daily,monthly,one}/*.parquet  the symbol-year written with the chosen settings
  chosen/month10/*.parquet              the 10-symbol month, one file

Needs duckdb, polars, pyarrow (the repo's .venv). Prints Markdown tables. With --polars-only,
prints the median ms of `pl.read_parquet` of DIR/*.parquet (the example times its own reader
on the same files in turns with this).
"""
import argparse, os, statistics, tempfile, time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.ipc as ipc


def du(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*.parquet"))


def timed_ms(f, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


OHLCV = "ts, symbol, open, high, low, close, volume"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--polars-only", action="store_true",
                    help="print only the median ms of pl.read_parquet of DIR/*.parquet (the example "
                         "alternates this with its own reader, so both see the same load)")
    a = ap.parse_args()
    d = a.dir
    if a.polars_only:
        files = sorted(str(f) for f in d.glob("*.parquet"))
        pl.read_parquet(files)
        print(f"{timed_ms(lambda: pl.read_parquet(files), a.repeat):.2f}")
        return
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    year = ipc.open_file(d / "data/year.arrow").read_all()
    month10 = ipc.open_file(d / "data/month10.arrow").read_all()
    con.register("y_arrow", year)
    con.register("m_arrow", month10)
    con.execute("CREATE TABLE y AS SELECT * FROM y_arrow ORDER BY ts")
    con.execute("CREATE TABLE m AS SELECT * FROM m_arrow ORDER BY symbol, ts")
    n, nm = year.num_rows, month10.num_rows
    rows = []
    with tempfile.TemporaryDirectory(prefix="rf-duck-", dir=d) as tmp:
        tmp = Path(tmp)

        def copy(sql, name, extra=""):
            out = tmp / name
            con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd{extra})")
            return du(out)

        for cols, label in (("*", "11 cols"), (OHLCV, "OHLCV")):
            one = copy(f"SELECT {cols} FROM y", f"one-{label}.parquet")
            # The partition column is not stored in the files (Hive layout), so bytes are of
            # the same columns.
            monthly = copy(f"SELECT {cols}, month(ts::TIMESTAMP_NS) AS m FROM y", f"monthly-{label}", ", PARTITION_BY (m)")
            daily = copy(f"SELECT {cols}, strftime(ts::TIMESTAMP_NS::TIMESTAMP, '%Y-%m-%d') AS date FROM y", f"daily-{label}",
                         ", PARTITION_BY (date)")
            m10 = copy(f"SELECT {cols} FROM m", f"m10-{label}.parquet")
            rows.append((label, daily / n, monthly / n, one / n, m10 / nm))
        # scripts/bench_store.py gave DuckDB µs timestamps (to_timestamp of the CSV's ms):
        # the same rows that way, for comparison with the earlier figures.
        us = "ts::TIMESTAMP_NS::TIMESTAMP::TIMESTAMPTZ AS ts"
        for cols, label in ((f"* REPLACE ({us})", "11 cols, ts as µs TIMESTAMPTZ"),
                            (OHLCV.replace("ts", us, 1), "OHLCV, ts as µs TIMESTAMPTZ")):
            one = copy(f"SELECT {cols} FROM y", f"one-{label}.parquet")
            monthly = copy(f"SELECT {cols}, month(y.ts::TIMESTAMP_NS) AS m FROM y", f"monthly-{label}",
                           ", PARTITION_BY (m)")
            daily = copy(f"SELECT {cols}, strftime(y.ts::TIMESTAMP_NS::TIMESTAMP, '%Y-%m-%d') AS date FROM y",
                         f"daily-{label}", ", PARTITION_BY (date)")
            m10 = copy(f"SELECT {cols} FROM m", f"m10-{label}.parquet")
            rows.append((label, daily / n, monthly / n, one / n, m10 / nm))
    print("| DuckDB `COPY … (FORMAT parquet, COMPRESSION zstd)` | daily B/bar | monthly B/bar | one file B/bar | 10-symbol month, one file B/bar |")
    print("|---|---|---|---|---|")
    for label, dl, mo, one, m10 in rows:
        print(f"| {label} | {dl:.2f} | {mo:.2f} | {one:.2f} | {m10:.2f} |")

    print()
    print(f"| `pl.read_parquet` of the store's own files (polars {pl.__version__}, median of {a.repeat}) | ms | rows |")
    print("|---|---|---|")
    for layout in ("daily", "monthly", "one"):
        files = sorted(str(f) for f in (d / "chosen" / layout).glob("*.parquet"))
        if not files:
            continue
        df = pl.read_parquet(files)
        ms = timed_ms(lambda: pl.read_parquet(files), a.repeat)
        print(f"| symbol-year, {layout} ({len(files)} files) | {ms:.1f} | {df.height} |")
    m10 = sorted(str(f) for f in (d / "chosen" / "month10").glob("*.parquet"))
    if m10:
        ms = timed_ms(lambda: pl.read_parquet(m10), a.repeat)
        print(f"| 10-symbol month, one file | {ms:.1f} | {pl.read_parquet(m10).height} |")
        ms = timed_ms(lambda: pl.scan_parquet(m10).filter(pl.col("symbol") == "ETHUSDT").collect(), a.repeat)
        print(f"| 10-symbol month, one symbol (`scan_parquet` + filter) | {ms:.1f} | "
              f"{pl.scan_parquet(m10).filter(pl.col('symbol') == 'ETHUSDT').collect().height} |")
        # DuckDB reads the store's own month file too (a readability check with a number).
        q = f"SELECT count(*) FROM read_parquet('{m10[0]}') WHERE symbol = 'ETHUSDT'"
        ms = timed_ms(lambda: con.execute(q).fetchall(), a.repeat)
        print(f"| DuckDB `count(*)` of one symbol of the store's month file | {ms:.1f} | {con.execute(q).fetchone()[0]} |")


if __name__ == "__main__":
    main()
