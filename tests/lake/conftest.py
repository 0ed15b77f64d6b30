"""Fixtures of the lake suite (scripts/test_lake.sh): the real `ringfeed`/`ringfeedd`
binaries, a symbol-year store, a moto S3 server behind a proxy that can cut the line,
and one Spark session for every Spark check."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "lake"
YEAR = 2023
SYMBOL = "BTCUSDT"


def binary(name: str) -> str:
    env = os.environ.get("RINGFEED_BIN_DIR")
    d = Path(env) if env else ROOT / "target" / "debug"
    p = d / name
    if not p.is_file():
        pytest.exit(f"no {p}: cargo build -p ringfeed-cli -p ringfeed-daemon (or set RINGFEED_BIN_DIR)")
    return str(p)


def ringfeed(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([binary("ringfeed"), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"ringfeed {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_year_csv(path: Path, symbol: str, year: int) -> int:
    first = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - first).days
    n = 0
    px = 100.0
    with path.open("w") as f:
        f.write("ts,symbol,open,high,low,close,volume\n")
        for d in range(days):
            day = first + dt.timedelta(days=d)
            for m in range(1440):
                px += ((m * 7919 + d * 104729) % 201 - 100) / 1000.0
                f.write(f"{day}T{m // 60:02d}:{m % 60:02d}:00Z,{symbol},{px:.3f},{px + 0.05:.3f},{px - 0.05:.3f},{px + 0.01:.3f},{1 + m % 9}\n")
                n += 1
    return n


@pytest.fixture(scope="session")
def year_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a symbol-year of 1m bars (and the default rollups), written down:
    12 compacted months × 5 timeframes = 60 finished partitions."""
    d = tmp_path_factory.mktemp("store")
    csv = d / "year.csv"
    write_year_csv(csv, SYMBOL, YEAR)
    data = d / "data"
    ringfeed("ingest", "--data-dir", str(data), "--dataset", "b", "--fsync", "never", str(csv))
    ringfeed("write-down", "--data-dir", str(data), "--before", f"{YEAR + 1}-01-01")
    csv.unlink()
    return data


@pytest.fixture
def store(year_store: Path, tmp_path: Path) -> Path:
    """A private copy of the year store (a test may change it)."""
    dst = tmp_path / "data"
    shutil.copytree(year_store, dst)
    return dst


class Proxy:
    """A TCP proxy to moto that can cut the line (an outage) and restore it."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.up = False
        self._srv: socket.socket | None = None
        self.start()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._srv = srv
        self.up = True
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut open ones."""
        self.up = False
        if self._srv is not None:
            self._srv.close()
            self._srv = None

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.up:
                a.settimeout(0.5)
                try:
                    buf = a.recv(1 << 16)
                except socket.timeout:
                    continue
                if not buf:
                    break
                b.sendall(buf)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


class Moto:
    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.direct = f"http://127.0.0.1:{port}"
        self.proxy = Proxy(port)
        self.endpoint = f"http://127.0.0.1:{self.proxy.port}"
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=self.direct, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")

    def keys(self, prefix: str = "") -> dict[str, str]:
        """Every key under `prefix` with its ETag."""
        out: dict[str, str] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["ETag"]
        return out

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        return e

    def lake_args(self, prefix: str) -> list[str]:
        return ["--url", f"s3://{BUCKET}/{prefix}", "--endpoint", self.endpoint, "--allow-http"]


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.2)
    m = Moto(port, proc)
    m.s3.create_bucket(Bucket=BUCKET)
    yield m
    proc.kill()
    proc.wait()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark session for every Spark check (its start-up is the slow part)."""
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: apt-get install openjdk-17-jre-headless")
    from pyspark.sql import SparkSession

    # Spark's Python workers (the `ringfeed_lake` data source runs there) use this
    # interpreter, which has pyarrow; Spark's default is whatever `python3` is on PATH.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    s = (
        SparkSession.builder.master("local[1]")
        .appName("ringfeed-lake-test")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        # The store writes ts as Parquet TIMESTAMP(NANOS); Spark reads nanoseconds only as
        # a long (its own timestamps are microseconds).
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def load_ringfeed_spark() -> Any:
    """python/python/ringfeed/spark.py, loaded from its file: this suite's venv does not
    build the ringfeed wheel, and the module imports nothing else of the package."""
    import importlib.util

    name = "ringfeed_spark"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "python" / "python" / "ringfeed" / "spark.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def lake_spark(spark: Any) -> Any:
    """The Spark session with `ringfeed_lake` registered; yields (session, module)."""
    mod = load_ringfeed_spark()
    mod.register(spark)
    return spark, mod
