"""The lake with the real binaries and the real clients (scripts/test_lake.sh).

S3 against a moto server this suite starts (behind a proxy that can cut the line);
file:// against a temp dir. Engines: polars (S3 and file), DuckDB (file; S3 when its
httpfs extension can be loaded, else through a pyarrow dataset), Spark (file:// with its
own Parquet reader; S3 and file:// through `ringfeed.spark`'s `ringfeed_lake` data source:
s3a needs hadoop-aws jars from Maven, which this machine cannot reach)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BUCKET, SYMBOL, YEAR, Moto, binary, free_port, ringfeed


def wait_for(cond: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cli_bars(data: Path, tf: str, tmp: Path) -> pa.Table:
    """`ringfeed query` of the whole year at `tf`, as Arrow."""
    out = tmp / f"q-{tf}.parquet"
    r = subprocess.run([binary("ringfeed"), "query", "--data-dir", str(data), "--dataset", "b", "--timeframe", tf, "--format", "parquet"], capture_output=True, check=True)
    out.write_bytes(r.stdout)
    return pq.read_table(out)


def as_rows(t: pa.Table) -> list[tuple[Any, ...]]:
    """(ts ns, symbol, o, h, l, c, v) sorted: what every engine must agree on."""
    ts = t.column("ts").cast(pa.int64()).to_pylist()
    cols = [t.column(c).to_pylist() for c in ("symbol", "open", "high", "low", "close", "volume")]
    return sorted(zip(ts, *cols))


def s3_data_keys(moto: Moto, prefix: str) -> dict[str, str]:
    return {k: e for k, e in moto.keys(prefix + "/").items() if k.startswith(prefix + "/dataset=")}


def verify(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return ringfeed("lake", "verify", *args, env=env, check=False)


# ---------------------------------------------------------------------------------------
# file:// and S3: sync, verify, engines


def spark_rows(df: Any) -> list[tuple[Any, ...]]:
    return sorted((r["ts"], r["symbol"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in df.collect())


def test_file_lake_sync_verify_and_engines(store: Path, tmp_path: Path, spark: Any, lake_spark: Any) -> None:
    lake = tmp_path / "lake"
    args = ["--data-dir", str(store), "--url", f"file://{lake}"]
    out = ringfeed("lake", "sync", *args).stdout
    assert "uploaded 60 partitions" in out, out
    v = verify(args)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "60 partitions, 60 objects" in v.stdout
    again = ringfeed("lake", "sync", *args).stdout
    assert "uploaded 0 partitions" in again and "0 objects deleted" in again, again

    want = as_rows(cli_bars(store, "1d", tmp_path))
    assert len(want) == 365

    import polars as pl

    got = pl.scan_parquet(str(lake / "dataset=b" / "tf=1d" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert as_rows(got.to_arrow()) == want

    import duckdb

    con = duckdb.connect()
    t = con.sql(f"select * from read_parquet('{lake}/dataset=b/tf=1d/*/*.parquet', hive_partitioning=true)").to_arrow_table()
    assert as_rows(t) == want
    # Hive pruning: the month column is there.
    n = con.execute(f"select count(*) from read_parquet('{lake}/dataset=b/tf=1m/*/*.parquet', hive_partitioning=true) where month = '{YEAR}-03'").fetchone()
    assert n is not None and n[0] == 31 * 1440

    # Spark reads the layout (ts as nanoseconds: spark.sql.legacy.parquet.nanosAsLong).
    df = spark.read.parquet(f"file://{lake}/dataset=b/tf=1d")  # type: ignore[attr-defined]
    assert set(df.columns) >= {"ts", "symbol", "open", "close", "month"}
    rows = sorted((r["ts"], r["symbol"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in df.collect())
    assert rows == want
    agg = df.groupBy("month").count().collect()  # type: ignore[attr-defined]
    assert len(agg) == 12

    # The same through `ringfeed_lake` (the index's objects, read with pyarrow).
    lk = spark.read.format("ringfeed_lake").option("url", f"file://{lake}").option("dataset", "b").option("timeframe", "1d").load()  # type: ignore[attr-defined]
    assert lk.columns == df.columns
    assert spark_rows(lk) == want


def test_s3_lake_sync_verify_and_polars(store: Path, tmp_path: Path, moto: Moto) -> None:
    prefix = "t-s3"
    args = ["--data-dir", str(store), *moto.lake_args(prefix)]
    out = ringfeed("lake", "sync", *args, env=moto.env()).stdout
    assert "uploaded 60 partitions" in out, out
    v = verify(args, moto.env())
    assert v.returncode == 0, v.stdout + v.stderr
    keys = s3_data_keys(moto, prefix)
    assert len(keys) == 60
    assert all(k.startswith(f"{prefix}/dataset=b/tf=") and "/month=" in k for k in keys)

    import polars as pl

    opts = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1", "aws_endpoint_url": moto.direct, "aws_allow_http": "true"}
    got = pl.scan_parquet(f"s3://{BUCKET}/{prefix}/dataset=b/tf=1d/**/*.parquet", storage_options=opts, hive_partitioning=True).collect()
    want = as_rows(cli_bars(store, "1d", tmp_path))
    assert as_rows(got.to_arrow()) == want
    one = pl.scan_parquet(f"s3://{BUCKET}/{prefix}/dataset=b/tf=1m/**/*.parquet", storage_options=opts, hive_partitioning=True).filter(pl.col("month") == f"{YEAR}-07").select(pl.len()).collect()
    assert one.item() == 31 * 1440

    import duckdb

    con = duckdb.connect()
    try:
        con.execute("INSTALL httpfs; LOAD httpfs;")
    except Exception:
        # Offline (httpfs is downloaded on first use, from DuckDB's own server, which this
        # machine's registries do not include): DuckDB scans the S3 lake through a pyarrow
        # dataset on pyarrow's S3 filesystem instead (DuckDB's Arrow scan, filters pushed).
        import pyarrow.dataset as pds
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                               endpoint_override=f"127.0.0.1:{moto.port}", scheme="http")
        lake_1d = pds.dataset(f"{BUCKET}/{prefix}/dataset=b/tf=1d", filesystem=fs,
                              format="parquet", partitioning="hive")
        t = con.sql("select * from lake_1d").to_arrow_table()
        assert as_rows(t) == want
        lake_1m = pds.dataset(f"{BUCKET}/{prefix}/dataset=b/tf=1m", filesystem=fs,
                              format="parquet", partitioning="hive")
        n = con.execute(f"select count(*) from lake_1m where month = '{YEAR}-07'").fetchone()
        assert n is not None and n[0] == 31 * 1440
        return
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', ENDPOINT '127.0.0.1:{moto.port}', URL_STYLE 'path', USE_SSL false)")
    t = con.sql(f"select * from read_parquet('s3://{BUCKET}/{prefix}/dataset=b/tf=1d/*/*.parquet', hive_partitioning=true)").to_arrow_table()
    assert as_rows(t) == want


def test_spark_reads_the_s3_lake_through_ringfeed_lake(store: Path, tmp_path: Path, moto: Moto, lake_spark: Any) -> None:
    spark, rfs = lake_spark
    prefix = "t-spark"
    args = ["--data-dir", str(store), *moto.lake_args(prefix)]
    ringfeed("lake", "sync", *args, env=moto.env())
    s3 = {"access_key": "test", "secret_key": "test", "region": "us-east-1", "endpoint_override": moto.direct}

    def lake(**opts: str) -> Any:
        r = spark.read.format("ringfeed_lake").options(**s3)
        for k, v in {"url": f"s3://{BUCKET}/{prefix}", "dataset": "b", "timeframe": "1d", **opts}.items():
            r = r.option(k, v)
        return r.load()

    want = as_rows(cli_bars(store, "1d", tmp_path))
    assert len(want) == 365
    df = lake()
    # One Spark partition per Parquet object (one per month), the file:// read's columns.
    assert df.rdd.getNumPartitions() == 12
    assert df.columns[:7] == ["ts", "symbol", "open", "high", "low", "close", "volume"] and df.columns[-1] == "month"
    assert dict(df.dtypes)["ts"] == "bigint"
    assert spark_rows(df) == want
    assert sorted((r["month"], r["count"]) for r in df.groupBy("month").count().collect())[2] == (f"{YEAR}-03", 31)

    # ts as Spark timestamps (µs): the same instants.
    ts = lake(ts="timestamp")
    assert dict(ts.dtypes)["ts"] == "timestamp"
    assert sorted(r[0] * 1000 for r in ts.selectExpr("unix_micros(ts)").collect()) == [w[0] for w in want]
    # months / symbols options prune objects and rows; 1m of one month is whole.
    jul = lake(timeframe="1m", months=f"{YEAR}-07", symbols=SYMBOL)
    assert jul.rdd.getNumPartitions() == 1 and jul.count() == 31 * 1440
    assert lake(symbols="NOPE").count() == 0

    # Index-driven: an object the index does not name (a leftover of a pass cut short,
    # or a superseded generation before the sweep) is seen by a Hive glob, not here.
    idx = json.loads(moto.s3.get_object(Bucket=BUCKET, Key=f"{prefix}/_lake/index.json")["Body"].read())
    mar = idx["partitions"][f"dataset=b/tf=1d/month={YEAR}-03"]["files"][0]
    body = moto.s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{mar}")["Body"].read()
    stray = f"{prefix}/dataset=b/tf=1d/month={YEAR}-03/part-9-0000000000000000.parquet"
    moto.s3.put_object(Bucket=BUCKET, Key=stray, Body=body)
    import polars as pl

    opts = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "aws_region": "us-east-1", "aws_endpoint_url": moto.direct, "aws_allow_http": "true"}
    globbed = pl.scan_parquet(f"s3://{BUCKET}/{prefix}/dataset=b/tf=1d/**/*.parquet", storage_options=opts, hive_partitioning=True).collect()
    assert globbed.height == 365 + 31
    assert spark_rows(lake()) == want
    moto.s3.delete_object(Bucket=BUCKET, Key=stray)

    # Wrong names and damage: the error names what is missing or refused (the Python
    # exception's message reaches the Spark error), and nothing is read.
    def err(**opts: str) -> str:
        with pytest.raises(Exception) as e:
            lake(**opts).count()
        return str(e.value)

    m = err(dataset="nope")
    assert "LakeDatasetNotFoundError" in m and "no dataset 'nope'" in m and "it holds: b" in m, m
    m = err(timeframe="7m")
    assert "no timeframe '7m'" in m and "1d" in m, m
    m = err(url=f"s3://{BUCKET}/no-such-prefix")
    assert "LakeNotFoundError" in m and f"s3://{BUCKET}/no-such-prefix/_lake/index.json" in m, m
    m = err(url="s3://no-such-bucket/x")
    assert "LakeNotFoundError" in m and "no-such-bucket" in m, m
    m = err(url="http://example.com/lake")
    assert "LakeOptionError" in m and "neither s3://" in m, m
    m = err(dataset="")
    assert "option 'dataset' is missing" in m, m
    # A manifest edited by hand (valid JSON, stale checksum): refused, naming it.
    mkey = f"{prefix}/{idx['partitions'][f'dataset=b/tf=1d/month={YEAR}-05']['manifest']}"
    good = moto.s3.get_object(Bucket=BUCKET, Key=mkey)["Body"].read()
    moto.s3.put_object(Bucket=BUCKET, Key=mkey, Body=good.replace(b'"rows": ', b'"rows": 9', 1))
    m = err()
    assert "LakeCorruptError" in m and f"month={YEAR}-05" in m and "ringfeed lake verify" in m, m
    moto.s3.put_object(Bucket=BUCKET, Key=mkey, Body=good)
    # A garbage index.
    ikey = f"{prefix}/_lake/index.json"
    gidx = moto.s3.get_object(Bucket=BUCKET, Key=ikey)["Body"].read()
    moto.s3.put_object(Bucket=BUCKET, Key=ikey, Body=b'{"format": "ringfeed-lake-index/1", "seq": ')
    m = err()
    assert "LakeCorruptError" in m and "_lake/index.json" in m and "--rebuild-index" in m, m
    moto.s3.put_object(Bucket=BUCKET, Key=ikey, Body=gidx)
    # The same objects without Spark (plain Python), and the lake still reads whole.
    objs = rfs.lake_objects({"url": f"s3://{BUCKET}/{prefix}", "dataset": "b", "timeframe": "1d", **s3})
    assert len(objs) == 12 and sum(o.rows for o in objs) == 365
    assert spark_rows(lake()) == want
    assert verify(args, moto.env()).returncode == 0


# ---------------------------------------------------------------------------------------
# kill -9, outages, corruption, retention


def test_sync_killed_mid_upload_resumes_without_rewriting_a_name(store: Path, moto: Moto) -> None:
    prefix = "t-kill"
    args = ["--data-dir", str(store), *moto.lake_args(prefix)]
    env = moto.env()
    env["RINGFEED_LAKE_TEST_DELAY_MS"] = "40"
    for round in range(3):
        p = subprocess.Popen([binary("ringfeed"), "lake", "sync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        base = len(s3_data_keys(moto, prefix))
        wait_for(lambda: len(s3_data_keys(moto, prefix)) >= min(60, base + 8) or p.poll() is not None, "uploads to start")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, f"round {round}: the pass finished before the kill"
    before = s3_data_keys(moto, prefix)
    assert 0 < len(before) < 60, len(before)
    # The next pass finishes the job; no name that existed gets other bytes.
    out = ringfeed("lake", "sync", *args, env=moto.env()).stdout
    assert "lake holds 60 partitions" in out, out
    after = s3_data_keys(moto, prefix)
    assert len(after) == 60
    for k, etag in before.items():
        assert after.get(k) == etag, k
    v = verify(args, moto.env())
    assert v.returncode == 0 and "stray" not in v.stdout, v.stdout + v.stderr


def test_outage_fails_the_pass_then_the_next_one_uploads_everything(store: Path, moto: Moto) -> None:
    prefix = "t-outage"
    args = ["--data-dir", str(store), *moto.lake_args(prefix)]
    env = moto.env()
    env["RINGFEED_LAKE_TEST_DELAY_MS"] = "30"
    p = subprocess.Popen([binary("ringfeed"), "lake", "sync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(s3_data_keys(moto, prefix)) >= 10 or p.poll() is not None, "uploads to start")
    moto.proxy.stop()
    try:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 1, err
        assert "nothing is lost" in err, err
        # While the line is down, passes fail and say so.
        down = ringfeed("lake", "sync", *args, env=moto.env(), check=False)
        assert down.returncode == 1 and "failed" in down.stderr, down.stderr
        assert verify(args, moto.env()).returncode == 2
    finally:
        moto.proxy.start()
    out = ringfeed("lake", "sync", *args, env=moto.env()).stdout
    assert "lake holds 60 partitions" in out, out
    assert len(s3_data_keys(moto, prefix)) == 60
    assert verify(args, moto.env()).returncode == 0


def test_corrupt_manifest_and_index_are_refused_and_reported(store: Path, moto: Moto) -> None:
    prefix = "t-corrupt"
    args = ["--data-dir", str(store), *moto.lake_args(prefix)]
    ringfeed("lake", "sync", *args, env=moto.env())
    idx_key = f"{prefix}/_lake/index.json"
    idx = json.loads(moto.s3.get_object(Bucket=BUCKET, Key=idx_key)["Body"].read())
    entry = idx["partitions"][f"dataset=b/tf=1h/month={YEAR}-05"]
    mkey = f"{prefix}/{entry['manifest']}"
    good = moto.s3.get_object(Bucket=BUCKET, Key=mkey)["Body"].read()
    # A manifest with a row count changed (valid JSON, stale checksum).
    bad = good.replace(b'"rows": ', b'"rows": 9', 1)
    moto.s3.put_object(Bucket=BUCKET, Key=mkey, Body=bad)
    v = verify(args, moto.env())
    assert v.returncode == 1, v.stdout + v.stderr
    assert "corrupt manifest (refused)" in v.stdout and f"month={YEAR}-05" in v.stdout, v.stdout
    # Garbage in a data object (same size) of another partition: its checksum is reported.
    other = idx["partitions"][f"dataset=b/tf=1d/month={YEAR}-03"]
    dkey = f"{prefix}/{other['files'][0]}"
    body = moto.s3.get_object(Bucket=BUCKET, Key=dkey)["Body"].read()
    moto.s3.put_object(Bucket=BUCKET, Key=dkey, Body=bytes(len(body)))
    v = verify(args, moto.env())
    assert v.returncode == 1 and "checksum:" in v.stdout, v.stdout
    moto.s3.put_object(Bucket=BUCKET, Key=dkey, Body=body)
    # A garbage index: verify cannot run (exit 2), sync refuses, both say why.
    gidx = moto.s3.get_object(Bucket=BUCKET, Key=idx_key)["Body"].read()
    moto.s3.put_object(Bucket=BUCKET, Key=idx_key, Body=b'{"format": "ringfeed-lake-index/1", "seq": ')
    v = verify(args, moto.env())
    assert v.returncode == 2 and "corrupt" in v.stderr, v.stderr
    s = ringfeed("lake", "sync", *args, env=moto.env(), check=False)
    assert s.returncode == 1 and "refusing" in s.stderr, s.stderr
    assert len(s3_data_keys(moto, prefix)) == 60, "a refused pass deletes nothing"
    # Rebuilt from the manifests: the corrupt one is skipped and its partition uploaded
    # again from the store; everything verifies.
    moto.s3.put_object(Bucket=BUCKET, Key=idx_key, Body=gidx)
    r = ringfeed("lake", "sync", "--rebuild-index", *args, env=moto.env())
    assert "lake holds 60 partitions" in r.stdout, r.stdout
    v = verify(args, moto.env())
    assert v.returncode == 0, v.stdout


def test_lake_retention_removes_old_partitions_from_the_lake_only(store: Path, tmp_path: Path) -> None:
    import datetime as dt

    lake = tmp_path / "lake"
    args = ["--data-dir", str(store), "--url", f"file://{lake}"]
    ringfeed("lake", "sync", *args)
    # Keep what ends on or after YEAR-07-01: the first half-year goes.
    span = (dt.datetime.now(dt.timezone.utc).date() - dt.date(YEAR, 7, 1)).days
    out = ringfeed("lake", "sync", *args, "--lake-retention", f"{span}d").stdout
    assert "30 expired" in out, out
    months = sorted({p.parent.name for p in lake.glob("dataset=b/tf=1m/*/*.parquet")})
    assert months == [f"month={YEAR}-{m:02d}" for m in range(7, 13)]
    assert len(list(store.glob("dataset=b/tf=1m/*/*.parquet"))) == 12, "the store keeps its months"
    assert verify(args).returncode == 0


# ---------------------------------------------------------------------------------------
# the daemon


def start_daemon(store: Path, tmp: Path, lake_toml: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = tmp / "ringfeedd.toml"
    cfg.write_text(lake_toml)
    p = subprocess.Popen(
        [binary("ringfeedd"), "--config", str(cfg), "--data-dir", str(store), "--socket", str(tmp / "rf.sock"), "--metrics", f"127.0.0.1:{port}", "--arena-prefix", f"lk{os.getpid()}x{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "daemon.log", "ab"),
    )
    return p, port


def metrics(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln.startswith("ringfeed_lake_")}


def test_daemon_syncs_survives_kill_9_and_an_outage(store: Path, tmp_path: Path, moto: Moto) -> None:
    prefix = "t-daemon"
    toml = f'[lake]\nurl = "s3://{BUCKET}/{prefix}"\nendpoint = "{moto.endpoint}"\nallow_http = true\nretry_max = "1s"\n'
    env = moto.env()
    env["RINGFEED_LAKE_TEST_DELAY_MS"] = "40"
    # kill -9 mid-pass.
    d, port = start_daemon(store, tmp_path, toml, env)
    try:
        wait_for(lambda: len(s3_data_keys(moto, prefix)) >= 8 or d.poll() is not None, "the daemon's first uploads")
        assert d.poll() is None, (tmp_path / "daemon.log").read_text()
    finally:
        d.kill()
        d.wait()
    partial = s3_data_keys(moto, prefix)
    assert 0 < len(partial) < 60
    # Restarted while the line is down: it serves, counts failures, keeps the partitions
    # pending, and uploads them once the line is back.
    moto.proxy.stop()
    d, port = start_daemon(store, tmp_path, toml, moto.env())
    try:
        wait_for(lambda: metrics(port).get("ringfeed_lake_failures_total", 0) >= 2, "failed passes to be counted", 120)
        m = metrics(port)
        assert m["ringfeed_lake_last_success_timestamp_seconds"] == 0
        moto.proxy.start()
        wait_for(lambda: metrics(port).get("ringfeed_lake_last_success_timestamp_seconds", 0) > 0, "a successful pass", 120)
        m = metrics(port)
        assert m["ringfeed_lake_pending_partitions"] == 0 and m["ringfeed_lake_partitions"] == 60, m
        assert m["ringfeed_lake_uploaded_objects_total"] == 60 - len(partial), m
        # The daemon still answers a real query.
        q = ringfeed("datasets", "--socket", str(tmp_path / "rf.sock"), "--json")
        assert '"b"' in q.stdout, q.stdout
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=60)
    after = s3_data_keys(moto, prefix)
    assert len(after) == 60
    assert all(after[k] == e for k, e in partial.items())
    v = verify(["--data-dir", str(store), *moto.lake_args(prefix)], moto.env())
    assert v.returncode == 0, v.stdout + v.stderr
