#!/usr/bin/env python3
"""Arrow Flight benchmark (issue 14): ringfeedd's Flight face over loopback beside a
DuckPort-style server and the local ways, in one run.

Usage:
    CARGO_INCREMENTAL=0 cargo build --release -p ringfeed-daemon -p ringfeed-cli
    .venv/bin/python scripts/bench_flight.py                 # full run, ~3 min here
    .venv/bin/python scripts/bench_flight.py --quick         # smoke run: one month, < 1 min
    .venv/bin/python scripts/bench_flight.py --bin-dir DIR --out target/bench-flight.json

The binaries' directory: --bin-dir, else $RINGFEED_BIN_DIR, else <repo>/target/release.
The Python environment needs ringfeed (the wheel), polars, pyarrow and duckdb
(scripts/py_env.sh builds it into .venv), and the `openssl` command (certificates).

What it does, in a fresh temporary directory (removed at the end, daemons stopped with
SIGTERM, arenas under a per-run prefix checked gone):
  0. seeds one symbol-year of 1m bars (525,600 rows, all 11 bar columns, a seeded random
     walk; --quick: January, 44,640 rows) through a daemon's local client,
     `rf.connect(sock).append(...)` one week per call, then `write_down(all=True)`: every bar
     is cold Parquet in the store's month files. The data dir is then copied, so that several
     daemons (one config each) serve the same files at once.
  1. symbol-year -> polars DataFrame, in one client process, with two daemons (Flight
     plaintext, and Flight with TLS; both with a bearer token) and two DuckPort-style
     servers (pyarrow FlightServerBase + DuckDB over the same month files; plaintext and TLS):
       rf_flight[_tls]   rf.connect("grpc[+tls]://...", token=...).bars(ds, sym, "1m", ...)
       pa_flight[_tls]   pyarrow FlightClient.do_get(JSON ticket).read_all() -> pl.from_arrow
       duckport[_tls]    pyarrow FlightClient.do_get(symbol).read_all() -> pl.from_arrow
       local_rf          rf.connect(sock).bars(...)  (shared memory, no network)
       pl_read_parquet   pl.read_parquet(month files)
       rf_flight_fresh   rf_flight with a key the daemon has not seen, every time
     "first": each way's first call, in a client process of its own (imports and a 10-row
     query done untimed first; ringfeed: a key not in the daemon's cache, so it reads the
     Parquet; Flight: includes the connect and TLS handshake; DuckPort: its first query);
     "warm": median of --reps calls in shuffled turns (ringfeed: a cache hit; DuckPort and
     polars read the Parquet every time). Parquet files are in the page cache throughout.
  2. live publish -> subscriber: one 1-row append every 10 ms through the local socket;
     the time from just before the append call to a subscriber holding the row as a
     polars DataFrame, p50/p99, for a remote subscriber (Flight subscribe ticket,
     `rf.connect("grpc://...").replay`) beside a local one (`rf.connect(sock).replay`),
     each in a process of its own, in the same run.
  3. N = 1 and 8 concurrent remote reader processes, each `do_get(symbol-year).read_all()` in
     a loop for --seconds after a common start: GB/s of Arrow data (Table.nbytes) in total.
  4. cost of auth and rate limits per request: p50/p99 of `do_action("ping")` and a 10-row
     DoGet (`limit: 10`) against three daemons at once, in turns: no tokens; a token;
     a token + `[limits.per_principal] requests_per_s = 1000000`.

Output: a markdown summary on stdout (and --md), raw numbers as JSON (--out). Nothing here
asserts anything about time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob as globmod
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_daemon import Worker, busy_pct, cpu_times, loadavg, steal_pct
from bench_daemon_util import MIN_NS, med
from bench_daemon_report import pct
from bench_flight_report import summarise

ROOT = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().with_name("bench_flight_workers.py")
DATASET = "bench"
SYMBOL = "BTCUSDT"
YEAR_START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
SEED_CHUNK = 7 * 1440  # rows per append while seeding: one week
FIRST_WAYS = ("rf_flight", "pa_flight", "rf_flight_tls", "pa_flight_tls", "duckport", "duckport_tls", "local_rf",
              "pl_read_parquet")


class FlightWorker(Worker):
    """bench_daemon's line-driven worker process, running bench_flight_workers.py."""

    def __init__(self, role: str, args: Dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKERS), role, json.dumps(args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buf = b""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- daemons

class Daemon:
    """`ringfeedd --config` on its own data dir and socket, optionally with Flight on a port."""

    def __init__(self, bin_dir: Path, work: Path, name: str, data: Path, flight: str = "",
                 port: Optional[int] = None, log_filter: str = "warn") -> None:
        self.bin_dir, self.name, self.port, self.log_filter = bin_dir, name, port, log_filter
        self.sock = work / f"{name}.sock"
        self.log = work / f"{name}.log"
        self.cfg = work / f"{name}.toml"
        head = [f'data_dir = "{data}"', f'socket = "{self.sock}"', f'arena_prefix = "rff{os.getpid()}{name}"']
        if port is not None:
            head += ["[flight]", f'listen = "127.0.0.1:{port}"']
        self.cfg.write_text("\n".join(head) + "\n" + flight +
                            f'\n[datasets.{DATASET}]\nbase = "1m"\nrollups = []\nfsync = "never"\n')
        self.proc: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None

    def start(self) -> None:
        import ringfeed as rf

        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(self.bin_dir / "ringfeedd"), "--config", str(self.cfg)],
                                     stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "RUST_LOG": self.log_filter})
        logf.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringfeedd {self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                rf.connect(str(self.sock)).close()
                break
            except rf.RingfeedError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ringfeedd {self.name} did not open its socket in 30 s")
                time.sleep(0.02)
        while self.port is not None:  # the Flight port listens once the daemon is up; check
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ringfeedd {self.name}: nothing listens on {self.port}")
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL (this pid only) after 30 s."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            self.exit_code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"!! ringfeedd {self.name} (pid {p.pid}) ignored SIGTERM for 30 s: SIGKILL", file=sys.stderr)
            p.kill()
            self.exit_code = p.wait()


def auth_config(token: Optional[str], certs: Optional[Path] = None, rps: Optional[int] = None) -> str:
    out = []
    if certs is not None:
        out += ["[flight.tls]", f'cert = "{certs / "server.pem"}"', f'key = "{certs / "server.key"}"']
    if token is not None:
        out += ["[[auth.tokens]]", 'name = "bench"', f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
                'read = ["*"]']
    if rps is not None:
        out += ["[limits.per_principal]", f"requests_per_s = {rps}"]
    return "\n".join(out)


def make_certs(d: Path) -> None:
    """A CA and a localhost server certificate (as python/tests/test_flight.py::_certs)."""
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


# --------------------------------------------------------------------------- data

def bars_frame(first: int, rows: int, seed: int) -> Any:
    """`rows` 1m bars of SYMBOL from minute `first` of the year: a random walk, all 11 columns."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    close = np.maximum(1.0, np.round(20000.0 + np.cumsum(rng.normal(0.0, 8.0, rows)), 2))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0.0, 4.0, rows)), 2)
    low = np.round(np.maximum(0.01, np.minimum(open_, close) - np.abs(rng.normal(0.0, 4.0, rows))), 2)
    vol = np.round(np.abs(rng.normal(50.0, 20.0, rows)), 5)
    ts = int(YEAR_START.timestamp()) * 10**9 + (first + np.arange(rows, dtype=np.int64)) * MIN_NS
    return pl.DataFrame({
        "ts": pl.Series(ts).cast(pl.Datetime("ns", "UTC")), "symbol": [SYMBOL] * rows,
        "open": open_, "high": high, "low": low, "close": close, "volume": vol,
        "quote_volume": np.round(vol * open_, 4), "trades": rng.integers(10, 900, rows),
        "taker_buy_base": np.round(vol / 2, 5), "taker_buy_quote": np.round(vol * open_ / 2, 4),
    })


def seed(d: Daemon, rows: int) -> Dict[str, float]:
    import ringfeed as rf

    t = time.perf_counter()
    with rf.connect(str(d.sock)) as c:
        for k, first in enumerate(range(0, rows, SEED_CHUNK)):
            n = min(SEED_CHUNK, rows - first)
            if c.append(DATASET, bars_frame(first, n, seed=k)) != n:
                raise RuntimeError("seed append stored fewer rows than sent")
        t_app = time.perf_counter() - t
        t = time.perf_counter()
        c.write_down(DATASET, all=True)
    return {"append_s": t_app, "write_down_s": time.perf_counter() - t}


# --------------------------------------------------------------------------- phases

def start_duckport(glob: str, certs: Optional[Path]) -> tuple:
    args: Dict[str, Any] = {"glob": glob}
    if certs is not None:
        args.update(cert=(certs / "server.pem").read_text(), key=(certs / "server.key").read_text())
    w = FlightWorker("duckport", args)
    line = w.expect(timeout=60)
    if not line.startswith("ready "):
        raise RuntimeError(f"duckport server said {line!r}")
    return w, int(line.split()[1])


def phase_throughput(target: Dict[str, Any], ticket: str, n: int, seconds: float) -> Dict[str, Any]:
    ws = [FlightWorker("reader", {"target": target, "ticket": ticket, "seconds": seconds}) for _ in range(n)]
    try:
        for w in ws:
            if w.expect(timeout=300) != "ready":
                raise RuntimeError("reader did not get ready")
        cpu0 = cpu_times()
        for w in ws:
            w.send("go")
        res = [json.loads(w.expect(timeout=seconds + 300)) for w in ws]
        cpu1 = cpu_times()
    finally:
        for w in ws:
            w.finish()
    wall = (max(r["t1"] for r in res) - min(r["t0"] for r in res)) / 1e9
    total = sum(r["bytes"] for r in res)
    return {"n": n, "wall_s": wall, "bytes": total, "gets": sum(r["gets"] for r in res),
            "gb_per_s": total / wall / 1e9, "lat_ms": [x for r in res for x in r["lat_ms"]],
            "cpu_busy_pct": busy_pct(cpu0, cpu1)}


def phase_live(d: "Daemon", target: Dict[str, Any], after_ns: int, n: int) -> Dict[str, List[float]]:
    """`n` one-row appends, 10 ms apart, after the seeded data; per subscriber mode, the
    µs from just before each append call to the subscriber holding the row."""
    import polars as pl

    import ringfeed as rf

    out: Dict[str, List[float]] = {}
    base = after_ns
    for mode in ("remote", "local"):
        w = FlightWorker("live", {"mode": mode, "target": target, "socket": str(d.sock), "dataset": DATASET,
                                  "symbol": SYMBOL, "start": base, "n": n})
        try:
            if w.expect(timeout=120) != "ready":
                raise RuntimeError(f"live {mode} subscriber did not start")
            sent: Dict[int, int] = {}
            with rf.connect(str(d.sock)) as c:
                for k in range(1, n + 1):
                    frame = bars_frame(0, 1, seed=k).with_columns(
                        pl.lit(base + k * MIN_NS).cast(pl.Datetime("ns", "UTC")).alias("ts"),
                        pl.lit(float(k)).alias("open"), pl.lit(float(k)).alias("high"),
                        pl.lit(float(k)).alias("low"), pl.lit(float(k)).alias("close"))
                    time.sleep(0.01)
                    sent[k] = time.monotonic_ns()
                    c.append(DATASET, frame)
            got = json.loads(w.expect(timeout=120))
        finally:
            w.finish()
        out[mode] = [(got[str(k)] - t) / 1e3 for k, t in sent.items() if str(k) in got]
        base += (n + 10) * MIN_NS
    return out


def query_builds(log: Path, rows: int) -> Dict[str, List[float]]:
    """The daemon's own split of each result it built of `rows` rows (its debug line
    "query built": store_ms = the store's read, materialise_ms = writing the arena)."""
    out: Dict[str, List[float]] = {"store_ms": [], "materialise_ms": []}
    for line in log.read_text(errors="replace").splitlines():
        if "query built" in line and re.search(rf"\brows={rows}\b", line):
            for k in out:
                m = re.search(rf"\b{k}=([0-9.]+)", line)
                if m:
                    out[k].append(float(m.group(1)))
    return out


def leftover_arenas() -> List[str]:
    shm = os.environ.get("RINGFEED_SHM_DIR", "/dev/shm")
    return sorted(n for n in os.listdir(shm) if n.startswith(f"ringfeed.rff{os.getpid()}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: one month of bars, fewer repetitions")
    ap.add_argument("--bin-dir", type=Path, default=None,
                    help="directory holding ringfeedd (default $RINGFEED_BIN_DIR or <repo>/target/release)")
    ap.add_argument("--reps", type=int, default=None, help="warm repetitions per way (default 9; quick 3)")
    ap.add_argument("--readers", type=int, default=8, help="concurrent remote readers in phase 3 (default 8)")
    ap.add_argument("--seconds", type=float, default=None, help="phase 3 duration per case (default 5; quick 2)")
    ap.add_argument("--small", type=int, default=None,
                    help="phase 4 requests per kind and daemon (default 2000; quick 200), in 10 rounds")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-flight.json", help="raw numbers (JSON)")
    ap.add_argument("--md", type=Path, default=ROOT / "target" / "bench-flight.md", help="markdown summary")
    ap.add_argument("--work-dir", type=Path, default=None, help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    bin_dir = (args.bin_dir or Path(os.environ.get("RINGFEED_BIN_DIR") or ROOT / "target" / "release")).resolve()
    if not (bin_dir / "ringfeedd").exists():
        print(f"no {bin_dir / 'ringfeedd'}: `cargo build --release -p ringfeed-daemon` or pass --bin-dir",
              file=sys.stderr)
        return 2
    if shutil.which("openssl") is None:
        print("no `openssl` command (for the TLS certificates)", file=sys.stderr)
        return 2
    quick = args.quick
    reps = args.reps or (3 if quick else 9)
    seconds = args.seconds or (2.0 if quick else 5.0)
    small_n = args.small or (200 if quick else 2000)
    rows = (31 if quick else 365) * 1440
    start_ns = int(YEAR_START.timestamp()) * 10**9
    end_ns = start_ns + rows * MIN_NS
    token = secrets.token_hex(16)

    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"
    R: Dict[str, Any] = {"started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
                         "mode": "quick" if quick else "full", "rows": rows, "reps": reps, "seconds": seconds,
                         "git": git, "load_before": loadavg(), "bin_dir": str(bin_dir)}
    cpu0 = cpu_times()
    print(f"== load average before: {R['load_before']}; binaries {bin_dir}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rfbench-flight-", dir=args.work_dir))
    daemons: List[Daemon] = []
    servers: List[FlightWorker] = []
    try:
        certs = work / "certs"
        make_certs(certs)
        ca = (certs / "ca.pem").read_text()
        data = work / "data-a"

        # 0. data, through a daemon without Flight
        d0 = Daemon(bin_dir, work, "seed", data)
        daemons.append(d0)
        d0.start()
        R["seed"] = seed(d0, rows)
        d0.stop()
        glob = str(data / f"dataset={DATASET}" / "tf=1m" / "**" / "*.parquet")
        files = sorted(globmod.glob(glob, recursive=True))
        R["files"], R["parquet_bytes"] = len(files), sum(Path(f).stat().st_size for f in files)
        print(f"== seeded {rows:,} rows: appends {R['seed']['append_s']:.1f} s, write_down "
              f"{R['seed']['write_down_s']:.1f} s -> {len(files)} month files, "
              f"{R['parquet_bytes'] / 2**20:.1f} MiB", flush=True)
        if len(files) != (1 if quick else 12):
            raise RuntimeError(f"expected one cold file per month, found {files}")
        for copy in ("data-b", "data-c"):
            shutil.copytree(data, work / copy)

        # 1 and 3: a plaintext and a TLS daemon, two DuckPort servers
        p_plain, p_tls = free_port(), free_port()
        dp = Daemon(bin_dir, work, "plain", data, auth_config(token), p_plain,
                    log_filter="warn,ringfeed_daemon::service::cache=debug")
        dt_ = Daemon(bin_dir, work, "tls", work / "data-b", auth_config(token, certs), p_tls)
        daemons += [dp, dt_]
        dp.start()
        dt_.start()
        duck, duck_port = start_duckport(glob, None)
        servers.append(duck)
        duck_tls, duck_tls_port = start_duckport(glob, certs)
        servers.append(duck_tls)
        targets = {
            "plain": {"location": f"grpc://127.0.0.1:{p_plain}", "token": token},
            "tls": {"location": f"grpc+tls://localhost:{p_tls}", "token": token, "ca": ca},
            "duckport": {"location": f"grpc://127.0.0.1:{duck_port}"},
            "duckport_tls": {"location": f"grpc+tls://localhost:{duck_tls_port}", "ca": ca},
        }
        import ringfeed as rf
        for d in (dp, dt_):  # each daemon answers one small query first (its lazy start-up)
            with rf.connect(str(d.sock)) as c:
                c.bars(DATASET, SYMBOL, "1m", limit=10)
        print(f"== phase 1: symbol-year -> polars, first call and {reps} warm repetitions per way", flush=True)
        qargs = {"socket": str(dp.sock), "plain": targets["plain"], "tls": targets["tls"],
                 "duckport": targets["duckport"], "duckport_tls": targets["duckport_tls"], "dataset": DATASET,
                 "symbol": SYMBOL, "start": start_ns, "end": end_ns, "files": files, "reps": reps}
        firsts = {}
        for way in FIRST_WAYS:  # each in a process of its own
            w = FlightWorker("query", {**qargs, "first": way})
            try:
                firsts[way] = json.loads(w.expect(timeout=600))
            finally:
                w.finish()
        w = FlightWorker("query", qargs)
        try:
            R["query"] = json.loads(w.expect(timeout=1800))
        finally:
            w.finish()
        R["query"]["first_ms"] = {k: v["ms"] for k, v in firsts.items()}
        R["query"]["first_daemon_ms"] = {k: v["daemon_ms"] for k, v in firsts.items() if v["daemon_ms"] is not None}
        R["query"]["checks"] = {k: v["check"] for k, v in firsts.items()}
        for k, v in R["query"]["times_ms"].items():
            print(f"   {k:16s} first {R['query']['first_ms'].get(k, float('nan')):8.1f} ms, "
                  f"warm median {med(v):8.1f} ms", flush=True)

        print("== phase 2: live publish -> subscriber (remote over Flight, and local), p50/p99", flush=True)
        R["live"] = phase_live(dp, targets["plain"], end_ns, 100 if quick else 500)
        for mode, v in R["live"].items():
            print(f"   {mode:7s} p50 {pct(v, 50):8.0f} us, p99 {pct(v, 99):8.0f} us ({len(v)} rows)", flush=True)

        print(f"== phase 3: 1 and {args.readers} concurrent remote readers, {seconds:.0f} s per case", flush=True)
        ticket = json.dumps({"dataset": DATASET, "symbols": [SYMBOL], "timeframe": "1m", "start": start_ns,
                             "end": end_ns})
        R["throughput"] = []
        for n in sorted({1, args.readers}):
            for name in ("plain", "duckport", "tls", "duckport_tls"):
                tk = SYMBOL if name.startswith("duckport") else ticket
                r = phase_throughput(targets[name], tk, n, seconds)
                r["target"] = name
                R["throughput"].append(r)
                print(f"   {name:13s} N={n}: {r['gb_per_s']:.2f} GB/s, {r['gets']} DoGets, DoGet p50 "
                      f"{med(r['lat_ms']):.1f} ms, CPU busy {r['cpu_busy_pct']:.0f} %", flush=True)
        for s in servers:
            s.finish()
        servers.clear()
        dp.stop()
        dt_.stop()
        R["builds"] = query_builds(dp.log, rows)

        # 4: three daemons at once, on copies of the data: no tokens, a token, a token + limits
        print(f"== phase 4: auth and rate limits, {small_n} pings and 10-row DoGets per daemon", flush=True)
        ports = [free_port() for _ in range(3)]
        d4 = [Daemon(bin_dir, work, "noauth", data, "", ports[0]),
              Daemon(bin_dir, work, "token", work / "data-b", auth_config(token), ports[1]),
              Daemon(bin_dir, work, "limits", work / "data-c", auth_config(token, rps=1_000_000), ports[2])]
        daemons += d4
        for d in d4:
            d.start()
        t4 = [{"name": "no tokens", "location": f"grpc://127.0.0.1:{ports[0]}"},
              {"name": "token", "location": f"grpc://127.0.0.1:{ports[1]}", "token": token},
              {"name": "token + limits", "location": f"grpc://127.0.0.1:{ports[2]}", "token": token}]
        w = FlightWorker("small", {"targets": t4, "dataset": DATASET, "symbol": SYMBOL, "n": small_n // 10,
                                   "rounds": 10})
        try:
            R["small"] = json.loads(w.expect(timeout=1800))
        finally:
            w.finish()
        for name, s in R["small"]["samples"].items():
            print(f"   {name:15s} ping p50 {med(s['ping_us']):6.0f} us, 10-row DoGet p50 "
                  f"{med(s['bars10_us']):6.0f} us", flush=True)
    finally:
        for s in servers:
            s.finish()
        for d in daemons:
            d.stop()
        R["daemon_exit_codes"] = {d.name: d.exit_code for d in daemons}
        R["leftover_arenas"] = leftover_arenas()
        if any(rc not in (0, None) for rc in R["daemon_exit_codes"].values()):
            print(f"!! daemon exit codes {R['daemon_exit_codes']}; logs kept in {work}", file=sys.stderr)
            args.keep = True
        if args.keep:
            print(f"== kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    R["load_after"] = loadavg()
    cpu1 = cpu_times()
    R["cpu_busy_pct"], R["steal_pct"] = busy_pct(cpu0, cpu1), steal_pct(cpu0, cpu1)
    md = summarise(R)
    print()
    print(md)
    for path, text in ((args.md, md + "\n"), (args.out, json.dumps(R))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"\n(summary written to {args.md}, raw numbers to {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
