#!/usr/bin/env python3
"""ringfeed from Python against the usual ways to move a frame between processes.

Two measurements, each in one run, side by side:

1. **Large batch**: the time for a second process to hold a 1M-row bar batch
   as a polars DataFrame.
   - ringfeed: from the publish (commit) to the DataFrame, including the
     futex wake-up of the sleeping reader; also end to end from the
     `write()` call (that adds the writer's one copy into the slot).
   - pyarrow IPC file in /dev/shm opened with `pa.memory_map` (zero-copy,
     no notification: the file exists before the clock starts), with the
     symbol column as string_view and as plain utf8.
   - Arrow Flight over loopback (`pyarrow.flight` do_get).
   - `multiprocessing.shared_memory` + pickle of the DataFrame, notified
     through a pipe.
2. **Small batch** (1 bar row by default, `--small-rows`) one-way latency and
   its per-step split, p50/p99: `bench_small.py` (ringfeed in futex mode and
   with a spin budget, a unix socket and iceoryx2 written as well as a user
   would write them; its docstring says how), plus the floor of the Python API
   in one process.

Every DataFrame is built with `pl.DataFrame(obj)` (the PyCapsule route).
Run with the project venv (scripts/test_python.sh makes it; `pip install
matplotlib iceoryx2` for the plot and the iceoryx2 row):

    .venv/bin/python scripts/bench_python.py [--quick] [--out docs/bench_python.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import platform
import statistics
import struct
import sys
import tempfile
import time
import uuid
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

import ringfeed as rf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_small  # noqa: E402  (the small-batch half, also a script of its own)

ROOT = Path(__file__).resolve().parents[1]
now = time.monotonic_ns


# --------------------------------------------------------------------------- data


def bar_table(seq: int, rows: int, symbol_type: pa.DataType = pa.string_view()) -> pa.RecordBatch:
    """The rf-xtest bar formula: ts = seq*1e9 + j ns, symbol S{j%4}, open = seq + j/2, ..."""
    j = np.arange(rows, dtype=np.int64)
    opens = seq + 0.5 * j
    syms = pa.array(np.array(["S0", "S1", "S2", "S3"])[j % 4]).cast(symbol_type)
    schema = rf.bar_schema()
    if symbol_type != pa.string_view():
        schema = schema.set(1, schema.field(1).with_type(symbol_type))
    return pa.record_batch(
        [
            pa.array(seq * 1_000_000_000 + j, pa.timestamp("ns", "UTC")),
            syms,
            pa.array(opens),
            pa.array(opens + 1),
            pa.array(opens - 1),
            pa.array(opens + 0.25),
            pa.array(j.astype(np.float64)),
        ],
        schema=schema,
    )


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------ large batch


def large_ringfeed_reader(name: str, conn: Any) -> None:
    r = rf.Reader.open(name, start="oldest", wait=60)
    conn.send("ready")
    for b in r:
        df = pl.DataFrame(b)
        t_done, wall = now(), time.time_ns()
        zero = b.is_zero_copy and df.height == b.num_rows
        conn.send((t_done, wall - b.ts_ns, zero))
        del df, b


def bench_large_ringfeed(batch: pa.RecordBatch, reps: int) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    size = batch.nbytes
    w = rf.Writer.create(name, batch.schema, slots=2, slot_bytes=size + (8 << 20), on_full="block", timeout=30, max_readers=1, leases_per_reader=1)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=large_ringfeed_reader, args=(name, child))
    p.start()
    assert parent.recv() == "ready"
    e2e, notify, copy = [], [], []
    zero = True
    for _ in range(reps):
        time.sleep(0.05)  # let the reader fall asleep on the futex
        t0 = now()
        w.write(batch)
        t1 = now()
        t_done, commit_to_df, z = parent.recv()
        e2e.append((t_done - t0) / 1e6)
        notify.append(commit_to_df / 1e6)
        copy.append((t1 - t0) / 1e6)
        zero = zero and z
    w.close()
    p.join(30)
    return {
        "ringfeed: publish → DataFrame": statistics.median(notify),
        "ringfeed: write() call → DataFrame (incl. the copy into the slot)": statistics.median(e2e),
        "_write_ms": statistics.median(copy),
        "_write_GBps": size / (statistics.median(copy) / 1e3) / 1e9,
        "_zero_copy": zero,
        "_bytes": size,
    }


def bench_large_in_process(batch: pa.RecordBatch, reps: int) -> dict[str, float]:
    """The floor: read + pl.DataFrame of a batch already in the ring, in the
    writer's own process (no wake-up, warm caches)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    w = rf.Writer.create(name, batch.schema, slots=2, slot_bytes=batch.nbytes + (8 << 20), max_readers=1, leases_per_reader=1)
    r = rf.Reader.open(name, start="next")
    times = []
    for _ in range(reps):
        w.write(batch)
        t0 = now()
        b = r.read(0)
        df = pl.DataFrame(b)
        times.append((now() - t0) / 1e6)
        del df, b
    w.close()
    return {"floor: ringfeed read + DataFrame in one process (no wake-up)": statistics.median(times)}


def bench_default_path(batch_utf8: pa.RecordBatch, reps: int) -> dict[str, float]:
    """What a new user gets: a frame with plain utf8 strings, its ring created with
    the frame's own schema (the default stores strings as views), read into polars in
    the writer's process; against the same with strings="as_given" (plain utf8 in the
    ring: polars copies it into views on every read)."""
    out = {}
    for label, strings in (("view (default)", "view"), ("as_given (utf8)", "as_given")):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        w = rf.Writer.create(
            name, batch_utf8.schema, slots=2, slot_bytes=batch_utf8.nbytes + (16 << 20), max_readers=1,
            leases_per_reader=1, strings=strings,  # type: ignore[arg-type]
        )
        r = rf.Reader.open(name, start="next")
        times = []
        for _ in range(reps):
            w.write(batch_utf8)
            b = r.read(0)
            t0 = now()
            df = pl.DataFrame(b)
            times.append((now() - t0) / 1e6)
            del df, b
        w.close()
        out[f"default path: utf8 frame, own schema, strings={label} → DataFrame"] = statistics.median(times)
    return out


def large_mmap_reader(paths: list[str], reps: int, conn: Any) -> None:
    out = {}
    for path in paths:
        times = []
        for _ in range(reps):
            t0 = now()
            with pa.memory_map(path) as src:
                t = pa.ipc.open_file(src).read_all()
                df = pl.DataFrame(t)
            times.append((now() - t0) / 1e6)
            assert df.height > 0
            del df, t
        out[path] = statistics.median(times)
    conn.send(out)


def bench_large_mmap(batches: dict[str, pa.RecordBatch], reps: int, tmpdir: str) -> dict[str, float]:
    paths = {}
    for label, b in batches.items():
        path = os.path.join(tmpdir, f"bars-{label}.arrow")
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, b.schema) as w:
            w.write_batch(b)
        paths[label] = path
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=large_mmap_reader, args=(list(paths.values()), reps, child))
    p.start()
    res = parent.recv()
    p.join(30)
    return {f"pa.memory_map IPC file in /dev/shm ({label}, no notification)": res[path] for label, path in paths.items()}


class TableServer(flight.FlightServerBase):
    def __init__(self, location: str, table: pa.Table | None = None) -> None:
        super().__init__(location)
        self.table = table

    def do_get(self, context: Any, ticket: Any) -> Any:
        assert self.table is not None
        return flight.RecordBatchStream(self.table)


def flight_server(rows: int, port_conn: Any) -> None:
    table = pa.Table.from_batches([bar_table(1, rows)])
    server = TableServer("grpc://127.0.0.1:0", table=table)
    port_conn.send(server.port)
    server.serve()


def bench_large_flight(rows: int, reps: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=flight_server, args=(rows, child), daemon=True)
    p.start()
    port = parent.recv()
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    times = []
    for _ in range(reps):
        t0 = now()
        t = client.do_get(flight.Ticket(b"bars")).read_all()
        df = pl.DataFrame(t)
        times.append((now() - t0) / 1e6)
        assert df.height == rows
        del df, t
    client.close()
    p.kill()
    return {"Arrow Flight do_get over loopback": statistics.median(times)}


def large_pickle_reader(shm_name: str, bell: Any, conn: Any) -> None:
    shm = shared_memory.SharedMemory(shm_name)
    conn.send("ready")
    while True:
        hdr = bell.recv_bytes()
        if not hdr:
            break
        n, _t0 = struct.unpack("qq", hdr)
        df = pickle.loads(shm.buf[:n])
        conn.send(now())
        del df
    shm.close()


def bench_large_pickle(batch: pa.RecordBatch, reps: int) -> dict[str, float]:
    df = pl.DataFrame(batch)
    size = len(pickle.dumps(df, protocol=5)) + (1 << 20)
    shm = shared_memory.SharedMemory(create=True, size=size)
    ctx = mp.get_context("spawn")
    bell_r, bell_w = ctx.Pipe(duplex=False)
    parent, child = ctx.Pipe()
    p = ctx.Process(target=large_pickle_reader, args=(shm.name, bell_r, child), daemon=True)
    p.start()
    assert parent.recv() == "ready"
    times = []
    for _ in range(reps):
        time.sleep(0.05)
        t0 = now()
        data = pickle.dumps(df, protocol=5)
        shm.buf[: len(data)] = data
        bell_w.send_bytes(struct.pack("qq", len(data), t0))
        times.append((parent.recv() - t0) / 1e6)
    bell_w.send_bytes(b"")
    p.join(30)
    shm.close()
    shm.unlink()
    return {"shared_memory + pickle of the DataFrame + pipe": statistics.median(times)}


# ------------------------------------------------------------------ small batch
# The small-batch ways (ringfeed, the unix socket and iceoryx2 written as well as a
# user would, the per-step split) live in bench_small.py; this keeps only the floor
# of the Python API in one process.


def bench_small_in_process(n: int, rows: int) -> dict[str, list[float]]:
    """The floor of the Python API itself: write, read and to_polars in one
    process, no wake-up."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    batch = bench_small.small_batch(rows)
    w = rf.Writer.create(name, batch.schema, slots=8, slot_bytes=64 << 10, max_readers=1, leases_per_reader=2)
    r = rf.Reader.open(name, start="next")
    lat = []
    for _ in range(n):
        t0 = now()
        w.write(batch)
        b = r.read(0)
        df = b.to_polars()  # type: ignore[union-attr]
        lat.append((now() - t0) / 1e3)
        del df, b
    w.close()
    return {"total": lat}


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows, reps, n = args.rows, args.reps, args.messages
    load_before = os.getloadavg()
    started = time.time()
    res: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "pyarrow": pa.__version__,
            "ringfeed": rf.__version__,
            "loadavg_before": load_before,
        },
        "params": {"rows": rows, "reps": reps, "small_messages": n, "small_interval_us": args.interval_us, "small_rows": args.small_rows},
    }
    print(f"load average {load_before}; building a {rows}-row bar batch", file=sys.stderr)
    big = bar_table(1, rows)
    big_utf8 = bar_table(1, rows, pa.string())

    large: dict[str, float] = {}
    print("large: ringfeed", file=sys.stderr)
    rfl = bench_large_ringfeed(big, reps)
    res["ringfeed_large_detail"] = {k.lstrip("_"): v for k, v in rfl.items() if k.startswith("_")}
    large.update({k: v for k, v in rfl.items() if not k.startswith("_")})
    large.update(bench_large_in_process(big, reps))
    large.update(bench_default_path(big_utf8, reps))
    print("large: memory_map", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        large.update(bench_large_mmap({"string_view": big, "utf8": big_utf8}, reps, tmp))
    print("large: flight", file=sys.stderr)
    large.update(bench_large_flight(rows, reps))
    print("large: shared_memory + pickle", file=sys.stderr)
    large.update(bench_large_pickle(big, reps))
    res["large_ms"] = large

    print("small: the floor in one process, then bench_small's ways", file=sys.stderr)
    small: dict[str, Any] = {
        "floor: ringfeed write+read+to_polars in one process (no wake-up)": bench_small.summarise(bench_small_in_process(n, args.small_rows))
    }
    small.update(bench_small.run_small(n, args.interval_us, args.small_rows))
    res["small_us"] = small
    res["machine"]["loadavg_after"] = os.getloadavg()
    res["seconds"] = round(time.time() - started, 1)
    return res


def ratios(res: dict[str, Any]) -> dict[str, Any]:
    large = res["large_ms"]
    base = large["ringfeed: publish → DataFrame"]
    small = {k: v["total"]["p50"] for k, v in res["small_us"].items() if isinstance(v, dict) and "total" in v}
    sbase = small["ringfeed (futex)"]
    return {
        "large_x_slower_than_ringfeed": {
            k: v / base for k, v in large.items() if not k.startswith(("ringfeed", "floor"))
        },
        "small_p50_x_ringfeed_futex": {k: v / sbase for k, v in small.items() if not k.startswith(("ringfeed", "floor"))},
    }


def plot(res: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 10), gridspec_kw={"height_ratios": [1, 1.8]})
    large = res["large_ms"]
    names = list(large)
    colors = ["tab:green" if k.startswith("ringfeed") else "tab:olive" if k.startswith("floor") else "tab:gray" for k in names]
    ax1.barh(names, [large[k] for k in names], color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("ms (log scale), median")
    ax1.set_title(f"{res['params']['rows']:,}-row bar batch → polars DataFrame in another process")
    ax1.invert_yaxis()
    for i, k in enumerate(names):
        ax1.text(large[k], i, f" {large[k]:.3g} ms", va="center", fontsize=8)
    small = {k: v["total"] for k, v in res["small_us"].items() if isinstance(v, dict) and "total" in v}
    names = list(small)
    y = np.arange(len(names))
    ax2.barh(y - 0.2, [small[k]["p50"] for k in names], height=0.4, label="p50", color="tab:blue")
    ax2.barh(y + 0.2, [small[k]["p99"] for k in names], height=0.4, label="p99", color="tab:orange")
    ax2.set_yticks(y, names)
    ax2.set_xscale("log")
    ax2.set_xlabel("µs (log scale)")
    ax2.set_title(f"{res['params']['small_rows']}-row batch, one-way to a polars DataFrame (publish call → DataFrame)")
    ax2.invert_yaxis()
    ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for i, k in enumerate(names):
        ax2.text(small[k]["p50"], i - 0.2, f" {small[k]['p50']:.0f}", va="center", fontsize=8)
    la = res["machine"]["loadavg_before"]
    fig.suptitle(f"ringfeed Python benchmark — {res['machine']['cpus']} vCPUs, load average {la[0]:.2f} at start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--interval-us", type=int, default=1000)
    ap.add_argument("--small-rows", type=int, default=1, help="rows per small batch")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_python.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench_python.png")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.messages, args.rows = 3, 300, 200_000
    os.environ.setdefault("RINGFEED_SHM_DIR", "/dev/shm")
    res = run(args)
    res["ratios"] = ratios(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(res, indent=2, ensure_ascii=False))
    plot(res, args.plot)


if __name__ == "__main__":
    main()
