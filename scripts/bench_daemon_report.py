"""The markdown summary of a scripts/bench_daemon.py run: `summarise(R)` of its raw numbers
(the dict it also writes as JSON), and the formatting it needs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench_daemon_util import LIVE_DATASETS, med


def pct(xs: Sequence[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def slope(ys: Sequence[float]) -> float:
    """Least-squares slope of ys against their index."""
    n = len(ys)
    if n < 2:
        return float("nan")
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def mb(kb: Optional[float]) -> str:
    return "?" if kb is None else f"{kb / 1024:.1f}"


def fmt_ms(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_us(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def table(head: List[str], rows: List[List[str]], right: Optional[List[bool]] = None) -> str:
    right = right or [i > 0 for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def summarise(R: Dict[str, Any]) -> str:
    q = R["query"]
    L: List[str] = []
    L.append(f"Run {R['started']} UTC, {R['mode']} mode, {R['rows']:,} rows of 1m bars "
             f"({q['chunks']} chunks), HEAD {R['git']}.")
    L.append(f"Load average before {R['load_before']}, after {R['load_after']} (2 vCPUs); CPU busy "
             f"{R['cpu_busy_pct']:.0f} %, steal {R['steal_pct']:.1f} % over the run.")
    L.append("")
    span = "one symbol-year" if R["rows"] >= 525_600 else "one symbol-month"
    L.append(f"### 1. Query {span} of 1m bars -> polars DataFrame ({R['reps']} repetitions)")
    L.append("")
    tm = q["times_ms"]
    warm = med(tm["daemon_warm"])
    cold = med(tm["daemon_cold"])
    names = {
        "daemon_cold": "ringfeed `c.bars`, cold (fresh key: Parquet -> arena)",
        "daemon_warm": "ringfeed `c.bars`, warm (cached arena)",
        "pl_read_parquet": f"`pl.read_parquet({R['files']} files)`",
        "pl_scan_filter": "`pl.scan_parquet(glob, hive).filter(symbol, ts).collect()`",
        "duckdb_pl": "DuckDB `read_parquet(glob, hive) WHERE symbol, ts` -> `.pl()`",
    }
    rows = []
    for k, label in names.items():
        xs = tm[k]
        rc, rw = med(xs) / cold, med(xs) / warm
        rows.append([label, fmt_ms(med(xs)), fmt_ms(pct(xs, 90)), f"{rc:.2f}x" if rc >= 0.1 else f"{rc:.4f}x",
                     f"{rw:,.0f}x"])
    L.append(table(["way", "median ms", "p90 ms", "x daemon cold", "x daemon warm"], rows))
    L.append("")
    if R.get("cli_query_ms"):
        L.append(f"- Diagnostic, the store's read alone: `ringfeed query --format arrow > /dev/null` of the same "
                 f"symbol-year (process start, cold Parquet read, IPC to /dev/null), median of "
                 f"{len(R['cli_query_ms'])}: {fmt_ms(med(R['cli_query_ms']))} ms.")
    L.append(f"- First query of a freshly started daemon (own key): {fmt_ms(q['first_cold_ms'])} ms "
             f"(daemon side {fmt_ms(q['first_cold_daemon_ms'])} ms).")
    L.append(f"- Cold, daemon side (query RPC received -> arena written, from `ringfeed stat`): median "
             f"{fmt_ms(med(q['daemon_ms']))} ms of the {fmt_ms(cold)} ms.")
    L.append(f"- Warm, daemon side per cache hit: {q['warm_daemon_us']:.1f} us; socket round trip "
             f"(`ping`): {q['ping_us']:.1f} us. A warm `bars` makes two round trips (query, release).")
    ws = q["warm_steps_us"]
    L.append(f"- Warm path step by step (medians of 30, {q['warm_steps_hits']}/30 cache hits), us: "
             + ", ".join(f"{k} {v:.0f}" for k, v in ws.items()) + f"; sum {sum(ws.values()):.0f}.")
    L.append(f"- Zero-copy check: the `close` buffer of the warm result lies in mapping "
             f"`{q['close_buffer_mapping']}`.")
    L.append(f"- DataFrame size (polars `estimated_size`): {q['df_bytes'] / 2**20:.1f} MiB. "
             f"Result checks (rows, sum of close, ts dtype, symbol dtype): "
             + "; ".join(f"{k} {v[0]}, {v[1]:.2f}, {v[2]}, {v[3]}" for k, v in q["checks"].items()) + ".")
    L.append("")

    L.append(f"### 2. Concurrent readers, {span} each (medians of {R['conc_reps']} rounds)")
    L.append("")
    cases = (("daemon_warm", "ringfeed daemon, cached arena"),
             ("daemon_cold", "ringfeed daemon, fresh key (one build, the rest wait for it)"),
             ("polars", "`pl.read_parquet`, each its own copy"))
    trows, mrows = [], []
    one = R["query"]["arrow_bytes"] / 1024
    for key, label in cases:
        for n in R["conc_ns"]:
            rs = [r for r in R["readers"] if r["mode"] == key and r["n"] == n]
            if not rs:
                continue
            dm = key != "polars"
            trows.append([label, str(n), fmt_ms(med([med(r["per_reader_ms"]) for r in rs])),
                          fmt_ms(med([max(r["per_reader_ms"]) for r in rs])),
                          fmt_ms(med([r["makespan_ms"] for r in rs])),
                          fmt_ms(med([med(r["touch_ms"]) for r in rs]))])
            tot0 = med([sum(r["pss_before_kb"]) for r in rs])
            add_h = med([sum(r["held"]["pss_kb"]) - sum(r["pss_before_kb"]) for r in rs])
            add_u = med([sum(r["used"]["pss_kb"]) - sum(r["pss_before_kb"]) for r in rs])
            ar = med([sum(r["used"]["arena_pss_kb"]) for r in rs])
            both = med([sum(r["used"]["arena_pss_kb"]) + r["used"]["daemon_arena_pss_kb"] for r in rs])
            st = rs[0]["used"]["daemon_status_kb"]
            mrows.append([label, str(n), mb(tot0), mb(add_h), mb(add_u), f"{add_u / one:.2f}x",
                          mb(ar) if dm else "–", f"{both / one:.2f}x" if dm else "–",
                          f"{mb(st['VmRSS'])} ({mb(st['RssShmem'])} shm, {mb(st['RssAnon'])} anon)"])
    L.append(table(["readers", "N", "fetch ms per reader (median)", "slowest reader ms", "all done ms",
                    "then read every column, ms"], trows))
    L.append("")
    L.append(table(["readers", "N", "PSS of the readers before MiB", "PSS added, holding MiB",
                    "PSS added, after reading every column MiB", "added / one copy", "arena PSS in the readers MiB",
                    "arena PSS readers + daemon / one copy", "daemon RSS MiB"], mrows))
    L.append("")
    af = next((r["arena_files"] for r in R["readers"] if r["mode"] == "daemon_warm" and r["arena_files"]), {})
    for path, v in af.items():
        L.append(f"- The result arena `{Path(path).name}`: {v['size'] / 2**20:.1f} MiB file, "
                 f"{v['resident'] / 2**20:.1f} MiB resident in /dev/shm, for "
                 f"{R['query']['arrow_bytes'] / 2**20:.1f} MiB of Arrow data (pyarrow `Table.nbytes` of the result).")
    last = R["readers"][-1]
    L.append(f"- One copy = the result's Arrow data (pyarrow `Table.nbytes`), {one / 1024:.1f} MiB (polars "
             f"`estimated_size()`: {R['query']['df_bytes'] / 2**20:.1f} MiB). *PSS of the readers before*: "
             "sum of Pss (/proc/PID/smaps_rollup) of the reader processes with interpreter, polars and ringfeed "
             "loaded and connected; *added*: the sum's growth while each holds its DataFrame, right after the "
             "fetch and after a `select` that reads every column. *Arena PSS*: Pss of the mappings of the result "
             "arena (/proc/PID/smaps); the daemon maps it too, so its pages are shared N+1 ways.")
    L.append(f"- Daemon RSS (first round of each case shown) includes every cached result it maps: "
             f"{last['cached_arenas']} query arenas ({last['cached_arena_kb'] / 1024:.0f} MiB of /dev/shm) at the end "
             f"of phase 2 (each cold round adds one). Its RssAnon went from "
             f"{mb(R['readers'][0]['used']['daemon_status_kb']['RssAnon'])} to "
             f"{mb(last['used']['daemon_status_kb']['RssAnon'])} MiB over the phase.")
    L.append("")

    L.append(f"### 3. Live append -> subscriber holds a polars DataFrame ({R['append_count']} one-row appends per dataset, 1-2 ms apart)")
    L.append("")
    rows = []
    for a in R["appends"]:
        lab = {"bench": "`bench` (CLI default: fsync always, rollups 5m,15m,1h,1d; the year in cold Parquet)"}.get(
            a["dataset"], a["dataset"])
        fs = dict((n, (f, r)) for n, f, r in LIVE_DATASETS).get(a["dataset"])
        if fs:
            lab = f"`{a['dataset']}` (fsync {fs[0]}, rollups {'none' if fs[1] == [] else '5m,15m,1h,1d'}, empty)"
        e, cd, rt = a["call_to_df_us"], a["commit_to_df_us"], a["rtt_us"]
        rows.append([lab, f"{a['received']}/{a['count']}",
                     fmt_us(med(e)), fmt_us(pct(e, 90)), fmt_us(pct(e, 99)),
                     fmt_us(med(rt)), fmt_us(pct(rt, 90)), fmt_us(pct(rt, 99)),
                     fmt_us(med(cd)), fmt_us(med(a["to_polars_us"]))])
    L.append(table(["dataset", "received", "call -> DF p50 us", "p90", "p99", "append RTT p50 us", "p90", "p99",
                    "publish -> DF p50 us", "`to_polars` p50 us"], rows))
    L.append("")
    a0 = R["appends"][0]
    L.append(f"- *call -> DF*: `c.append(...)` called (the one-row polars frame already built) -> the "
             f"subscriber holds `batch.to_polars()`; CLOCK_MONOTONIC in both processes. Building the "
             f"one-row `pl.DataFrame` before the call: median {med(a0['build_us']):.0f} us (not included). "
             f"The client-side encode inside `append` (polars -> pyarrow -> IPC stream): {a0['encode_us']:.0f} us.")
    L.append("- *append RTT*: `c.append` call -> return (durable and published, rollups included).")
    L.append("- *`to_polars`*: `batch.to_polars()` of the one-row batch (11 columns) in the subscriber that just woke; "
             "the same call repeated in a hot loop afterwards: "
             + ", ".join(f"{a['dataset']} {a['to_polars_hot_us']:.0f} us" for a in R["appends"]) + ".")
    L.append("- *publish -> DF*: the ring's publish timestamp (CLOCK_REALTIME, written at commit in the "
             "daemon) -> the subscriber holds the DataFrame.")
    L.append("- Growth with the appends already in the day (all appends of a dataset land in one UTC day, "
             "one minute apart): medians of the first and last 10 %, and the least-squares slope per append.")
    L.append("")
    grow = []
    for a in R["appends"]:
        rt, e = a["rtt_us"], a["call_to_df_us"]
        k = max(1, len(rt) // 10)
        ke = max(1, len(e) // 10)
        grow.append([f"`{a['dataset']}`", fmt_us(med(rt[:k])), fmt_us(med(rt[-k:])), f"{slope(rt):.1f}",
                     fmt_us(med(e[:ke])), fmt_us(med(e[-ke:])), f"{slope(e):.1f}", str(a["lagged"])])
    L.append(table(["dataset", "RTT first 10 % us", "RTT last 10 % us", "RTT slope us/append",
                    "call -> DF first 10 % us", "last 10 % us", "slope us/append", "lagged reads"], grow))
    L.append("")
    L.append(f"Daemon exit codes after SIGTERM: {R.get('daemon_exit_codes')}. Arenas of this run left after "
             f"it stopped (`ringfeed inspect`, {R.get('shm_dir', '/dev/shm')}): {R['leftover_arenas'] or 'none'}.")
    return "\n".join(L)
