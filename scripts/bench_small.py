#!/usr/bin/env python3
"""Small batches between two Python processes (issue 17): ringfeed against the best
hand-written baselines, with a per-step split, in one run.

Setup, the same for every way: a publisher process and a subscriber process. The
publisher sends one batch every ``--interval-us`` (default 1 ms, absolute pacing, no
acknowledgement), so the subscriber sleeps between batches and every number includes
its wake-up. The publisher reads ``CLOCK_MONOTONIC`` (``time.monotonic_ns``, one clock
for the whole machine) just before it hands the batch over; the stamps travel in a side
channel (lists each process sends to the parent at the end), never in the batch. The
subscriber stamps when it holds a polars DataFrame.

Ways:

- **ringfeed**: ``Writer.write(batch)`` → ``Reader.read()`` → ``Batch.to_polars()``,
  futex mode, and with a spin budget ≥ the pace.
- **unix socket**: the best a user writes: ``RecordBatch.serialize()`` (the record-batch
  message only, no schema) and one ``sendmsg`` of a 16-byte header (seq, length) and the
  body; the subscriber ``recv_into`` a preallocated 64-byte-aligned buffer (looping until
  the whole message is in) and ``pa.ipc.read_record_batch(buf, known_schema)``, then
  ``pl.DataFrame(batch)``.
- **iceoryx2** (if installed): the same bytes (header + serialized body) in a
  publish-subscribe slice; the subscriber waits on an event (event wake) or polls
  ``receive()`` in a loop (busy-poll).

Per-step split, p50/p99 each (µs), in the cross-process run itself:

- ``send``: the writer call (ringfeed ``write()``; socket ``serialize()`` + ``sendmsg``),
  and for ringfeed the part of it before the commit (``encode``: the import of the
  frame, checks, the copy into the slot) from the ring's publish time (CLOCK_REALTIME,
  mapped to CLOCK_MONOTONIC with the offset both processes share);
- ``wake``: from the writer call's return to the subscriber's read returning (ringfeed:
  ``read()`` returned; socket: the last ``recv_into`` returned);
- ``decode``: socket ``read_record_batch`` (ringfeed's decode is inside ``read()``; its
  cost alone is the ``read() itself`` calibration row: the subscriber sleeps past the
  write, then times a ``read(0)`` of the batch already there, caches cold after the sleep);
- ``to_df``: to the DataFrame.

``--throughput`` adds: a Rust writer (``ringfeed-arrow`` example ``paced_publish``)
publishing one-row batches at ``--rate`` per second while a Python reader turns each into
a DataFrame (``read`` + ``to_polars``), and coalescing (``read_many`` + ``to_polars``):
batches, rows/s, and batches lost to lag.

    .venv/bin/python scripts/bench_small.py [--quick] [--rows 1] [--throughput]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import platform
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import pyarrow as pa

import ringfeed as rf

ROOT = Path(__file__).resolve().parents[1]
now = time.monotonic_ns
HDR = struct.Struct("<QQ")  # seq, body length


# --------------------------------------------------------------------------- data


def small_batch(rows: int) -> pa.RecordBatch:
    """`rows` bar rows of `rf.bar_schema()` (ts, symbol as string_view, OHLCV)."""
    j = np.arange(rows, dtype=np.int64)
    opens = 100.0 + 0.5 * j
    syms = pa.array(np.array(["S0", "S1", "S2", "S3"])[j % 4]).cast(pa.string_view())
    return pa.record_batch(
        [
            pa.array(1_700_000_000_000_000_000 + j, pa.timestamp("ns", "UTC")),
            syms,
            pa.array(opens),
            pa.array(opens + 1),
            pa.array(opens - 1),
            pa.array(opens + 0.25),
            pa.array(j.astype(np.float64)),
        ],
        schema=rf.bar_schema(),
    )


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def clock_offset() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC in ns (the same in every process), best of 50."""
    best = None
    for _ in range(50):
        a = time.monotonic_ns()
        r = time.time_ns()
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, r - (a + b) // 2)
    assert best is not None
    return best[1]


def pace(n: int, interval_ns: int, send: Callable[[int], None]) -> None:
    """Calls send(i) for i in 0..n at absolute times `interval_ns` apart."""
    nxt = now() + 20 * interval_ns
    for i in range(n):
        d = nxt - now()
        if d > 0:
            time.sleep(d / 1e9)
        send(i)
        nxt += interval_ns


def result(conn: Any, p: Any, timeout: float = 60.0) -> Any:
    """The child's answer; kills it and raises if none comes within `timeout` s."""
    if not conn.poll(timeout):
        p.kill()
        raise TimeoutError(f"no answer from the subscriber within {timeout} s")
    out = conn.recv()
    p.join(30)
    return out


def spawn(target: Callable[..., None], *args: Any, env: dict[str, str] | None = None) -> tuple[Any, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=target, args=(*args, child))
    saved = dict(os.environ)
    os.environ.update(env or {})  # a spawned child takes the environment at start
    try:
        p.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return p, parent


# ------------------------------------------------------------------ ringfeed


def rf_reader(name: str, n: int, spin_us: int, mode: str, conn: Any) -> None:
    r = rf.Reader.open(name, start="next", spin_us=spin_us, wait=60)
    seqs, t_read, t_df, t_commit = [], [], [], []
    read_only: list[float] = []
    pl.DataFrame(small_batch(1))  # polars imported and warm, as in every way
    conn.send("ready")
    first = r.read(30)  # the writer's warm-up batch (seq 1), not timed
    assert first is not None and first.seq == 1
    del first
    told = 0  # calibrate: writes announced (a lag loses batches, not announcements)
    while len(seqs) < n and told < n:
        if mode == "calibrate":
            # Sleep past the write, then time read() of a batch already there.
            time.sleep(conn.recv() / 1e9)
            told += 1
            a = now()
            try:
                b = r.read(0)
            except rf.LaggedError:  # descheduled for > 64 batches on a loaded machine
                continue
            c = now()
            if b is None:
                continue
            read_only.append((c - a) / 1e3)
        else:
            try:
                b = r.read(30)
            except rf.LaggedError:
                continue
            c = now()
            if b is None:
                break
        df = b.to_polars()
        d = now()
        seqs.append(b.seq)
        t_read.append(c)
        t_df.append(d)
        t_commit.append(b.ts_ns)
        del df, b
    conn.send({"seq": seqs, "read": t_read, "df": t_df, "commit_rt": t_commit, "read_only_us": read_only})


def bench_ringfeed(n: int, interval_ns: int, rows: int, spin_us: int = 0, mode: str = "wake") -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    batch = small_batch(rows)
    w = rf.Writer.create(name, batch.schema, slots=64, slot_bytes=64 << 10, max_readers=1, leases_per_reader=4)
    p, conn = spawn(rf_reader, name, n, spin_us, mode)
    assert conn.recv() == "ready"
    w.write(batch)  # warm the writer's path; the reader reads it (seq 1) and it is dropped below
    t0s, t1s = [0] * n, [0] * n

    def send(i: int) -> None:
        t0 = now()
        seq = w.write(batch)
        t1 = now()
        t0s[seq - 2], t1s[seq - 2] = t0, t1
        if mode == "calibrate":
            conn.send(interval_ns // 2)

    pace(n, interval_ns, send)
    got = result(conn, p)
    w.close()
    off = clock_offset()
    steps: dict[str, list[float]] = {k: [] for k in ("total", "send", "encode", "wake", "to_df")}
    for seq, tr, td, tc in zip(got["seq"], got["read"], got["df"], got["commit_rt"]):
        i = seq - 2
        if i < 0:
            continue
        t0, t1 = t0s[i], t1s[i]
        steps["total"].append((td - t0) / 1e3)
        steps["send"].append((t1 - t0) / 1e3)
        steps["encode"].append((tc - off - t0) / 1e3)
        steps["wake"].append((tr - t1) / 1e3)
        steps["to_df"].append((td - tr) / 1e3)
    if mode == "calibrate":
        return {"read() itself": got["read_only_us"], "to_df": steps["to_df"]}
    return steps


# ------------------------------------------------------------------ unix socket


def aligned_buffer(size: int) -> memoryview:
    raw = np.empty(size + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return memoryview(raw[off : off + size])  # type: ignore[arg-type]


def socket_reader(sock: socket.socket, n: int, rows: int, conn: Any) -> None:
    schema = small_batch(rows).schema  # the known schema: nothing of it travels
    buf = aligned_buffer(1 << 20)
    have = 0  # bytes in buf not yet consumed (a stream may coalesce messages)
    pbuf = pa.py_buffer(buf)
    pl.DataFrame(small_batch(1))
    conn.send("ready")
    seqs, t_recv, t_dec, t_df = [], [], [], []
    for _ in range(n):
        while have < HDR.size:
            have += sock.recv_into(buf[have:])
        seq, length = HDR.unpack_from(buf)
        end = HDR.size + length
        while have < end:
            have += sock.recv_into(buf[have:])
        a = now()
        batch = pa.ipc.read_record_batch(pbuf.slice(HDR.size, length), schema)
        b = now()
        df = pl.DataFrame(batch)
        c = now()
        seqs.append(seq)
        t_recv.append(a)
        t_dec.append(b)
        t_df.append(c)
        del df, batch
        if have > end:  # the next message's first bytes: move them to the front
            buf[: have - end] = buf[end:have]
        have -= end
    conn.send({"seq": seqs, "recv": t_recv, "dec": t_dec, "df": t_df})


def bench_socket(n: int, interval_ns: int, rows: int) -> dict[str, Any]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p, conn = spawn(socket_reader, b, n, rows)
    assert conn.recv() == "ready"
    batch = small_batch(rows)
    t0s, tes, t1s = [0] * n, [0] * n, [0] * n

    def send(i: int) -> None:
        t0 = now()
        body = batch.serialize()
        te = now()
        a.sendmsg([HDR.pack(i, body.size), body])
        t1 = now()
        t0s[i], tes[i], t1s[i] = t0, te, t1

    pace(n, interval_ns, send)
    got = result(conn, p)
    a.close()
    steps: dict[str, list[float]] = {k: [] for k in ("total", "send", "encode", "wake", "decode", "to_df")}
    for i, tr, td, tf in zip(got["seq"], got["recv"], got["dec"], got["df"]):
        steps["total"].append((tf - t0s[i]) / 1e3)
        steps["send"].append((t1s[i] - t0s[i]) / 1e3)
        steps["encode"].append((tes[i] - t0s[i]) / 1e3)
        steps["wake"].append((tr - t1s[i]) / 1e3)
        steps["decode"].append((td - tr) / 1e3)
        steps["to_df"].append((tf - td) / 1e3)
    return steps


# ------------------------------------------------------------------ iceoryx2


def iox_reader(service: str, n: int, rows: int, busy: bool, conn: Any) -> None:
    import iceoryx2 as iox2

    schema = small_batch(rows).schema
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    sname = iox2.ServiceName.new(service)
    pubsub = node.service_builder(sname).publish_subscribe(iox2.Slice[ctypes.c_uint8]).open_or_create()
    sub = pubsub.subscriber_builder().create()
    listener = node.service_builder(sname).event().open_or_create().listener_builder().create()
    pl.DataFrame(small_batch(1))
    conn.send("ready")
    seqs, t_recv, t_dec, t_df = [], [], [], []
    deadline = time.monotonic() + 30
    while len(seqs) < n and time.monotonic() < deadline:
        sample = sub.receive()
        if sample is None:
            if not busy:
                listener.timed_wait(iox2.Duration.from_millis(100))
            continue
        a = now()
        view = sample.payload().as_memory_view()
        seq, length = HDR.unpack_from(view)
        batch = pa.ipc.read_record_batch(pa.py_buffer(view).slice(HDR.size, length), schema)
        b = now()
        df = pl.DataFrame(batch)
        c = now()
        seqs.append(seq)
        t_recv.append(a)
        t_dec.append(b)
        t_df.append(c)
        del df, batch, view, sample
    conn.send({"seq": seqs, "recv": t_recv, "dec": t_dec, "df": t_df})


def bench_iceoryx2(n: int, interval_ns: int, rows: int, busy: bool) -> dict[str, Any] | str:
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
    p, conn = spawn(iox_reader, service, n, rows, busy)
    assert conn.recv() == "ready"
    time.sleep(0.2)
    publisher.update_connections()  # the subscriber attached after the publisher was made
    batch = small_batch(rows)
    t0s, tes, t1s = [0] * n, [0] * n, [0] * n

    def send(i: int) -> None:
        t0 = now()
        body = batch.serialize()
        te = now()
        sample = publisher.loan_slice_uninit(HDR.size + body.size)
        ptr = sample.payload().as_ptr()
        hdr = HDR.pack(i, body.size)
        ctypes.memmove(ptr, hdr, HDR.size)
        ctypes.memmove(ptr + HDR.size, body.address, body.size)
        sample.assume_init().send()
        if not busy:
            notifier.notify()
        t1 = now()
        t0s[i], tes[i], t1s[i] = t0, te, t1

    pace(n, interval_ns, send)
    got = result(conn, p)
    steps: dict[str, list[float]] = {k: [] for k in ("total", "send", "encode", "wake", "decode", "to_df")}
    for i, tr, td, tf in zip(got["seq"], got["recv"], got["dec"], got["df"]):
        steps["total"].append((tf - t0s[i]) / 1e3)
        steps["send"].append((t1s[i] - t0s[i]) / 1e3)
        steps["encode"].append((tes[i] - t0s[i]) / 1e3)
        steps["wake"].append((tr - t1s[i]) / 1e3)
        steps["decode"].append((td - tr) / 1e3)
        steps["to_df"].append((tf - td) / 1e3)
    return steps


# ------------------------------------------------------------------ floors


def pipe_reader(bell: Any, n: int, conn: Any) -> None:
    t = []
    conn.send("ready")
    for _ in range(n):
        bell.recv_bytes()
        t.append(now())
    conn.send(t)


def bench_pipe(n: int, interval_ns: int) -> dict[str, Any]:
    """A bare pipe wake-up between two Python processes: the floor of any notified hand-off."""
    ctx = mp.get_context("spawn")
    bell_r, bell_w = ctx.Pipe(duplex=False)
    p, conn = spawn(pipe_reader, bell_r, n)
    assert conn.recv() == "ready"
    t0s = [0] * n

    def send(i: int) -> None:
        t0s[i] = now()
        bell_w.send_bytes(b"x")

    pace(n, interval_ns, send)
    got = result(conn, p)
    return {"total": [(b - a) / 1e3 for a, b in zip(t0s, got)]}


# ------------------------------------------------------------------ throughput


def paced_publisher() -> Path | None:
    exe = ROOT / "target" / "release" / "examples" / "paced_publish"
    if not exe.exists():
        print("building the paced publisher (cargo build --release -p ringfeed-arrow --example paced_publish)", file=sys.stderr)
        r = subprocess.run(["cargo", "build", "--release", "-q", "-p", "ringfeed-arrow", "--example", "paced_publish"], cwd=ROOT)
        if r.returncode != 0:
            return None
    return exe


def bench_throughput(rate: int, seconds: float, rows: int, coalesce: bool) -> dict[str, Any] | str:
    exe = paced_publisher()
    if exe is None:
        return "failed: could not build the paced publisher"
    name = f"bench-{uuid.uuid4().hex[:8]}"
    count = int(rate * seconds)
    pub = subprocess.Popen([str(exe), name, str(rate), str(count), str(rows)], stdout=subprocess.PIPE, text=True)
    r = rf.Reader.open(name, start="oldest", wait=30)
    batches = frames = got_rows = lagged = missed = 0
    t_first = t_last = 0
    while True:
        try:
            if coalesce:
                b = r.read_many(5)
            else:
                b = r.read(5)
        except rf.LaggedError as e:
            lagged += 1
            missed += getattr(e, "missed", 0) or 0
            continue
        except rf.ClosedError:
            break
        if b is None:
            break
        df = b.to_polars()
        t_last = now()
        if not t_first:
            t_first = t_last
        frames += 1
        got_rows += df.height
        batches += b.batches if coalesce else 1
        del df, b
    out = pub.communicate(timeout=60)[0]
    pub_stats = json.loads(out.strip().splitlines()[-1])
    secs = (t_last - t_first) / 1e9 if t_last > t_first else float("nan")
    return {
        "published": pub_stats["batches"],
        "publisher_rate_per_s": pub_stats["rate_per_s"],
        "received_batches": batches,
        "frames": frames,
        "rows": got_rows,
        "lag_errors": lagged,
        "missed": missed,
        "batches_per_s": batches / secs,
        "rows_per_s": got_rows / secs,
        "frames_per_s": frames / secs,
    }


# ------------------------------------------------------------------ main


def summarise(steps: dict[str, list[float]]) -> dict[str, Any]:
    return {k: {"p50": round(pct(v, 50), 1), "p99": round(pct(v, 99), 1), "n": len(v)} for k, v in steps.items() if v}


def run_small(n: int, interval_us: int, rows: int, throughput: bool = False, rate: int = 20_000, seconds: float = 3.0) -> dict[str, Any]:
    iv = interval_us * 1000
    ways: list[tuple[str, Callable[[], Any]]] = [
        ("floor: pipe wake-up alone (no frame)", lambda: bench_pipe(n, iv)),
        ("ringfeed (futex)", lambda: bench_ringfeed(n, iv, rows)),
        ("ringfeed: read() itself (batch already there, after a sleep)", lambda: bench_ringfeed(n, iv, rows, mode="calibrate")),
        (f"ringfeed (spin {2 * interval_us} µs ≥ pace)", lambda: bench_ringfeed(n, iv, rows, spin_us=2 * interval_us)),
        ("unix socket (serialize + sendmsg, recv_into + read_record_batch)", lambda: bench_socket(n, iv, rows)),
        ("iceoryx2 (event wake)", lambda: bench_iceoryx2(n, iv, rows, busy=False)),
        ("iceoryx2 (busy-poll)", lambda: bench_iceoryx2(n, iv, rows, busy=True)),
    ]
    res: dict[str, Any] = {}
    for label, fn in ways:
        print(f"small: {label}", file=sys.stderr)
        try:
            out = fn()
        except Exception as e:  # a baseline that cannot run here is reported, not fatal
            res[label] = f"failed: {type(e).__name__}: {e}"
            continue
        res[label] = out if isinstance(out, str) else summarise(out)
    if throughput:
        for label, co in (("read + to_polars per batch", False), ("read_many + to_polars (coalesced)", True)):
            key = f"throughput: Rust writer {rate}/s → Python reader, {label}"
            print(f"small: {key}", file=sys.stderr)
            try:
                res[key] = bench_throughput(rate, seconds, rows, co)
            except Exception as e:
                res[key] = f"failed: {type(e).__name__}: {e}"
    return res


def table(res: dict[str, Any]) -> str:
    cols = ("total", "send", "encode", "wake", "decode", "read() itself", "to_df")
    lines = ["| way | " + " | ".join(f"{c} p50 / p99" for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, v in res.items():
        if isinstance(v, str):
            lines.append(f"| {label} | {v} |" + " |" * (len(cols) - 1))
        elif "rows_per_s" not in v:
            cells = [f"{v[c]['p50']:.1f} / {v[c]['p99']:.1f}" if c in v else "" for c in cols]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, v in res.items():
        if isinstance(v, dict) and "rows_per_s" in v:
            lines.append(f"\n{label}: " + ", ".join(f"{k} {v[k]:.0f}" if isinstance(v[k], float) else f"{k} {v[k]}" for k in v))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--interval-us", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--throughput", action="store_true", help="add the Rust writer → Python reader rate run")
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--quick", action="store_true", help="500 messages per way (about 30 s)")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench_small.json")
    args = ap.parse_args()
    if args.quick:
        args.messages = 500
    os.environ.setdefault("RINGFEED_SHM_DIR", "/dev/shm")
    started = time.time()
    res: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
            "pyarrow": pa.__version__,
            "loadavg_before": os.getloadavg(),
        },
        "params": {"messages": args.messages, "interval_us": args.interval_us, "rows": args.rows},
    }
    res["small_us"] = run_small(args.messages, args.interval_us, args.rows, args.throughput, args.rate, args.seconds)
    res["machine"]["loadavg_after"] = os.getloadavg()
    res["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print(table(res["small_us"]))
    print(f"load {res['machine']['loadavg_before']} → {res['machine']['loadavg_after']}, {res['seconds']} s; raw: {args.out}")


if __name__ == "__main__":
    main()
