"""Python twin of `rf-xtest publish|subscribe` (see crates/xtest/README.md):
same flags, same bar formula, same one-line JSON, so the cross-language
matrix can pair any writer with any reader."""
import argparse
import json
import sys
import time

import pyarrow as pa
import ringfeed as rf


def bars(seq: int, rows: int) -> pa.RecordBatch:
    j = range(rows)
    opens = [seq + 0.5 * k for k in j]
    cols = [
        pa.array([seq * 1_000_000_000 + k for k in j], pa.timestamp("ns", tz="UTC")),
        pa.array([f"S{k % 4}" for k in j], pa.string_view()),
        pa.array(opens, pa.float64()),
        pa.array([o + 1.0 for o in opens], pa.float64()),
        pa.array([o - 1.0 for o in opens], pa.float64()),
        pa.array([o + 0.25 for o in opens], pa.float64()),
        pa.array([float(k) for k in j], pa.float64()),
    ]
    return pa.RecordBatch.from_arrays(cols, schema=rf.bar_schema())


def check(batch: "rf.Batch", rows: "int | None") -> "str | None":
    """Returns the first wrong cell, or None; also checks every buffer lies in the arena."""
    rb = batch.to_arrow()
    if isinstance(rb, pa.Table):
        rb = rb.combine_chunks().to_batches()[0] if rb.num_rows else None
    if rows is not None and batch.num_rows != rows:
        return f"batch {batch.seq}: {batch.num_rows} rows, expected {rows}"
    want = bars(batch.seq, batch.num_rows)
    if rb is None or not rb.equals(want):
        return f"batch {batch.seq}: contents differ from the formula"
    lo, hi = batch.arena_range
    for col in rb.columns:
        for buf in col.buffers():
            if buf is not None and buf.size > 0 and not (lo <= buf.address and buf.address + buf.size <= hi):
                return f"batch {batch.seq}: buffer at {buf.address:#x} is outside the arena"
    return None


def publish(a: argparse.Namespace) -> int:
    on_full = "block" if a.block_ms is not None else "overwrite"
    timeout = (a.block_ms or 0) / 1000.0
    w = rf.Writer.create(a.name, rf.bar_schema(), slots=a.slots, slot_bytes=a.slot_bytes,
                         on_full=on_full, timeout=timeout if timeout > 0 else 5.0)
    if a.wait_readers and not w.wait_for_readers(a.wait_readers, 30.0):
        print(f"only some of {a.wait_readers} readers came", file=sys.stderr)
        return 1
    for i in range(1, a.batches + 1):
        w.write(bars(i, a.rows))
        if a.interval_us:
            time.sleep(a.interval_us / 1e6)
    print(f"published {a.batches}", flush=True)
    if a.hold:
        while True:
            time.sleep(3600)
    w.close()
    return 0


def subscribe(a: argparse.Namespace) -> int:
    out = {"batches": 0, "first_seq": None, "last_seq": None, "missed": 0,
           "zero_copy": True, "verified": False, "error": None}
    deadline = time.monotonic() + a.timeout_ms / 1000.0
    r = None
    while r is None:
        try:
            r = rf.Reader.open(a.name, start=a.start)
        except rf.ArenaNotFoundError as e:
            if time.monotonic() > deadline:
                out["error"] = str(e)
                print(json.dumps(out))
                return 1
            time.sleep(0.02)
    held, held_copy, expect_next = None, None, None
    try:
        while out["batches"] < a.expect:
            try:
                b = r.read(timeout=a.timeout_ms / 1000.0)
            except rf.LaggedError as e:
                if not a.allow_lag:
                    raise
                out["missed"] += e.missed
                if expect_next is not None:
                    expect_next += e.missed
                continue
            except rf.ClosedError:
                if not a.allow_lag:
                    raise RuntimeError(f"ring closed after {out['batches']} of {a.expect} batches")
                break
            if b is None:
                raise RuntimeError(f"no batch within {a.timeout_ms} ms")
            if expect_next is not None and b.seq != expect_next:
                raise RuntimeError(f"seq {b.seq} after {expect_next - 1}")
            err = check(b, a.rows)
            if err:
                out["zero_copy"] = "outside the arena" not in err
                raise RuntimeError(err)
            out["batches"] += 1
            out["first_seq"] = out["first_seq"] or b.seq
            out["last_seq"] = b.seq
            expect_next = b.seq + 1
            if a.hold_first and held is None:
                held, held_copy = b.to_arrow(), bars(b.seq, b.num_rows)
        if held is not None and not pa.table(held).equals(pa.table(held_copy)):
            raise RuntimeError("the held first batch changed")
        out["verified"] = True
    except Exception as e:  # noqa: BLE001 - reported in the JSON line
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out), flush=True)
    return 0 if out["verified"] else 1


def bars_cmd(a: argparse.Namespace) -> int:
    """`bars`: query the daemon into a polars DataFrame (zero-copy), touch it, hold it."""
    import os

    import polars as pl

    c = rf.connect(a.socket)
    if a.wait_go:
        print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
        sys.stdin.readline()
    start = int(a.start) if a.start and a.start.isdigit() else a.start
    end = int(a.end) if a.end and a.end.isdigit() else a.end
    df = c.bars(a.dataset, a.symbol, a.timeframe, start=start, end=end)
    # Fault in every fixed-width column (max reads every value).
    df.select(pl.exclude(pl.String).max())
    # Zero copy: every buffer behind the frame lies in a mapping of one ringfeed arena file.
    maps = []
    for ln in open("/proc/self/maps"):
        f = ln.split()
        if len(f) >= 6 and os.path.basename(f[5]).startswith("ringfeed."):
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            maps.append((lo, hi, os.path.basename(f[5])[len("ringfeed."):]))
    arenas, zero_copy = set(), True
    for col in df.to_arrow(compat_level=pl.CompatLevel.newest()).columns:
        for chunk in col.chunks:
            for buf in chunk.buffers():
                if buf is None or buf.size == 0:
                    continue
                hit = [m[2] for m in maps if m[0] <= buf.address < m[1]]
                zero_copy = zero_copy and bool(hit)
                arenas.update(hit)
    print(json.dumps({"lang": "python", "pid": os.getpid(), "rows": df.height,
                      "arena": ",".join(sorted(arenas)), "zero_copy": zero_copy,
                      "sum_close": float(df["close"].sum())}), flush=True)
    for _ in sys.stdin:
        pass
    del df
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("publish")
    pp.add_argument("--name", required=True)
    pp.add_argument("--batches", type=int, required=True)
    pp.add_argument("--rows", type=int, required=True)
    pp.add_argument("--slots", type=int, default=8)
    pp.add_argument("--slot-bytes", type=int, default=1 << 20)
    pp.add_argument("--block-ms", type=int)
    pp.add_argument("--wait-readers", type=int, default=0)
    pp.add_argument("--interval-us", type=int, default=0)
    pp.add_argument("--hold", action="store_true")
    ps = sub.add_parser("subscribe")
    ps.add_argument("--name", required=True)
    ps.add_argument("--expect", type=int, required=True)
    ps.add_argument("--start", default="oldest", choices=["oldest", "latest", "next"])
    ps.add_argument("--timeout-ms", type=int, default=30000)
    ps.add_argument("--hold-first", action="store_true")
    ps.add_argument("--allow-lag", action="store_true")
    ps.add_argument("--rows", type=int)
    pb = sub.add_parser("bars")
    pb.add_argument("--socket", required=True)
    pb.add_argument("--dataset", required=True)
    pb.add_argument("--symbol", required=True)
    pb.add_argument("--timeframe", default="1m")
    pb.add_argument("--start")
    pb.add_argument("--end")
    pb.add_argument("--wait-go", action="store_true")
    a = p.parse_args()
    return {"publish": publish, "subscribe": subscribe, "bars": bars_cmd}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
