"""The store's cold tier is plain Hive-partitioned Parquet that polars and DuckDB read as-is.

Builds a store with the real `ringfeed` binary (ingest + write-down) in a temp directory,
then reads the Parquet files without ringfeed.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _ringfeed():
    cands = [str(ROOT / p) for p in ("target/debug/ringfeed", "target/release/ringfeed",
                                     "target/store/debug/ringfeed", "target/store/release/ringfeed")]
    cands.append(shutil.which("ringfeed") or "")
    cands = [c for c in cands if c and os.path.exists(c)]
    cands.sort(key=lambda c: os.path.getmtime(c), reverse=True)  # the freshest build first
    for c in cands:
        # A binary built before the store existed has no `ingest`: skip it.
        if c and os.path.exists(c) and subprocess.run(
                [c, "ingest", "--help"], capture_output=True).returncode == 0:
            return c
    pytest.skip("no ringfeed binary with the store commands (cargo build -p ringfeed-cli)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rf = _ringfeed()
    tmp = tmp_path_factory.mktemp("store")
    csv = tmp / "bars.csv"
    with open(csv, "w") as f:
        f.write("timestamp,symbol,open,high,low,close,volume\n")
        for day in range(3):
            for m in range(0, 1440, 10):
                t = f"2024-01-{day + 1:02d}T{m // 60:02d}:{m % 60:02d}:00Z"
                for i, s in enumerate(("AAA", "BBB")):
                    p = 100 + i * 10 + m / 1000
                    f.write(f"{t},{s},{p},{p + 1},{p - 1},{p + 0.5},{m + 1}\n")
    data = tmp / "data"
    subprocess.run([rf, "ingest", "--data-dir", str(data), "--dataset", "demo",
                    "--timeframe", "1m", "--rollups", "1h", str(csv)], check=True)
    subprocess.run([rf, "write-down", "--data-dir", str(data), "--all"], check=True)
    return data


def test_polars_scans_the_cold_tier(store):
    pl = pytest.importorskip("polars")
    df = pl.scan_parquet(str(store / "dataset=demo" / "tf=1m" / "**" / "*.parquet"),
                         hive_partitioning=True).collect()
    assert df.height == 3 * 144 * 2
    assert set(df["symbol"].unique()) == {"AAA", "BBB"}
    assert {"ts", "open", "high", "low", "close", "volume", "month"} <= set(df.columns)
    assert str(df.schema["ts"]).startswith("Datetime")
    one = df.filter(pl.col("symbol") == "AAA").sort("ts")
    assert one["ts"].is_sorted()
    hourly = pl.scan_parquet(str(store / "dataset=demo" / "tf=1h" / "**" / "*.parquet"),
                             hive_partitioning=True).collect()
    assert hourly.height == 3 * 24 * 2
    assert hourly["complete"].dtype == pl.Boolean


def test_duckdb_reads_the_cold_tier(store):
    duckdb = pytest.importorskip("duckdb")
    glob = str(store / "dataset=demo" / "tf=1m" / "**" / "*.parquet")
    n, syms, days = duckdb.sql(
        f"SELECT count(*), count(DISTINCT symbol), count(DISTINCT CAST(ts AS DATE)) "
        f"FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[0]
    assert (n, syms, days) == (3 * 144 * 2, 2, 3)
    # The 1h rollup on disk equals DuckDB's own group-by over the 1m bars.
    got = duckdb.sql(
        f"SELECT symbol, (epoch_ns(ts) // 3600000000000) * 3600000000000 AS h, first(open ORDER BY ts), "
        f"max(high), min(low), last(close ORDER BY ts), sum(volume) "
        f"FROM read_parquet('{glob}') GROUP BY ALL ORDER BY symbol, h").fetchall()
    hglob = str(store / "dataset=demo" / "tf=1h" / "**" / "*.parquet")
    want = duckdb.sql(f"SELECT symbol, epoch_ns(ts), open, high, low, close, volume FROM read_parquet('{hglob}') "
                      f"ORDER BY symbol, ts").fetchall()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[0] == w[0] and g[1] == w[1]
        assert g[2:] == pytest.approx(w[2:])
