#!/usr/bin/env python3
"""The lake (issue 16), timed: upload throughput and engines reading a symbol-year.

1. A store holding SYMBOLS symbol-years of 1m bars (default rollups), written down
   (12 compacted months x 5 timeframes per dataset).
2. `ringfeed lake sync` to a file:// lake and to a moto S3 server started here
   (fresh prefix each run): MB/s = uploaded bytes / pass time (hashing, uploads,
   manifests, index, sweep), median of RUNS.
3. One symbol-year of 1m bars read by `ringfeed query` (Arrow IPC to a pipe, process
   start included) and from the lake by polars (file:// and s3://), DuckDB (file://, and
   s3:// when httpfs loads) and Spark (local mode, session started once): its own Parquet
   reader on file:// (s3a needs hadoop-aws jars from Maven), and the `ringfeed_lake` Python
   data source (ringfeed.spark: the index's objects through pyarrow) on file:// and s3://:
   median of RUNS after one warm-up, same run.

Prints numbers; asserts nothing but row counts. Run with the lake suite's venv
(tests/lake/requirements.txt). Env: RINGFEED_BIN_DIR (default target/release), SYMBOLS (1),
RUNS (5), KEEP (keep the temp dir).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "lake"))
os.environ.setdefault("RINGFEED_BIN_DIR", str(ROOT / "target" / "release"))
from conftest import BUCKET, YEAR, binary, free_port, write_year_csv  # noqa: E402

SYMBOLS = int(os.environ.get("SYMBOLS", "1"))
RUNS = int(os.environ.get("RUNS", "5"))


def run(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run([binary("ringfeed"), *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"ringfeed {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def med(f, n: int = RUNS) -> float:
    f()  # warm-up
    return statistics.median(f() for _ in range(n))


def timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        data = tmp / "data"
        for i in range(SYMBOLS):
            csv = tmp / f"s{i}.csv"
            write_year_csv(csv, f"SYM{i}", YEAR)
            run("ingest", "--data-dir", str(data), "--dataset", "b", "--fsync", "never", str(csv))
            csv.unlink()
        run("write-down", "--data-dir", str(data), "--before", f"{YEAR + 1}-01-01")
        cold = sum(p.stat().st_size for p in data.glob("dataset=*/**/*.parquet"))
        print(f"store: {SYMBOLS} symbol-year(s) of 1m bars + rollups, {cold / 1e6:.1f} MB of Parquet in finished partitions")

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket=BUCKET)

        def sync_rate(url: str, extra: list[str]) -> tuple[float, float]:
            out = run("lake", "sync", "--data-dir", str(data), "--url", url, *extra, env=env)
            m = re.search(r"objects, ([0-9.]+) MB, [0-9.]+ MB/s\).*\(([0-9]+) ms\)", out)
            assert m, out
            return float(m.group(1)), int(m.group(2)) / 1e3

        for name, mk in (
            ("file://", lambda i: (f"file://{tmp}/lake-{i}", [])),
            ("moto S3", lambda i: (f"s3://{BUCKET}/run-{i}", ["--endpoint", f"http://127.0.0.1:{port}", "--allow-http"])),
        ):
            rates = []
            secs = []
            for i in range(RUNS):
                url, extra = mk(i)
                mb, s = sync_rate(url, extra)
                rates.append(mb / s)
                secs.append(s)
            print(f"upload to {name:8}: {mb:.1f} MB in 60 objects x {SYMBOLS} symbol(s): median {statistics.median(secs) * 1e3:.0f} ms, {statistics.median(rates):.1f} MB/s (min {min(rates):.1f}, max {max(rates):.1f})")

        lake = tmp / "lake-0"
        s3 = f"s3://{BUCKET}/run-0"
        rows = 525_600

        def cli() -> None:
            p = subprocess.run([binary("ringfeed"), "query", "--data-dir", str(data), "--dataset", "b", "--symbol", "SYM0", "--timeframe", "1m", "--format", "arrow"], stdout=subprocess.PIPE, check=True)
            assert len(p.stdout) > rows * 40

        import duckdb
        import polars as pl

        opts = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1", "aws_endpoint_url": f"http://127.0.0.1:{port}", "aws_allow_http": "true"}

        def polars_at(root: str, o: dict[str, str] | None) -> None:
            df = pl.scan_parquet(f"{root}/dataset=b/tf=1m/**/*.parquet", hive_partitioning=True, storage_options=o).filter(pl.col("symbol") == "SYM0").collect()
            assert df.height == rows, df.height

        con = duckdb.connect()

        def duck(root: str) -> None:
            t = con.sql(f"select * from read_parquet('{root}/dataset=b/tf=1m/*/*.parquet', hive_partitioning=true) where symbol = 'SYM0'").to_arrow_table()
            assert t.num_rows == rows, t.num_rows

        results = [
            ("ringfeed query (CLI, Arrow to a pipe)", med(lambda: timed(cli))),
            ("polars scan_parquet file:// lake", med(lambda: timed(lambda: polars_at(str(lake), None)))),
            ("polars scan_parquet s3:// (moto)", med(lambda: timed(lambda: polars_at(s3, opts)))),
            ("DuckDB read_parquet file:// lake", med(lambda: timed(lambda: duck(str(lake))))),
        ]
        try:
            con.execute("INSTALL httpfs; LOAD httpfs;")
            con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false)")
            results.append(("DuckDB read_parquet s3:// (httpfs, moto)", med(lambda: timed(lambda: duck(s3)))))
        except Exception as e:  # noqa: BLE001
            print(f"(DuckDB s3: httpfs unavailable: {e})")
        if shutil.which("java"):
            from pyspark.sql import SparkSession

            os.environ["PYSPARK_PYTHON"] = sys.executable  # the data source's workers need pyarrow
            sys.path.insert(0, str(ROOT / "tests" / "lake"))
            from conftest import load_ringfeed_spark

            t0 = time.perf_counter()
            spark = (
                SparkSession.builder.master("local[2]").appName("bench-lake").config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.legacy.parquet.nanosAsLong", "true").config("spark.driver.memory", "2g").getOrCreate()
            )
            spark.sparkContext.setLogLevel("ERROR")
            print(f"(Spark session start: {(time.perf_counter() - t0) * 1e3:.0f} ms, not counted below)")

            def sp() -> None:
                t = spark.read.parquet(f"file://{lake}/dataset=b/tf=1m").where("symbol = 'SYM0'").toArrow()
                assert t.num_rows == rows, t.num_rows

            results.append(("Spark read.parquet file:// lake (toArrow)", med(lambda: timed(sp))))
            load_ringfeed_spark().register(spark)
            s3o = {"access_key": "test", "secret_key": "test", "region": "us-east-1", "endpoint_override": f"http://127.0.0.1:{port}"}

            def rl(url: str, o: dict[str, str]) -> None:
                t = spark.read.format("ringfeed_lake").options(url=url, dataset="b", timeframe="1m", **o).load().where("symbol = 'SYM0'").toArrow()
                assert t.num_rows == rows, t.num_rows

            results.append(("Spark ringfeed_lake file:// (toArrow)", med(lambda: timed(lambda: rl(f"file://{lake}", {})))))
            results.append(("Spark ringfeed_lake s3:// (moto, toArrow)", med(lambda: timed(lambda: rl(s3, s3o)))))
            results.append(("  same, check_manifests=false", med(lambda: timed(lambda: rl(s3, {**s3o, "check_manifests": "false"})))))
            spark.stop()
        base = results[0][1]
        print(f"symbol-year of 1m bars ({rows:,} rows), median of {RUNS} after a warm-up:")
        for name, s in results:
            print(f"  {name:44} {s * 1e3:8.1f} ms  ({s / base:4.2f}x ringfeed query)")
    finally:
        moto.kill()
        if not os.environ.get("KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
