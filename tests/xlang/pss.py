"""Eight reader processes in three languages ask ringfeedd for the same
symbol-year of 1m bars: they must all map one arena, and together hold about
one copy of it in RAM (proportional set size from /proc/PID/smaps_rollup),
where eight private copies would cost eight times as much.

Usage: python tests/xlang/pss.py [--days 365]
Needs target/debug/{ringfeedd,ringfeed,rf-xtest} (cargo build), the ringfeed
Python package, and build/cpp/rf-xtest-cpp (scripts/test_cpp.sh) for the C++
readers; a missing C++ driver is reported and replaced by Rust readers.
Prints a table and a last line `pss: P passed, F failed, S skipped`.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/xlang"))
from matrix import drivers  # noqa: E402

T0 = 1_609_459_200_000_000_000  # 2021-01-01
MIN = 60_000_000_000


def newest(name: str) -> "Path | None":
    found = [p for p in (ROOT / "target" / prof / name for prof in ("release", "debug")) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def smaps(pid: int) -> "dict[str, int]":
    """Fields of /proc/PID/smaps_rollup, in bytes."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def year_of_bars(days: int) -> pa.Table:
    n = days * 1440
    rng = np.random.default_rng(7)
    close = 30_000 + np.cumsum(rng.normal(0, 5, n))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 3, n))
    return pa.table({
        "ts": pa.array(T0 + np.arange(n, dtype=np.int64) * MIN, pa.timestamp("ns", tz="UTC")),
        "symbol": pa.array(["BTCUSDT"] * n, pa.string()),
        "open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread,
        "close": close, "volume": np.abs(rng.normal(10, 3, n)),
    })


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    a = p.parse_args()
    d = drivers()
    daemon, cli = newest("ringfeedd"), newest("ringfeed")
    if daemon is None or cli is None or not isinstance(d["rust"], list):
        print("pss: skipped: ringfeedd, ringfeed or rf-xtest not built (cargo build)")
        print("pss: 0 passed, 0 failed, 1 skipped")
        return 0
    langs = ["rust", "python", "c++", "rust", "python", "c++", "rust", "python"]
    notes = []
    if not isinstance(d["c++"], list):
        notes.append(f"C++ readers replaced by Rust: {d['c++']}")
        langs = [x if x != "c++" else "rust" for x in langs]
    if not isinstance(d["python"], list):
        print(f"pss: skipped: {d['python']}")
        print("pss: 0 passed, 0 failed, 1 skipped")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="rf-pss-"))
    shm = Path(os.environ.get("RINGFEED_SHM_DIR", "/dev/shm"))
    env = {**os.environ, "RUST_LOG": "warn"}
    parquet = tmp / "year.parquet"
    t = time.monotonic()
    pq.write_table(year_of_bars(a.days), parquet)
    subprocess.run([str(cli), "ingest", "--data-dir", str(tmp / "data"), "--dataset", "pss",
                    "--rollups", "none", "--fsync", "never", str(parquet)], check=True, env=env,
                   stderr=subprocess.DEVNULL)
    print(f"ingested {a.days * 1440} 1m bars in {time.monotonic() - t:.1f}s")
    sock = tmp / "rf.sock"
    prefix = f"pss{os.getpid()}"
    proc = subprocess.Popen([str(daemon), "--data-dir", str(tmp / "data"), "--socket", str(sock),
                             "--arena-prefix", prefix], env=env)
    readers: "list[tuple[str, subprocess.Popen[str]]]" = []
    failed: "list[str]" = []
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "ringfeedd did not come up"
            time.sleep(0.02)
        args = ["bars", "--socket", str(sock), "--dataset", "pss", "--symbol", "BTCUSDT",
                "--timeframe", "1m", "--wait-go"]
        for lang in langs:
            cmd = d[lang]
            assert isinstance(cmd, list)
            readers.append((lang, subprocess.Popen(cmd + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   text=True, env=env)))
        pids = []
        for lang, r in readers:
            assert r.stdout is not None
            line = r.stdout.readline()
            ready = json.loads(line) if line.strip() else {}
            if not ready.get("ready"):
                raise RuntimeError(f"{lang} reader did not get ready: {line!r}")
            pids.append(ready["pid"])
        before = [smaps(pid) for pid in pids]
        t = time.monotonic()
        for _, r in readers:
            assert r.stdin is not None
            r.stdin.write("go\n")
            r.stdin.flush()
        results = []
        for lang, r in readers:
            assert r.stdout is not None
            line = r.stdout.readline()
            if not line.strip():
                raise RuntimeError(f"{lang} reader failed (exit {r.wait(timeout=30)})")
            results.append(json.loads(line))
        wall = time.monotonic() - t
        after = [smaps(pid) for pid in pids]
        arenas = {x["arena"] for x in results}
        arena = next(iter(arenas))
        size = (shm / f"ringfeed.{arena}").stat().st_size if len(arenas) == 1 else 0
        daemon_mem = smaps(proc.pid)

        mib = 1 << 20
        print(f"{'lang':8} {'pid':>8} {'rows':>8} {'zero_copy':>9} {'PSS before':>11} {'PSS after':>10} "
              f"{'dPSS':>8} {'Pss_Shmem':>10}   (MiB)")
        for x, b0, b1 in zip(results, before, after):
            print(f"{x['lang']:8} {x['pid']:>8} {x['rows']:>8} {str(x['zero_copy']):>9} {b0['Pss'] / mib:>11.1f} "
                  f"{b1['Pss'] / mib:>10.1f} {(b1['Pss'] - b0['Pss']) / mib:>8.1f} {b1['Pss_Shmem'] / mib:>10.1f}")
        d_pss = sum(b1["Pss"] - b0["Pss"] for b0, b1 in zip(before, after))
        shmem = sum(b1["Pss_Shmem"] for b1 in after)
        print(f"arena {arena}: {size / mib:.1f} MiB; 8 readers: sum dPSS {d_pss / mib:.1f} MiB = "
              f"{d_pss / max(size, 1):.2f}x the arena (8 private copies: 8x); sum Pss_Shmem "
              f"{shmem / mib:.1f} MiB; daemon Pss {daemon_mem['Pss'] / mib:.1f} MiB; all 8 answered in {wall:.2f}s")
        for n in notes:
            print(f"note: {n}")

        def check(ok: bool, what: str) -> None:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}")
            if not ok:
                failed.append(what)

        check(len(arenas) == 1, f"one arena for all 8 readers ({sorted(arenas)})")
        check(all(x["rows"] == a.days * 1440 for x in results), f"every reader got {a.days * 1440} rows")
        check(all(x["zero_copy"] for x in results), "every reader's buffers lie in the arena")
        sums = [x["sum_close"] for x in results]
        check(max(sums) - min(sums) <= 1e-9 * abs(max(sums)),
              "every reader sums the same closes (to 1e-9: summation orders differ)")
        check(shmem <= 1.1 * size, "the readers' shared-memory PSS adds up to at most 1.1x one copy (8 copies: 8x)")
        # A reader that copied the data would grow privately by about the arena's
        # size; what each one adds besides the shared pages is its own fixed cost
        # (polars thread pools, the C++ runtime: a few MiB, whatever the data).
        private = [(b1["Pss"] - b1["Pss_Shmem"]) - (b0["Pss"] - b0["Pss_Shmem"]) for b0, b1 in zip(before, after)]
        print(f"private growth per reader (MiB): {', '.join(f'{x / mib:.1f}' for x in private)}")
        check(max(private) < 0.25 * size, "no reader grew privately by a quarter of the data (a copy would be 1x)")
    except Exception as e:  # noqa: BLE001 - reported as a failure
        failed.append(f"{type(e).__name__}: {e}")
        print(f"FAIL {type(e).__name__}: {e}")
    finally:
        for _, r in readers:
            try:
                if r.stdin:
                    r.stdin.close()
                if r.wait(timeout=30) != 0:
                    failed.append(f"reader {r.pid} exited {r.returncode}")
            except subprocess.TimeoutExpired:
                r.kill()
                failed.append(f"reader {r.pid} did not exit")
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=30) != 0:
            failed.append(f"ringfeedd exited {proc.returncode}")
        leftovers = [n for n in os.listdir(shm) if n.startswith(f"ringfeed.{prefix}.")]
        if leftovers:
            failed.append(f"arenas left behind: {leftovers}")
        subprocess.run(["rm", "-rf", str(tmp)])
    print(f"pss: {0 if failed else 1} passed, {1 if failed else 0} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
