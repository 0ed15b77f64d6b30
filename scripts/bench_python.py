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
2. **Small batch** (10 bar rows) one-way latency, p50/p99, from just before
   the sender hands the frame over to the moment the receiver holds a polars
   DataFrame. The send time travels inside the frame (CLOCK_MONOTONIC is
   system-wide). Senders pace at ~1 ms, so receivers sleep between messages:
   the numbers include the kernel's wake-up.
   - ringfeed (futex) and ringfeed with a spin budget, unix socket + Arrow
     IPC, Arrow Flight do_put, shared_memory + pickle + pipe, and iceoryx2's
     Python package (event + publish-subscribe) if it is installed.

Every DataFrame is built with `pl.DataFrame(obj)` (the PyCapsule route).
Run with the project venv (scripts/test_python.sh makes it; `pip install
matplotlib iceoryx2` for the plot and the iceoryx2 row):

    .venv/bin/python scripts/bench_python.py [--quick] [--out docs/bench_python.json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import pickle
import platform
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.flight as flight

import ringfeed as rf

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


class SmallFrame:
    """A 10-row bar batch whose first ts is rewritten in place before every send
    (the numpy buffer backs the Arrow array without a copy)."""

    def __init__(self, rows: int = 10) -> None:
        base = bar_table(1, rows)
        self.ts = np.zeros(rows, dtype=np.int64)
        ts = pa.Array.from_buffers(pa.timestamp("ns", "UTC"), rows, [None, pa.py_buffer(self.ts)])
        self.batch = pa.record_batch([ts, *base.columns[1:]], schema=base.schema)

    def stamp(self) -> pa.RecordBatch:
        self.ts[0] = now()
        return self.batch


def sent_at(df: pl.DataFrame) -> int:
    return int(df["ts"].dt.epoch("ns")[0])


def ipc_bytes(batch: pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue()


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
    def __init__(self, location: str, table: pa.Table | None = None, conn: Any = None) -> None:
        super().__init__(location)
        self.table = table
        self.conn = conn

    def do_get(self, context: Any, ticket: Any) -> Any:
        assert self.table is not None
        return flight.RecordBatchStream(self.table)

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> None:
        lat = []
        for chunk in reader:
            df = pl.DataFrame(chunk.data)
            t = now()
            lat.append((t - sent_at(df)) / 1e3)
        self.conn.send(lat)


def flight_server(rows: int, port_conn: Any) -> None:
    table = pa.Table.from_batches([bar_table(1, rows)])
    server = TableServer("grpc://127.0.0.1:0", table=table, conn=port_conn)
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


def small_ringfeed_reader(name: str, spin_us: int, conn: Any) -> None:
    r = rf.Reader.open(name, start="next", spin_us=spin_us, wait=60)
    conn.send("ready")
    lat, commit = [], []
    for b in r:
        df = pl.DataFrame(b)
        t, wall = now(), time.time_ns()
        lat.append((t - sent_at(df)) / 1e3)
        commit.append((wall - b.ts_ns) / 1e3)
        del df, b
        conn.send(1)  # ack (not timed)
    conn.send((lat, commit))


def bench_small_ringfeed(n: int, interval: float, spin_us: int, env: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    frame = SmallFrame()
    w = rf.Writer.create(name, frame.batch.schema, slots=8, slot_bytes=64 << 10, max_readers=1, leases_per_reader=2)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=small_ringfeed_reader, args=(name, spin_us, child))
    saved = dict(os.environ)
    os.environ.update(env or {})  # a spawned child takes the environment at start
    try:
        p.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert parent.recv() == "ready"
    for _ in range(n):
        time.sleep(interval)
        w.write(frame.stamp())
        parent.recv()
    w.close()
    lat, commit = parent.recv()
    p.join(30)
    return lat, commit


def small_pipe_reader(bell: Any, n: int, conn: Any) -> None:
    lat = []
    for _ in range(n):
        (t0,) = struct.unpack("q", bell.recv_bytes())
        lat.append((now() - t0) / 1e3)
        conn.send(1)
    conn.send(lat)


def bench_small_pipe(n: int, interval: float) -> list[float]:
    """The floor for any notified hand-off: a bare pipe wake-up, no frame at all."""
    ctx = mp.get_context("spawn")
    bell_r, bell_w = ctx.Pipe(duplex=False)
    parent, child = ctx.Pipe()
    p = ctx.Process(target=small_pipe_reader, args=(bell_r, n, child))
    p.start()
    for _ in range(n):
        time.sleep(interval)
        bell_w.send_bytes(struct.pack("q", now()))
        parent.recv()
    lat = parent.recv()
    p.join(30)
    return lat


def bench_small_in_process(n: int) -> list[float]:
    """The floor of the Python API itself: write, read and pl.DataFrame in one
    process, no wake-up."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    frame = SmallFrame()
    w = rf.Writer.create(name, frame.batch.schema, slots=8, slot_bytes=64 << 10, max_readers=1, leases_per_reader=2)
    r = rf.Reader.open(name, start="next")
    lat = []
    for _ in range(n):
        w.write(frame.stamp())
        b = r.read(0)
        df = pl.DataFrame(b)
        lat.append((now() - sent_at(df)) / 1e3)
        del df, b
    w.close()
    return lat


def small_socket_reader(sock: socket.socket, n: int, conn: Any) -> None:
    lat = []
    f = sock.makefile("rb")
    for _ in range(n):
        (length,) = struct.unpack("q", f.read(8))
        buf = f.read(length)
        df = pl.DataFrame(pa.ipc.open_stream(buf).read_next_batch())
        lat.append((now() - sent_at(df)) / 1e3)
        conn.send(1)
    conn.send(lat)


def bench_small_socket(n: int, interval: float) -> list[float]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=small_socket_reader, args=(b, n, child))
    p.start()
    frame = SmallFrame()
    for _ in range(n):
        time.sleep(interval)
        data = ipc_bytes(frame.stamp())
        a.sendall(struct.pack("q", data.size) + data.to_pybytes())
        parent.recv()
    lat = parent.recv()
    p.join(30)
    return lat


def small_pickle_reader(shm_name: str, bell: Any, n: int, conn: Any) -> None:
    shm = shared_memory.SharedMemory(shm_name)
    lat = []
    for _ in range(n):
        (length,) = struct.unpack("q", bell.recv_bytes())
        df = pickle.loads(shm.buf[:length])
        lat.append((now() - sent_at(df)) / 1e3)
        del df
        conn.send(1)
    shm.close()
    conn.send(lat)


def bench_small_pickle(n: int, interval: float) -> list[float]:
    shm = shared_memory.SharedMemory(create=True, size=1 << 20)
    ctx = mp.get_context("spawn")
    bell_r, bell_w = ctx.Pipe(duplex=False)
    parent, child = ctx.Pipe()
    p = ctx.Process(target=small_pickle_reader, args=(shm.name, bell_r, n, child))
    p.start()
    frame = SmallFrame()
    for _ in range(n):
        time.sleep(interval)
        b = frame.stamp()
        data = pickle.dumps(pl.DataFrame(b), protocol=5)
        shm.buf[: len(data)] = data
        bell_w.send_bytes(struct.pack("q", len(data)))
        parent.recv()
    lat = parent.recv()
    p.join(30)
    shm.close()
    shm.unlink()
    return lat


def flight_put_server(conn: Any) -> None:
    server = TableServer("grpc://127.0.0.1:0", conn=conn)
    conn.send(server.port)
    server.serve()


def bench_small_flight(n: int, interval: float) -> list[float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=flight_put_server, args=(child,), daemon=True)
    p.start()
    port = parent.recv()
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    frame = SmallFrame()
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("small"), frame.batch.schema)
    for _ in range(n):
        time.sleep(interval)
        writer.write_batch(frame.stamp())
    writer.close()
    lat = parent.recv()
    client.close()
    p.kill()
    return lat


def small_iox_reader(service: str, n: int, conn: Any) -> None:
    import iceoryx2 as iox2

    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    sname = iox2.ServiceName.new(service)
    pubsub = node.service_builder(sname).publish_subscribe(iox2.Slice[ctypes.c_uint8]).open_or_create()
    sub = pubsub.subscriber_builder().create()
    listener = node.service_builder(sname).event().open_or_create().listener_builder().create()
    conn.send("ready")
    lat: list[float] = []
    while len(lat) < n:
        listener.timed_wait(iox2.Duration.from_secs(5))
        while True:
            sample = sub.receive()
            if sample is None:
                break
            view = sample.payload().as_memory_view()
            df = pl.DataFrame(pa.ipc.open_stream(pa.py_buffer(view)).read_next_batch())
            lat.append((now() - sent_at(df)) / 1e3)
            del df, view, sample
            conn.send(1)
    conn.send(lat)


def bench_small_iceoryx2(n: int, interval: float) -> list[float] | str:
    try:
        import iceoryx2 as iox2
    except ImportError as e:
        return f"not installed ({e})"
    service = f"ringfeed-bench/{uuid.uuid4().hex[:8]}"
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    sname = iox2.ServiceName.new(service)
    pubsub = node.service_builder(sname).publish_subscribe(iox2.Slice[ctypes.c_uint8]).open_or_create()
    publisher = pubsub.publisher_builder().initial_max_slice_len(64 << 10).create()
    notifier = node.service_builder(sname).event().open_or_create().notifier_builder().create()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=small_iox_reader, args=(service, n, child))
    p.start()
    assert parent.recv() == "ready"
    time.sleep(0.2)
    frame = SmallFrame()
    for _ in range(n):
        time.sleep(interval)
        data = ipc_bytes(frame.stamp())
        sample = publisher.loan_slice_uninit(data.size)
        ctypes.memmove(sample.payload().as_ptr(), data.address, data.size)
        sample.assume_init().send()
        notifier.notify()
        parent.recv()
    lat = parent.recv()
    p.join(30)
    return lat


# ------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows, reps, n, interval = args.rows, args.reps, args.messages, args.interval_us / 1e6
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
        "params": {"rows": rows, "reps": reps, "small_messages": n, "small_interval_us": args.interval_us},
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

    small: dict[str, Any] = {}
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("floor: pipe wake-up alone (no frame)", lambda: bench_small_pipe(n, interval)),
        ("floor: ringfeed write+read+DataFrame in one process (no wake-up)", lambda: bench_small_in_process(n)),
        ("ringfeed (futex)", lambda: bench_small_ringfeed(n, interval, 0)),
        ("ringfeed (futex), reader with POLARS_MAX_THREADS=1", lambda: bench_small_ringfeed(n, interval, 0, {"POLARS_MAX_THREADS": "1"})),
        ("ringfeed (spin 2 ms)", lambda: bench_small_ringfeed(n, interval, 2000)),
        ("iceoryx2 (event + pub/sub, Arrow IPC)", lambda: bench_small_iceoryx2(n, interval)),
        ("unix socket + Arrow IPC", lambda: bench_small_socket(n, interval)),
        ("shared_memory + pickle + pipe", lambda: bench_small_pickle(n, interval)),
        ("Arrow Flight do_put over loopback", lambda: bench_small_flight(n, interval)),
    ]
    for label, fn in runs:
        print(f"small: {label}", file=sys.stderr)
        try:
            out = fn()
        except Exception as e:  # a baseline that cannot run here is reported, not fatal
            small[label] = f"failed: {type(e).__name__}: {e}"
            continue
        if isinstance(out, str):
            small[label] = out
            continue
        if isinstance(out, tuple):
            lat, commit = out
            small[label + ", commit → DataFrame"] = {"p50_us": pct(commit, 50), "p99_us": pct(commit, 99), "n": len(commit)}
        else:
            lat = out
        small[label] = {"p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "n": len(lat)}
    res["small_us"] = small
    res["machine"]["loadavg_after"] = os.getloadavg()
    res["seconds"] = round(time.time() - started, 1)
    return res


def ratios(res: dict[str, Any]) -> dict[str, Any]:
    large = res["large_ms"]
    base = large["ringfeed: publish → DataFrame"]
    small = res["small_us"]
    sbase = small["ringfeed (futex)"]["p50_us"]
    return {
        "large_x_slower_than_ringfeed": {
            k: v / base for k, v in large.items() if not k.startswith(("ringfeed", "floor"))
        },
        "small_p50_x_slower_than_ringfeed_futex": {
            k: v["p50_us"] / sbase
            for k, v in small.items()
            if isinstance(v, dict) and not k.startswith(("ringfeed", "floor"))
        },
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
    small = {k: v for k, v in res["small_us"].items() if isinstance(v, dict)}
    names = list(small)
    y = np.arange(len(names))
    ax2.barh(y - 0.2, [small[k]["p50_us"] for k in names], height=0.4, label="p50", color="tab:blue")
    ax2.barh(y + 0.2, [small[k]["p99_us"] for k in names], height=0.4, label="p99", color="tab:orange")
    ax2.set_yticks(y, names)
    ax2.set_xscale("log")
    ax2.set_xlabel("µs (log scale)")
    ax2.set_title("10-row batch, one-way to a polars DataFrame")
    ax2.invert_yaxis()
    ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for i, k in enumerate(names):
        ax2.text(small[k]["p50_us"], i - 0.2, f" {small[k]['p50_us']:.0f}", va="center", fontsize=8)
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
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench_python.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench_python.png")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.messages = 3, 200
    os.environ.setdefault("RINGFEED_SHM_DIR", "/dev/shm")
    res = run(args)
    res["ratios"] = ratios(res)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(res, indent=2, ensure_ascii=False))
    plot(res, args.plot)


if __name__ == "__main__":
    main()
