"""The daemon from Python, in three roles used by scripts/demo.sh:
  python daemon_demo.py feed SOCKET N      append N live minutes for 3 symbols
  python daemon_demo.py subscribe SOCKET   print live 1m batches and 5m rollups
  python daemon_demo.py query SOCKET       1h bars from history, zero-copy proof"""
import sys, time
import polars as pl
import ringfeed as rf

role, sock = sys.argv[1], sys.argv[2]
c = rf.connect(sock)
SYMS, MIN = ["BTCUSDT", "ETHUSDT", "SOLUSDT"], 60_000_000_000
if role == "feed":
    last = c.bars("crypto", SYMS[0], "1m", limit=1, from_end=True)["ts"].cast(pl.Int64)[0]
    for k in range(1, int(sys.argv[3]) + 1):
        ts = last + k * MIN
        px = [42000.0 + k, 3000.0 + k / 10, 150.0 + k / 100]
        c.append("crypto", pl.DataFrame({"ts": pl.Series([ts] * 3).cast(pl.Datetime("ns", "UTC")), "symbol": SYMS,
                                         "open": px, "high": [p + 1 for p in px], "low": [p - 1 for p in px],
                                         "close": [p + 0.5 for p in px], "volume": [1.0] * 3}))
        time.sleep(0.2)
elif role == "subscribe":
    s1, s5 = c.subscribe("crypto", "1m"), c.subscribe("crypto", "5m")
    while True:
        for tf, r in (("1m", s1), ("5m", s5)):
            try:
                b = r.read(timeout=0.05)
            except rf.ClosedError:
                sys.exit(0)
            if b is not None:
                us = (time.time_ns() - b.ts_ns) / 1e3
                df = b.to_polars()
                print(f"python {tf} seq {b.seq:>3} rows {len(b)} last close {df['close'][-1]:>9.2f} "
                      f"latency {us:6.0f} us zero-copy {b.is_zero_copy}", flush=True)
else:
    for attempt in ("cold", "warm"):
        t = time.perf_counter()
        df = c.bars("crypto", "BTCUSDT", "1h", start="2021-01-01", end="2021-01-03")
        ms = (time.perf_counter() - t) * 1e3
        print(f"python query 1h BTCUSDT ({attempt}): {df.height} bars in {ms:.2f} ms")
    t = c.bars_arrow("crypto", None, "1m")
    buf = t.column("close").chunk(0).buffers()[1]
    print(f"python query 1m all symbols: {t.num_rows} rows; close buffer at {buf.address:#x} "
          f"(inside the daemon's shared-memory arena, not a copy)")
    print(df.head(3))
