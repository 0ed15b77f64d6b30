#!/usr/bin/env python3
"""The processes of scripts/bench_flight.py: `bench_flight.FlightWorker` runs
`bench_flight_workers.py <role> <json args>` and drives it by lines on stdin/stdout; the
last stdout line of a finished step is JSON. Roles:

- `duckport`: the DuckPort-style baseline server, a `pyarrow.flight.FlightServerBase` whose
  `do_get(ticket = symbol)` runs DuckDB `SELECT * FROM read_parquet(glob,
  hive_partitioning=false) WHERE symbol = ?` and returns the Arrow table; prints
  `ready <port>` and serves until its stdin closes.
- `query`: phase 1, every way of getting the symbol-year into a polars DataFrame, in one
  client process (first call of each, then repetitions in shuffled turns).
- `reader`: phase 3, one of N concurrent remote readers: DoGet of the symbol-year in a loop
  for `seconds` after a common `go`.
- `live`: phase 2, a subscriber (remote over a Flight subscribe ticket, or local over the
  socket) that records when it holds each live bar as a polars DataFrame.
- `small`: phase 4, p50/p99 of `do_action("ping")` and a 10-row DoGet against several
  daemons, in turns.

Not meant to be run by hand (see bench_flight.py's docstring for what each phase measures).
"""
from __future__ import annotations

import json
import random
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from bench_daemon_util import med, timed_turns


def _client(target: Dict[str, Any]) -> Any:
    """A pyarrow FlightClient for `target` ({"location", "ca"?}) and its call options
    ({"token"?} as the bearer header)."""
    import pyarrow.flight as fl

    kw = {"tls_root_certs": target["ca"].encode()} if target.get("ca") else {}
    headers = [(b"authorization", f"Bearer {target['token']}".encode())] if target.get("token") else []
    return fl.FlightClient(target["location"], **kw), fl.FlightCallOptions(headers=headers)


def _stat_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


# --------------------------------------------------------------------------- DuckPort

def w_duckport(a: Dict[str, Any]) -> None:
    import duckdb
    import pyarrow.flight as fl

    sql = f"SELECT * FROM read_parquet('{a['glob']}', hive_partitioning = false) WHERE symbol = ?"

    class DuckPort(fl.FlightServerBase):
        def __init__(self, location: str, **kw: Any) -> None:
            super().__init__(location, **kw)
            self.con = duckdb.connect()
            self.lock = threading.Lock()

        def do_get(self, context: Any, ticket: Any) -> Any:
            with self.lock:  # a DuckDB connection's cursors are made one at a time
                cur = self.con.cursor()
            table = cur.sql(sql, params=[ticket.ticket.decode()]).to_arrow_table()
            cur.close()
            return fl.RecordBatchStream(table)

    kw: Dict[str, Any] = {}
    scheme = "grpc"
    if a.get("cert"):
        scheme = "grpc+tls"
        kw["tls_certificates"] = [fl.CertKeyPair(cert=a["cert"].encode(), key=a["key"].encode())]
    server = DuckPort(f"{scheme}://127.0.0.1:0", **kw)
    print(f"ready {server.port}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()


# --------------------------------------------------------------------------- phase 1

ON_PLAIN = ("rf_flight", "pa_flight", "local_rf")  # the ways served by the plaintext daemon


def w_query(a: Dict[str, Any]) -> None:
    """With `first` = a way: that way's first call in this fresh process (then exit).
    Without: `reps` repetitions of every way in shuffled turns."""
    import polars as pl
    import pyarrow.flight as fl

    import ringfeed as rf

    ds, sym, start, end = a["dataset"], a["symbol"], a["start"], a["end"]
    plain, tls, dp, dpt = a["plain"], a["tls"], a["duckport"], a["duckport_tls"]
    local = rf.connect(a["socket"])
    rf_plain = rf.connect(plain["location"], token=plain["token"])
    rf_tls = rf.connect(tls["location"], token=tls["token"], tls_root_certs=tls["ca"].encode())
    pa_plain, pa_plain_o = _client(plain)
    pa_tls, pa_tls_o = _client(tls)
    dp_plain, dp_plain_o = _client(dp)
    dp_tls, dp_tls_o = _client(dpt)
    fresh = iter(range(1000, 1 << 30))
    split: Dict[str, Dict[str, List[float]]] = {}

    def ticket(e: int) -> Any:
        return fl.Ticket(json.dumps({"dataset": ds, "symbols": [sym], "timeframe": "1m", "start": start, "end": e}))

    def pa_get(name: str, client: Any, opts: Any, tk: Any) -> Any:
        # read_all and pl.from_arrow timed apart: where the time of a remote frame goes.
        t0 = time.perf_counter_ns()
        table = client.do_get(tk, opts).read_all()
        t1 = time.perf_counter_ns()
        df = pl.from_arrow(table)
        t2 = time.perf_counter_ns()
        s = split.setdefault(name, {"read_all_ms": [], "from_arrow_ms": [], "nbytes": []})
        s["read_all_ms"].append((t1 - t0) / 1e6)
        s["from_arrow_ms"].append((t2 - t1) / 1e6)
        s["nbytes"].append(table.nbytes)
        return df

    # Each way with its key: `end` is the warm key (cached after the first call); the first
    # call of each ringfeed way uses a key of its own that the daemon has not seen.
    def ways(e_of: Callable[[str], int]) -> Dict[str, Callable[[], Any]]:
        return {
            "rf_flight": lambda: rf_plain.bars(ds, sym, "1m", start=start, end=e_of("rf_flight")),
            "pa_flight": lambda: pa_get("pa_flight", pa_plain, pa_plain_o, ticket(e_of("pa_flight"))),
            "rf_flight_tls": lambda: rf_tls.bars(ds, sym, "1m", start=start, end=e_of("rf_flight_tls")),
            "pa_flight_tls": lambda: pa_get("pa_flight_tls", pa_tls, pa_tls_o, ticket(e_of("pa_flight_tls"))),
            "duckport": lambda: pa_get("duckport", dp_plain, dp_plain_o, fl.Ticket(sym)),
            "duckport_tls": lambda: pa_get("duckport_tls", dp_tls, dp_tls_o, fl.Ticket(sym)),
            "local_rf": lambda: local.bars(ds, sym, "1m", start=start, end=e_of("local_rf")),
            "pl_read_parquet": lambda: pl.read_parquet(a["files"], hive_partitioning=False),
            # A key never seen, every time: Parquet -> arena -> Flight, what DuckPort does each call.
            "rf_flight_fresh": lambda: rf_plain.bars(ds, sym, "1m", start=start, end=end + next(fresh)),
            "rf_flight_tls_fresh": lambda: rf_tls.bars(ds, sym, "1m", start=start, end=end + next(fresh)),
        }

    own = {name: end + 1 + i for i, name in enumerate(("rf_flight", "pa_flight", "rf_flight_tls",
                                                         "pa_flight_tls", "local_rf"))}
    first_ways = ways(lambda n: own[n])
    warm_ways = ways(lambda n: end)
    out: Dict[str, Any] = {"times_ms": {k: [] for k in warm_ways}, "fresh_daemon_ms": []}

    def stat() -> float:
        return _stat_value(local.stat(), "ringfeed_query_seconds_sum")

    # Process-wide first-use costs (pyarrow's Flight library, polars' thread pool, a view-typed
    # frame) are paid here on a throwaway client, so no way's first call carries them.
    warm_client, warm_opts = _client(plain)
    small = fl.Ticket(json.dumps({"dataset": ds, "symbols": [sym], "timeframe": "1m", "limit": 10}))
    pl.from_arrow(warm_client.do_get(small, warm_opts).read_all())
    pl.read_parquet(a["files"][:1], hive_partitioning=False).height
    warm_client.close()
    if a.get("first"):
        # The way's first call (for Flight: includes the channel's connect, and TLS handshake).
        name = a["first"]
        s0 = stat() if name in ON_PLAIN else None
        t = time.perf_counter_ns()
        df = first_ways[name]()
        ms = (time.perf_counter_ns() - t) / 1e6
        check = [df.height, float(df["close"].sum()), str(df.schema["ts"]), str(df.schema["symbol"])]
        print(json.dumps({"ms": ms, "daemon_ms": None if s0 is None else (stat() - s0) * 1e3, "check": check}),
              flush=True)
        return
    # Untimed: the warm key into each daemon's cache.
    for name in ("rf_flight", "rf_flight_tls", "local_rf"):
        warm_ways[name]()
    tab = rf_plain.bars_arrow(ds, sym, "1m", start=start, end=end)
    out["arrow_bytes"], out["batches"] = tab.nbytes, len(tab.to_batches())
    out["rows"] = tab.num_rows
    del tab
    timed_turns(warm_ways, a["reps"], out["rows"], out["times_ms"], probed="rf_flight_fresh", probe=stat,
                probes=out["fresh_daemon_ms"])
    out["split"] = {k: {kk: med(vv) for kk, vv in v.items()} for k, v in split.items()}
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------------- phase 3

def w_reader(a: Dict[str, Any]) -> None:
    """ready -> go -> DoGet in a loop for `seconds` -> JSON."""
    import pyarrow.flight as fl

    client, opts = _client(a["target"])
    tk = fl.Ticket(a["ticket"].encode())
    client.do_get(tk, opts).read_all()  # warm-up: connection up, result cached
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    t0 = time.monotonic_ns()
    deadline = t0 + int(a["seconds"] * 1e9)
    n, nbytes, lat = 0, 0, []
    while True:
        t = time.monotonic_ns()
        table = client.do_get(tk, opts).read_all()
        lat.append((time.monotonic_ns() - t) / 1e6)
        n += 1
        nbytes += table.nbytes
        del table
        if time.monotonic_ns() >= deadline:
            break
    print(json.dumps({"t0": t0, "t1": time.monotonic_ns(), "gets": n, "bytes": nbytes, "lat_ms": lat}), flush=True)


# --------------------------------------------------------------------------- phase 2

def w_live(a: Dict[str, Any]) -> None:
    """Subscribes from `start` (remote: `rf.connect(location, token=...)`, local: the
    socket), prints `ready` once the history is read, then takes `n` live rows and prints
    JSON {k: CLOCK_MONOTONIC ns when the row with close == k was held as a DataFrame}."""
    import ringfeed as rf

    t = a["target"]
    if a["mode"] == "remote":
        c = rf.connect(t["location"], token=t.get("token"))
    else:
        c = rf.connect(a["socket"])
    rp = c.replay(a["dataset"], "1m", a["start"], symbols=a["symbol"])
    while True:  # the history (empty or short) first
        b = rp.read(timeout=0.5)
        if b is None:
            break
    print("ready", flush=True)
    got: Dict[int, int] = {}
    while len(got) < a["n"]:
        b = rp.read(timeout=30)
        if b is None:
            break
        df = b.to_polars()
        now = time.monotonic_ns()
        for k in df["close"].to_list():
            got[int(k)] = now
    rp.close()
    print(json.dumps(got), flush=True)


# --------------------------------------------------------------------------- phase 4

def w_small(a: Dict[str, Any]) -> None:
    """ping and a 10-row DoGet, `n` of each per round and target, targets in turns."""
    import pyarrow.flight as fl

    clients = {t["name"]: _client(t) for t in a["targets"]}
    action = fl.Action("ping", b"")
    tk = fl.Ticket(json.dumps({"dataset": a["dataset"], "symbols": [a["symbol"]], "timeframe": "1m",
                               "limit": 10}).encode())
    rows: Optional[int] = None
    out: Dict[str, Dict[str, List[float]]] = {t["name"]: {"ping_us": [], "bars10_us": []} for t in a["targets"]}
    for c, o in clients.values():  # warm-up: connections, the 10-row result cached
        for _ in range(50):
            list(c.do_action(action, o))
            rows = c.do_get(tk, o).read_all().num_rows
    for rnd in range(a["rounds"]):
        names = list(clients)
        random.Random(rnd).shuffle(names)
        for name in names:
            c, o = clients[name]
            for _ in range(a["n"]):
                t = time.perf_counter_ns()
                list(c.do_action(action, o))
                out[name]["ping_us"].append((time.perf_counter_ns() - t) / 1e3)
            for _ in range(a["n"]):
                t = time.perf_counter_ns()
                c.do_get(tk, o).read_all()
                out[name]["bars10_us"].append((time.perf_counter_ns() - t) / 1e3)
    print(json.dumps({"rows": rows, "samples": out}), flush=True)


ROLES = {"duckport": w_duckport, "query": w_query, "reader": w_reader, "live": w_live, "small": w_small}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
