#!/usr/bin/env python3
"""Daemon benchmark (issue 6): ringfeedd queries, concurrent readers and live appends,
from Python, beside what users otherwise do, in the same run.

Usage:
    CARGO_TARGET_DIR=/work/target-bench cargo build --release -p ringfeed-cli -p ringfeed-daemon
    .venv/bin/python scripts/bench_daemon.py --bin-dir /work/target-bench/release
    .venv/bin/python scripts/bench_daemon.py --quick        # smoke run, < 1 min
    scripts/bench_daemon.sh [--quick] [...]                 # the same through the wrapper

The binaries' directory: --bin-dir, else $RINGFEED_BIN_DIR, else <repo>/target/release.
The Python environment needs ringfeed (the wheel), polars, pyarrow and duckdb
(scripts/py_env.sh builds it into .venv).

What it does, in a fresh temporary directory (data dir and socket; arenas get a unique
prefix `rfb<pid>` in $RINGFEED_SHM_DIR, default /dev/shm):
  0. generates one symbol-year of 1m bars (525,600 rows; --quick: January, 44,640 rows),
     a deterministic random walk written as Binance kline CSV; `ringfeed ingest` (CLI
     defaults: fsync always, rollups 5m,15m,1h,1d); `ringfeed write-down --all`, so that every
     bar is in the cold tier (Hive-layout Parquet, one file per month after compaction).
  1. query -> polars DataFrame, in one client process, methods in turns each repetition:
       daemon cold   `c.bars(...)` with a fresh cache key each time (`end` moved by k ns past
                     the year's end: the same 525,600 rows, a key the daemon has not seen), so
                     the daemon reads the Parquet files and materialises a new arena;
       daemon warm   `c.bars(...)` of a key already cached (the same arena mapped again);
       baselines     `pl.read_parquet(files)`, `pl.scan_parquet(glob, hive).filter(...)
                     .collect()` and DuckDB `read_parquet(glob, hive) WHERE ...` -> `.pl()`,
                     all on the store's own cold-tier files.
     The Parquet files are in the OS page cache for every method (they were just written and
     are read every repetition): "cold" means "not in the daemon's cache", not "from disk".
  2. 1 and 8 concurrent reader processes: each fetches the symbol-year (daemon: one arena
     for all; polars: its own `pl.read_parquet` copy), then holds the DataFrame while this
     script reads Pss from /proc/PID/smaps_rollup of every reader (and the daemon's RSS).
  3. live appends: a subscriber process on the dataset's 1m topic and a publisher process
     calling `c.append(dataset, one-row polars DataFrame)` in a loop (1-2 ms apart). The
     publisher stamps CLOCK_MONOTONIC into `volume`; the subscriber reads the clock once it
     holds the polars DataFrame. Several datasets show what the fsync policy and the
     rollups cost.
The daemon is stopped with SIGTERM after each phase (and on any error), and the run ends by
checking with `ringfeed inspect` that none of its arenas remain.

Output: tables on stdout, a markdown summary (default target/bench-daemon.md) and the raw
numbers as JSON (default target/bench-daemon.json). Timings are medians/percentiles; this
script asserts nothing about time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob as globmod
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_daemon_report import summarise
from bench_daemon_util import LIVE_DATASETS, MIN_NS, med

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "BTCUSDT"
DATASET = "bench"
YEAR_START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
WORKER_SCRIPT = Path(__file__).resolve().with_name("bench_daemon_workers.py")


def ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 10**9


# --------------------------------------------------------------------------- helpers

def loadavg() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_times() -> List[int]:
    """Aggregate /proc/stat cpu line: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def steal_pct(a: List[int], b: List[int]) -> float:
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d)
    return 100.0 * d[7] / tot if tot else 0.0


def busy_pct(a: List[int], b: List[int]) -> float:
    d = [y - x for x, y in zip(a, b)]
    tot = sum(d)
    return 100.0 * (tot - d[3] - d[4]) / tot if tot else 0.0


def kb_field(path: str, key: str) -> Optional[int]:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kb(pid: int) -> Optional[int]:
    return kb_field(f"/proc/{pid}/smaps_rollup", "Pss")


def mapping_pss_kb(pid: int, needle: str) -> Dict[str, int]:
    """Pss (kB) of each mapped file of `pid` whose path contains `needle`, by path."""
    out: Dict[str, int] = {}
    path = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    parts = line.split()
                    path = parts[5] if len(parts) >= 6 and needle in parts[5] else None
                elif path is not None and line.startswith("Pss:"):
                    out[path] = out.get(path, 0) + int(line.split()[1])
    except OSError:
        pass
    return out


def status_kb(pid: int) -> Dict[str, Optional[int]]:
    p = f"/proc/{pid}/status"
    return {k: kb_field(p, k) for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}


# --------------------------------------------------------------------------- data

def gen_kline_csv(path: Path, rows: int) -> None:
    """Binance kline CSV (12 columns, ms timestamps): a random walk at 0.01 ticks, seed 7."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(7)
    close = np.maximum(1.0, np.round(20000.0 + np.cumsum(rng.normal(0.0, 8.0, rows)), 2))
    open_ = np.empty(rows)
    open_[0] = 20000.0
    open_[1:] = close[:-1]
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0.0, 4.0, rows)), 2)
    low = np.round(np.maximum(0.01, np.minimum(open_, close) - np.abs(rng.normal(0.0, 4.0, rows))), 2)
    vol = np.round(np.abs(rng.normal(50.0, 20.0, rows)), 5)
    t = ns(YEAR_START) // 10**6 + np.arange(rows, dtype=np.int64) * 60_000
    pl.DataFrame({
        "open_time": t, "open": open_, "high": high, "low": low, "close": close, "volume": vol,
        "close_time": t + 59_999, "quote_volume": np.round(vol * open_, 4),
        "trades": rng.integers(10, 900, rows), "taker_buy_base": np.round(vol / 2, 5),
        "taker_buy_quote": np.round(vol * open_ / 2, 4), "ignore": np.zeros(rows, dtype=np.int64),
    }).write_csv(path, include_header=False)


# --------------------------------------------------------------------------- daemon

class Daemon:
    """`ringfeed serve --config`, stopped with SIGTERM."""

    def __init__(self, bin_dir: Path, config: Path, socket_path: Path, log: Path) -> None:
        self.bin_dir, self.config, self.socket, self.log = bin_dir, config, socket_path, log
        self.proc: Optional[subprocess.Popen] = None
        self.exit_codes: List[int] = []

    def start(self) -> None:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(self.bin_dir / "ringfeed"), "serve", "--config", str(self.config)],
                                     stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringfeed serve exited with {self.proc.returncode}; log:\n{self.log.read_text()[-3000:]}")
            if self.socket.exists():
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(str(self.socket))
                    s.close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("ringfeed serve did not open its socket within 30 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> Optional[int]:
        """SIGTERM and wait; SIGKILL (this pid only) after 30 s. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self.proc = None
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"!! daemon pid {self.proc.pid} ignored SIGTERM for 30 s: SIGKILL", file=sys.stderr)
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.exit_codes.append(rc)
        return rc


class Worker:
    """A worker process, `bench_daemon_workers.py <role> <json>` (roles `query`, `reader`, `sub`,
    `pub`), driven by lines on stdin/stdout; the last stdout line of a finished step is JSON."""

    def __init__(self, role: str, args: Dict[str, Any]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER_SCRIPT), role, json.dumps(args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buf = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    def expect(self, timeout: float) -> str:
        """The next stdout line (a worker's JSON or a keyword)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker pid {self.pid} said nothing for {timeout} s")
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                if not sel.select(left):
                    continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"worker pid {self.pid} exited early (code {self.proc.wait()})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().strip()

    def finish(self, timeout: float = 30) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- phases

def phase_query(sock: Path, info: Dict[str, Any], reps: int) -> Dict[str, Any]:
    w = Worker("query", {**info, "socket": str(sock), "reps": reps})
    try:
        return json.loads(w.expect(timeout=900))
    finally:
        w.finish()


def _memory(daemon: Daemon, ws: List[Worker], prefix: str) -> Dict[str, Any]:
    needle = f"ringfeed.{prefix}.q."
    pss = [pss_kb(w.pid) or 0 for w in ws]
    maps = [mapping_pss_kb(w.pid, needle) for w in ws]
    paths = set().union(*maps)
    d_maps = mapping_pss_kb(daemon.pid, needle)
    return {"pss_kb": pss, "arena_pss_kb": [sum(m.values()) for m in maps],
            "daemon_arena_pss_kb": sum(v for k, v in d_maps.items() if k in paths),
            "daemon_pss_kb": pss_kb(daemon.pid), "daemon_status_kb": status_kb(daemon.pid),
            "arenas_mapped": sorted(paths)}


def phase_readers(daemon: Daemon, sock: Path, info: Dict[str, Any], prefix: str, n: int, mode: str,
                  end: int) -> Dict[str, Any]:
    """One round of n concurrent reader processes; PSS read while they hold their frames,
    once right after the fetch and once after each has read every column."""
    args = {**info, "socket": str(sock), "mode": mode, "end": end}
    ws = [Worker("reader", args) for _ in range(n)]
    try:
        for w in ws:
            if w.expect(timeout=120) != "ready":
                raise RuntimeError("reader did not get ready")
        time.sleep(0.2)
        pss0 = [pss_kb(w.pid) or 0 for w in ws]
        for w in ws:
            w.send("go")
        res = [json.loads(w.expect(timeout=300)) for w in ws]
        held = _memory(daemon, ws, prefix)
        for w in ws:
            w.send("touch")
        touched = [json.loads(w.expect(timeout=300)) for w in ws]
        used = _memory(daemon, ws, prefix)
        shm_dir = Path(os.environ.get("RINGFEED_SHM_DIR", "/dev/shm"))
        cached = list(shm_dir.glob(f"ringfeed.{prefix}.q.*"))
        cached_kb = sum(f.stat().st_blocks * 512 for f in cached) // 1024
        arena_files = {}
        for path in used["arenas_mapped"]:
            try:
                st = os.stat(path)
                arena_files[path] = {"size": st.st_size, "resident": st.st_blocks * 512}
            except OSError:
                pass
        for w in ws:
            w.send("exit")
    finally:
        for w in ws:
            w.finish()
    t0 = min(r["t0"] for r in res)
    return {
        "n": n, "mode": mode,
        "per_reader_ms": [(r["t1"] - r["t0"]) / 1e6 for r in res],
        "makespan_ms": (max(r["t1"] for r in res) - t0) / 1e6,
        "touch_ms": [t["touch_ms"] for t in touched],
        "rows": [r["rows"] for r in res], "df_bytes": res[0]["bytes"],
        "pss_before_kb": pss0, "held": held, "used": used, "arena_files": arena_files,
        "cached_arenas": len(cached), "cached_arena_kb": cached_kb,
    }


def phase_append(sock: Path, dataset: str, first_ts: int, count: int, warmup: int) -> Dict[str, Any]:
    sub = Worker("sub", {"socket": str(sock), "dataset": dataset, "count": count + warmup, "idle": 5.0})
    pub = None
    try:
        if sub.expect(timeout=120) != "ready":
            raise RuntimeError("subscriber did not get ready")
        pub = Worker("pub", {"socket": str(sock), "dataset": dataset, "symbol": SYMBOL, "first_ts": first_ts,
                             "count": count, "warmup": warmup, "gap_ms": [1.0, 2.0]})
        if pub.expect(timeout=120) != "ready":
            raise RuntimeError("publisher did not get ready")
        pub.send("go")
        p = json.loads(pub.expect(timeout=600))
        s = json.loads(sub.expect(timeout=120))
    finally:
        if pub:
            pub.finish()
        sub.finish()
    got = {r[0]: r for r in s["recs"]}
    e2e, call2df, pub2df, commit2df, rtt, build = [], [], [], [], [], []
    k_idx = []
    for k in range(warmup, warmup + count):
        ts = first_ts + k * MIN_NS
        t0, tc, t1 = p["t0"][k], p["call"][k], p["end"][k]
        rtt.append((t1 - tc) / 1e3)
        build.append((tc - t0) / 1e3)
        r = got.get(ts)
        if r is None or r[1] != t0:
            continue
        _, _, t_read, t_df, pub_wall, wall, _seq = r
        e2e.append((t_df - t0) / 1e3)
        call2df.append((t_df - tc) / 1e3)
        commit2df.append((wall - pub_wall) / 1e3)
        pub2df.append((t_df - t_read) / 1e3)
        k_idx.append(k - warmup)
    return {"dataset": dataset, "count": count, "received": len(e2e), "lagged": s["lagged"],
            "e2e_us": e2e, "call_to_df_us": call2df, "commit_to_df_us": commit2df, "to_polars_us": pub2df,
            "rtt_us": rtt, "build_us": build, "encode_us": p["encode_us"], "to_polars_hot_us": s["to_polars_hot_us"]}


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (< 1 min): one month of bars, fewer repetitions and appends")
    ap.add_argument("--bin-dir", type=Path, default=None,
                    help="directory holding `ringfeed` (default $RINGFEED_BIN_DIR or <repo>/target/release)")
    ap.add_argument("--reps", type=int, default=None, help="query repetitions per method (default 9; quick 3)")
    ap.add_argument("--readers", type=int, default=8, help="concurrent readers in phase 2 (default 8)")
    ap.add_argument("--conc-reps", type=int, default=None, help="rounds per phase-2 case (default 3; quick 1)")
    ap.add_argument("--appends", type=int, default=None, help="measured appends per dataset (default 500; quick 100)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="parent of the temporary directory (default $TMPDIR; it is on the disk here, so "
                         "fsync costs what it costs for a real store)")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-daemon.md", help="markdown summary")
    ap.add_argument("--json", type=Path, default=ROOT / "target" / "bench-daemon.json", help="raw numbers")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    bin_dir = (args.bin_dir or Path(os.environ.get("RINGFEED_BIN_DIR") or ROOT / "target" / "release")).resolve()
    ringfeed_bin = bin_dir / "ringfeed"
    if not ringfeed_bin.exists():
        print(f"no {ringfeed_bin}: build with `cargo build --release -p ringfeed-cli -p ringfeed-daemon` "
              f"or pass --bin-dir", file=sys.stderr)
        return 2
    quick = args.quick
    reps = args.reps or (3 if quick else 9)
    conc_reps = args.conc_reps or (1 if quick else 3)
    n_app = args.appends or (100 if quick else 500)
    warmup = 20
    days = 31 if quick else 365
    rows = days * 1440
    start_ns = ns(YEAR_START)
    end_ns = start_ns + rows * MIN_NS

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_before = loadavg()
    cpu0 = cpu_times()
    print(f"== load average before: {load_before} (2 vCPUs)", flush=True)
    print(f"== binaries: {bin_dir}; python: {sys.executable}", flush=True)
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"

    work = Path(tempfile.mkdtemp(prefix="rfbench-daemon-", dir=args.work_dir))
    prefix = f"rfb{os.getpid()}"
    data, sock = work / "data", work / "rf.sock"
    cfg = work / "ringfeed.toml"
    lines = [f'data_dir = "{data}"', f'socket = "{sock}"', f'arena_prefix = "{prefix}"', ""]
    for name, fsync, rollups in LIVE_DATASETS:
        lines += [f"[datasets.{name}]", 'base = "1m"', f'fsync = "{fsync}"']
        if rollups is not None:
            lines.append(f"rollups = {json.dumps(rollups)}")
        lines.append("")
    cfg.write_text("\n".join(lines))
    daemon = Daemon(bin_dir, cfg, sock, work / "daemon.log")
    R: Dict[str, Any] = {"started": started, "mode": "quick" if quick else "full", "rows": rows, "reps": reps,
                         "conc_reps": conc_reps, "append_count": n_app, "git": git, "load_before": load_before,
                         "bin_dir": str(bin_dir)}
    try:
        # 0. data
        csv = work / f"{SYMBOL}-1m.csv"
        t = time.perf_counter()
        gen_kline_csv(csv, rows)
        print(f"== generated {rows:,} bars ({csv.stat().st_size / 2**20:.0f} MiB CSV) in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        subprocess.run([str(ringfeed_bin), "ingest", "--data-dir", str(data), "--dataset", DATASET,
                        "--symbol", SYMBOL, "--format", "binance-kline", str(csv)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        R["ingest_s"] = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([str(ringfeed_bin), "write-down", "--data-dir", str(data), "--all"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        R["write_down_s"] = time.perf_counter() - t
        csv.unlink()
        glob = str(data / f"dataset={DATASET}" / "tf=1m" / "*" / "*.parquet")
        files = sorted(globmod.glob(glob))
        hot = sorted((data / "_hot" / DATASET).glob("*.wal")) if (data / "_hot").exists() else []
        print(f"== ingest {R['ingest_s']:.1f} s, write-down {R['write_down_s']:.1f} s: {len(files)} cold 1m "
              f"files ({sum(Path(f).stat().st_size for f in files) / 2**20:.1f} MiB), {len(hot)} hot WALs left",
              flush=True)
        months = 1 if quick else 12
        if len(files) != months:
            raise RuntimeError(f"expected {months} cold month files after write-down, found {len(files)}")
        R["files"] = len(files)
        info = {"dataset": DATASET, "symbol": SYMBOL, "start": start_ns, "end": end_ns, "files": files, "glob": glob}

        # Diagnostic: the store's read alone, through the CLI.
        R["cli_query_ms"] = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([str(ringfeed_bin), "query", "--data-dir", str(data), "--dataset", DATASET, "--symbol",
                            SYMBOL, "--start", str(start_ns), "--end", str(end_ns), "--format", "arrow"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            R["cli_query_ms"].append((time.perf_counter() - t) * 1e3)

        # 1. query latency
        print(f"== phase 1: query -> DataFrame, {reps} repetitions per method", flush=True)
        daemon.start()
        R["query"] = phase_query(sock, info, reps)
        daemon.stop()

        # 2. concurrent readers
        ns_list = sorted({1, args.readers})
        R["conc_ns"] = ns_list
        print(f"== phase 2: {ns_list} concurrent readers, {conc_reps} rounds each", flush=True)
        daemon.start()
        R["readers"] = []
        fresh = 1000
        # Build the warm key once (untimed), in a throwaway client.
        warm = Worker("reader", {**info, "socket": str(sock), "mode": "daemon", "end": end_ns})
        warm.expect(120)
        warm.send("go")
        warm.expect(300)
        warm.send("exit")
        warm.finish()
        for rnd in range(conc_reps):
            for n in ns_list:
                for mode in ("daemon_warm", "daemon_cold", "polars"):
                    end = end_ns
                    if mode == "daemon_cold":
                        fresh += 1
                        end = end_ns + fresh
                    r = phase_readers(daemon, sock, info, prefix, n, mode, end)
                    R["readers"].append(r)
                    print(f"   round {rnd + 1} {mode:12s} N={n}: median {med(r['per_reader_ms']):8.1f} ms per "
                          f"reader, PSS added {(sum(r['used']['pss_kb']) - sum(r['pss_before_kb'])) / 1024:7.1f} MiB",
                          flush=True)
        daemon.stop()

        # 3. appends
        print(f"== phase 3: append -> subscriber, {n_app} appends per dataset", flush=True)
        daemon.start()
        R["appends"] = []
        first_ts = end_ns  # right after the year (hot tier)
        for ds in [DATASET] + [d[0] for d in LIVE_DATASETS]:
            a = phase_append(sock, ds, first_ts, n_app, warmup)
            R["appends"].append(a)
            print(f"   {ds:22s} call->DF p50 {med(a['call_to_df_us']):8.0f} us, append RTT p50 "
                  f"{med(a['rtt_us']):8.0f} us, received {a['received']}/{n_app}", flush=True)
        daemon.stop()
    finally:
        daemon.stop()
        R["daemon_exit_codes"] = daemon.exit_codes
        if any(rc != 0 for rc in daemon.exit_codes):
            print(f"!! daemon exit codes {daemon.exit_codes}; log {work / 'daemon.log'}", file=sys.stderr)
            args.keep = True
        left = sorted(n for n in os.listdir(os.environ.get("RINGFEED_SHM_DIR", "/dev/shm"))
                      if n.startswith(f"ringfeed.{prefix}."))
        insp = subprocess.run([str(ringfeed_bin), "inspect"], capture_output=True, text=True).stdout
        left_inspect = [ln for ln in insp.splitlines() if prefix in ln]
        R["leftover_arenas"] = left + left_inspect
        if left:
            print(f"!! arenas left behind: {left}; removing them", file=sys.stderr)
            for n in left:
                subprocess.run([str(ringfeed_bin), "rm", n[len("ringfeed."):]], capture_output=True)
        if args.keep:
            print(f"== kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    R["load_after"] = loadavg()
    cpu1 = cpu_times()
    R["steal_pct"] = steal_pct(cpu0, cpu1)
    R["cpu_busy_pct"] = busy_pct(cpu0, cpu1)
    print(f"== load average after: {R['load_after']}", flush=True)
    md = summarise(R)
    print()
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md + "\n")
    args.json.write_text(json.dumps(R))
    print(f"\n(summary written to {args.out}, raw numbers to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
