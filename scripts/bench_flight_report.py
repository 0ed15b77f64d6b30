"""The markdown summary of a scripts/bench_flight.py run: `summarise(R)` of its raw numbers
(the dict it also writes as JSON)."""
from __future__ import annotations

from typing import Any, Dict, List

from bench_daemon_report import fmt_ms, fmt_us, pct, table
from bench_daemon_util import med

WAYS = [  # (key, label, the DuckPort row it is compared with)
    ("rf_flight", "ringfeed Flight: `rf.connect(\"grpc://...\", token).bars`", "duckport"),
    ("pa_flight", "ringfeed Flight: pyarrow `do_get` + `pl.from_arrow`", "duckport"),
    ("rf_flight_fresh", "ringfeed Flight `bars`, a key never seen each time (Parquet -> arena -> wire)",
     "duckport"),
    ("duckport", "DuckPort (pyarrow Flight server + DuckDB `read_parquet`)", "duckport"),
    ("rf_flight_tls", "ringfeed Flight + TLS: `rf.connect(\"grpc+tls://...\").bars`", "duckport_tls"),
    ("rf_flight_tls_fresh", "ringfeed Flight + TLS `bars`, a key never seen each time", "duckport_tls"),
    ("pa_flight_tls", "ringfeed Flight + TLS: pyarrow `do_get` + `pl.from_arrow`", "duckport_tls"),
    ("duckport_tls", "DuckPort + TLS", "duckport_tls"),
    ("local_rf", "local ringfeed `rf.connect(sock).bars` (shared memory)", "duckport"),
    ("pl_read_parquet", "local `pl.read_parquet(month files)`", "duckport"),
]
TARGETS = {"plain": "ringfeed Flight", "tls": "ringfeed Flight + TLS", "duckport": "DuckPort",
           "duckport_tls": "DuckPort + TLS"}


def _x(a: float, b: float) -> str:
    return "–" if a != a or b != b or b == 0 else f"{a / b:.2f}x"


def summarise(R: Dict[str, Any]) -> str:
    L: List[str] = []
    q = R["query"]
    span = "symbol-year" if R["rows"] >= 525_600 else "symbol-month"
    L.append(f"Run {R['started']} UTC, {R['mode']} mode, HEAD {R['git']}; load average before "
             f"{R['load_before']}, after {R['load_after']} (2 vCPUs); CPU busy {R['cpu_busy_pct']:.0f} %, "
             f"steal {R['steal_pct']:.1f} % over the run.")
    L.append(f"Data: {R['rows']:,} rows of 1m bars seeded by {-(-R['rows'] // 10080)} local appends "
             f"({R['seed']['append_s']:.1f} s) and `write_down(all=True)` ({R['seed']['write_down_s']:.1f} s): "
             f"{R['files']} month file(s), {R['parquet_bytes'] / 2**20:.1f} MiB of Parquet; the result is "
             f"{q['arrow_bytes'] / 2**20:.1f} MiB of Arrow data in {q['batches']} batches.")
    L.append("")
    L.append(f"#### 1. One {span} of 1m bars -> polars DataFrame over loopback ({R['reps']} warm repetitions)")
    L.append("")
    tm, first = q["times_ms"], q["first_ms"]
    rows = []
    for key, label, base in WAYS:
        w, f = med(tm[key]), first.get(key, float("nan"))
        rows.append([label, fmt_ms(f), fmt_ms(w), fmt_ms(pct(tm[key], 90)),
                     _x(f, first[base]), _x(w, med(tm[base]))])
    L.append(table(["way", "first ms", "warm median ms", "warm p90 ms", "first / DuckPort first",
                    "warm / DuckPort warm"], rows))
    L.append("")
    L.append("- *first*: the way's first call, in a fresh client process of its own (imports, and a 10-row "
             "query to the plaintext daemon, done untimed before). ringfeed: a key not yet in the daemon's "
             "cache (the daemon reads the month files and builds the arena); Flight ways include the "
             "channel's connect (and TLS handshake). DuckPort: the server process's first query. "
             "*warm*: the same call repeated (ringfeed: a cache hit; DuckPort and polars read the Parquet "
             "each time). Ratios are against DuckPort with the same transport (TLS rows against DuckPort + "
             "TLS, the rest against plaintext DuckPort).")
    split = q.get("split", {})
    if split:
        parts = "; ".join(f"{k} {v['read_all_ms']:.1f} + {v['from_arrow_ms']:.2f} ms"
                          for k, v in split.items())
        L.append(f"- Where a warm pyarrow-client call goes, `do_get(...).read_all()` + `pl.from_arrow` "
                 f"(medians): {parts}.")
    if q.get("fresh_daemon_ms"):
        L.append(f"- Never-seen key, daemon side (query received -> arena built, `ringfeed_query_seconds_sum` "
                 f"deltas): median {fmt_ms(med(q['fresh_daemon_ms']))} ms of the "
                 f"{fmt_ms(med(tm['rf_flight_fresh']))} ms.")
    groups: Dict[str, List[str]] = {}
    for k, v in q["checks"].items():
        groups.setdefault(f"{v[0]:,} rows, sum of close {v[1]:.2f}, ts {v[2]}, symbol {v[3]}", []).append(k)
    fd = q.get("first_daemon_ms") or {}
    if fd:
        L.append("- First calls, daemon side (`ringfeed_query_seconds_sum` delta of the plaintext daemon) of "
                 "the whole call: " + "; ".join(f"{k} {fmt_ms(v)} of {fmt_ms(first[k])} ms" for k, v in fd.items())
                 + ".")
    b = R.get("builds") or {}
    if b.get("store_ms"):
        L.append(f"- The daemon's own split of each result it built (debug line `query built`, "
                 f"{len(b['store_ms'])} builds of the plaintext daemon): store read median "
                 f"{fmt_ms(med(b['store_ms']))} ms, arena write median {fmt_ms(med(b['materialise_ms']))} ms. "
                 "The whole result is built before its first byte goes out.")
    L.append("- Results checked: " + "; ".join(f"{', '.join(ks)}: {g}" for g, ks in groups.items()) + ".")
    L.append("")
    L.append("#### 2. Live publish -> subscriber (one 1-row append every 10 ms)")
    L.append("")
    live = R.get("live") or {}
    rows = [[{"remote": "remote, Flight subscribe ticket", "local": "local, socket + shared memory"}[m],
             str(len(v)), fmt_us(med(v)), fmt_us(pct(v, 99))] for m, v in live.items()]
    L.append(table(["subscriber", "rows", "p50 us", "p99 us"], rows))
    L.append("")
    L.append("- From just before the publisher's `append` call (durable: the dataset fsyncs) to the "
             "subscriber process holding the row as a polars DataFrame (`replay(...).read()` then "
             "`to_polars()`); CLOCK_MONOTONIC is system-wide. Both subscribers in the same run, one after "
             "the other.")
    L.append("")
    L.append(f"#### 3. Concurrent remote readers, each `do_get({span}).read_all()` in a loop for "
             f"{R['seconds']:.0f} s")
    L.append("")
    rows = []
    for r in R["throughput"]:
        rows.append([TARGETS[r["target"]], str(r["n"]), f"{r['gb_per_s']:.2f}", str(r["gets"]),
                     fmt_ms(med(r["lat_ms"])), fmt_ms(pct(r["lat_ms"], 99)), f"{r['cpu_busy_pct']:.0f}"])
    L.append(table(["server", "readers", "GB/s total", "DoGets", "DoGet p50 ms", "p99 ms", "CPU busy %"], rows))
    L.append("")
    L.append("- GB = 10^9 bytes of Arrow data (`Table.nbytes`) received, over the wall time from the first "
             "reader's start to the last one's end. ringfeed serves the cached result (each reader warmed "
             "it once); DuckPort runs its query every DoGet. Readers, servers and the daemon share the 2 vCPUs.")
    L.append("")
    L.append("#### 4. Cost of auth and rate limits per request (three daemons at once, in turns)")
    L.append("")
    s = R["small"]["samples"]
    b_ping, b_bars = med(s["no tokens"]["ping_us"]), med(s["no tokens"]["bars10_us"])
    rows = []
    for name, v in s.items():
        p, b = v["ping_us"], v["bars10_us"]
        rows.append([name, str(len(p)), fmt_us(med(p)), fmt_us(pct(p, 99)), f"{med(p) - b_ping:+.0f}",
                     fmt_us(med(b)), fmt_us(pct(b, 99)), f"{med(b) - b_bars:+.0f}"])
    L.append(table(["daemon", "requests", "ping p50 us", "ping p99 us", "p50 - no tokens",
                    "10-row DoGet p50 us", "p99 us", "p50 - no tokens"], rows))
    L.append("")
    L.append(f"- pyarrow `FlightClient.do_action(\"ping\")` and `do_get(limit 10).read_all()` "
             f"({R['small']['rows']} rows, a cache hit), one client process, a bearer header where the daemon "
             "has tokens; `token + limits` adds `[limits.per_principal] requests_per_s = 1000000`.")
    L.append("")
    L.append(f"Daemon exit codes after SIGTERM: {R['daemon_exit_codes']}. Arenas of this run left: "
             f"{R['leftover_arenas'] or 'none'}.")
    return "\n".join(L)
