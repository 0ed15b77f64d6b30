#!/usr/bin/env python3
"""The worker processes of scripts/bench_daemon.py: `bench_daemon.Worker` runs
`bench_daemon_workers.py <role> <json args>` (roles: query, reader, sub, pub) and drives it by
lines on stdin/stdout; the last stdout line of a finished step is JSON. Not meant to be run
by hand (see bench_daemon.py's docstring for what each phase measures).
"""
from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
from typing import Any, Dict, List

from bench_daemon_util import MIN_NS, med, timed_turns

BAR_COLS = ["ts", "symbol", "open", "high", "low", "close", "volume",
            "quote_volume", "trades", "taker_buy_base", "taker_buy_quote"]


def _connect(sock: str):
    import ringfeed as rf
    return rf.connect(sock)


def _stat_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def w_query(a: Dict[str, Any]) -> None:
    """Phase 1, in one process: every method once per repetition, in turns."""
    import duckdb
    import polars as pl

    c = _connect(a["socket"])
    start, end, sym, ds = a["start"], a["end"], a["symbol"], a["dataset"]
    files, glob = a["files"], a["glob"]
    con = duckdb.connect()
    t_lo = dt.datetime.fromtimestamp(start / 1e9, dt.timezone.utc).isoformat()
    t_hi = dt.datetime.fromtimestamp(end / 1e9, dt.timezone.utc).isoformat()
    cols = ", ".join(BAR_COLS)
    duck_sql = (f"SELECT {cols} FROM read_parquet('{glob}', hive_partitioning = true) "
                f"WHERE symbol = '{sym}' AND ts >= '{t_lo}'::TIMESTAMPTZ_NS AND ts < '{t_hi}'::TIMESTAMPTZ_NS")
    fresh = iter(range(1, 1 << 30))

    def stat() -> Dict[str, float]:
        t = c.stat()
        return {k: _stat_value(t, "ringfeed_" + k) for k in ("queries_total", "query_seconds_sum", "cache_hits_total")}

    def daemon_cold():
        return c.bars(ds, sym, "1m", start=start, end=end + next(fresh))

    methods = {
        "daemon_cold": daemon_cold,
        "daemon_warm": lambda: c.bars(ds, sym, "1m", start=start, end=end),
        "pl_read_parquet": lambda: pl.read_parquet(files, hive_partitioning=False),
        "pl_scan_filter": lambda: pl.scan_parquet(glob, hive_partitioning=True)
            .filter((pl.col("symbol") == sym) & (pl.col("ts") >= pl.lit(start).cast(pl.Datetime("ns", "UTC")))
                    & (pl.col("ts") < pl.lit(end).cast(pl.Datetime("ns", "UTC"))))
            .select(BAR_COLS).collect(),
        "duckdb_pl": lambda: con.sql(duck_sql).pl(),
    }
    out: Dict[str, Any] = {"times_ms": {k: [] for k in methods}, "daemon_ms": []}

    # The very first query of this daemon (and of this process), with its own key.
    s0 = stat()
    t = time.perf_counter_ns()
    df = c.bars(ds, sym, "1m", start=start, end=end + 10**6)
    out["first_cold_ms"] = (time.perf_counter_ns() - t) / 1e6
    out["first_cold_daemon_ms"] = (stat()["query_seconds_sum"] - s0["query_seconds_sum"]) * 1e3
    out["rows"] = df.height
    out["df_bytes"] = df.estimated_size()
    del df
    # Untimed warm-up of every other method (polars thread pool, duckdb, the warm key's build).
    checks = {}
    for name, f in methods.items():
        if name == "daemon_cold":
            continue
        d = f()
        checks[name] = (d.height, float(d["close"].sum()), str(d.schema["ts"]), str(d.schema["symbol"]))
        del d
    out["checks"] = checks
    # Zero-copy proof: the warm result's close buffer lies inside a mapping of the arena.
    tab = c.bars_arrow(ds, sym, "1m", start=start, end=end)
    addr = tab.column("close").chunk(0).buffers()[1].address
    hit = ""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                hit = line.split()[-1] if len(line.split()) >= 6 else "(anonymous)"
                break
    out["close_buffer_mapping"] = hit
    out["chunks"] = tab.column("close").num_chunks
    out["arrow_bytes"] = tab.nbytes
    del tab
    # Socket round trip alone, for scale.
    pings = []
    for _ in range(200):
        t = time.perf_counter_ns()
        c.ping()
        pings.append((time.perf_counter_ns() - t) / 1e3)
    out["ping_us"] = med(pings)

    timed_turns(methods, a["reps"], out["rows"], out["times_ms"], probed="daemon_cold",
                probe=lambda: stat()["query_seconds_sum"], probes=out["daemon_ms"])
    # Warm path pieces: one query RPC that hits the cache, as the daemon measures it.
    s0 = stat()
    n = 50
    for _ in range(n):
        c.bars(ds, sym, "1m", start=start, end=end)
    s1 = stat()
    out["warm_daemon_us"] = (s1["query_seconds_sum"] - s0["query_seconds_sum"]) / n * 1e6
    out["warm_hits"] = s1["cache_hits_total"] - s0["cache_hits_total"]
    # The warm path step by step, through the client's public pieces (what `bars` does).
    from ringfeed import Reader
    req = {"op": "query", "dataset": ds, "symbols": [sym], "timeframe": "1m", "from_end": False,
           "start": start, "end": end}
    steps: Dict[str, List[float]] = {k: [] for k in
                                     ("query RPC", "Reader.open", "read batches", "Reader.close", "release RPC",
                                      "pl.DataFrame per batch", "pl.concat")}
    hits = 0
    for _ in range(30):
        t = [time.perf_counter_ns()]
        resp = c.call(req)
        t.append(time.perf_counter_ns())
        r = Reader.open(resp["arena"], start="oldest")
        t.append(time.perf_counter_ns())
        batches = [r.read(timeout=10.0) for _ in range(int(resp["batches"]))]
        t.append(time.perf_counter_ns())
        r.close()
        t.append(time.perf_counter_ns())
        c.call({"op": "release", "arena": resp["arena"]})
        t.append(time.perf_counter_ns())
        frames = [pl.DataFrame(b) for b in batches]
        t.append(time.perf_counter_ns())
        df = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)
        t.append(time.perf_counter_ns())
        hits += bool(resp.get("cached"))
        for k, a_, b_ in zip(steps, t, t[1:]):
            steps[k].append((b_ - a_) / 1e3)
        del df, frames, batches
    out["warm_steps_us"] = {k: med(v) for k, v in steps.items()}
    out["warm_steps_hits"] = hits
    print(json.dumps(out), flush=True)


def w_reader(a: Dict[str, Any]) -> None:
    """Phase 2: one reader process. ready -> go -> fetch -> held(JSON) -> touch -> touched(JSON) -> exit."""
    import polars as pl

    c = _connect(a["socket"]) if a["mode"] != "polars" else None

    def fetch(end: int, files: List[str]):
        if c is not None:
            return c.bars(a["dataset"], a["symbol"], "1m", start=a["start"], end=end)
        return pl.read_parquet(files, hive_partitioning=False)

    def use(df):
        # Every column is read once (what any computation on the frame does).
        return df.select(pl.all().exclude("symbol", "ts").sum(), pl.col("ts").max(), pl.col("symbol").n_unique())

    # Warm-up on one day, dropped again: the code paths (polars, ringfeed, reader threads) are
    # then in the "before" PSS, so the growth measured later is the data.
    small = fetch(a["start"] + 1440 * MIN_NS, a["files"][:1])
    use(small)
    del small
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    t0 = time.monotonic_ns()
    df = fetch(a["end"], a["files"])
    t1 = time.monotonic_ns()
    print(json.dumps({"t0": t0, "t1": t1, "rows": df.height, "bytes": df.estimated_size()}), flush=True)
    if sys.stdin.readline().strip() != "touch":
        return
    t = time.monotonic_ns()
    sums = use(df)
    touch_ms = (time.monotonic_ns() - t) / 1e6
    print(json.dumps({"touch_ms": touch_ms, "close_sum": float(sums["close"][0])}), flush=True)
    sys.stdin.readline()  # "exit" (or EOF): the DataFrame is held until then
    del df


def w_sub(a: Dict[str, Any]) -> None:
    """Phase 3 subscriber: reads the 1m topic until `count` messages or `idle` s of silence."""
    import polars as pl
    import ringfeed as rf

    c = _connect(a["socket"])
    r = c.subscribe(a["dataset"], "1m")
    recs: List[List[int]] = []
    lagged = 0
    last = None
    print("ready", flush=True)
    idle_since = time.monotonic()
    while len(recs) < a["count"] and time.monotonic() - idle_since < a["idle"]:
        try:
            b = r.read(timeout=0.2)
        except rf.LaggedError:
            lagged += 1
            continue
        except rf.ClosedError:
            break
        if b is None:
            continue
        t_read = time.monotonic_ns()
        df = b.to_polars()
        t_df = time.monotonic_ns()
        wall = time.time_ns()
        vol = df["volume"].to_list()
        ts = df["ts"].cast(pl.Int64).to_list()
        for v, t in zip(vol, ts):
            recs.append([int(t), int(v), t_read, t_df, b.ts_ns, wall, b.seq])
        idle_since = time.monotonic()
        last = b
    hot = []
    for _ in range(200 if last is not None else 0):
        t = time.monotonic_ns()
        last.to_polars()
        hot.append((time.monotonic_ns() - t) / 1e3)
    print(json.dumps({"recs": recs, "lagged": lagged, "to_polars_hot_us": med(hot)}), flush=True)


def w_pub(a: Dict[str, Any]) -> None:
    """Phase 3 publisher: one-row appends, CLOCK_MONOTONIC of the start in `volume`."""
    import polars as pl
    import pyarrow as pa

    c = _connect(a["socket"])
    rnd = random.Random(11)
    t0s, calls, ends = [], [], []
    tsdt = pl.Datetime("ns", "UTC")
    print("ready", flush=True)
    sys.stdin.readline()
    total = a["warmup"] + a["count"]
    for k in range(total):
        ts = a["first_ts"] + k * MIN_NS
        px = 30000.0 + (k % 100)
        t0 = time.monotonic_ns()
        df = pl.DataFrame({"ts": pl.Series([ts], dtype=pl.Int64).cast(tsdt), "symbol": [a["symbol"]],
                           "open": [px], "high": [px + 1.0], "low": [px - 1.0], "close": [px + 0.5],
                           "volume": [float(t0)]})
        tc = time.monotonic_ns()
        c.append(a["dataset"], df)
        t1 = time.monotonic_ns()
        t0s.append(t0)
        calls.append(tc)
        ends.append(t1)
        gap = rnd.uniform(a["gap_ms"][0], a["gap_ms"][1]) / 1e3
        time.sleep(gap)
    # The client's own share of an append: the polars -> pyarrow -> IPC stream encode it does.
    enc = []
    for _ in range(200):
        t = time.monotonic_ns()
        table = pa.table(df)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        sink.getvalue().to_pybytes()
        enc.append((time.monotonic_ns() - t) / 1e3)
    print(json.dumps({"t0": t0s, "call": calls, "end": ends, "encode_us": med(enc)}), flush=True)


ROLES = {"query": w_query, "reader": w_reader, "sub": w_sub, "pub": w_pub}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        print(f"usage: {sys.argv[0]} {{{'|'.join(ROLES)}}} JSON (run by bench_daemon.py)", file=sys.stderr)
        return 2
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
