"""Publish one bar per symbol every second into ring "bars.demo" (Ctrl-C stops).
Run: python publisher.py [count] [interval_s]; then subscriber.py in another terminal."""
import sys
import time
from datetime import datetime, timezone

import polars as pl

import ringfeed as rf

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]

with rf.Writer.create("bars.demo", rf.bar_schema(), on_full="overwrite", force=True) as w:
    print("publishing to bars.demo; start subscriber.py")
    for i in range(count):
        now = datetime.now(timezone.utc)
        px = [100.0 + i, 200.0 + i, 300.0 + i]
        df = pl.DataFrame({
            "ts": [now] * 3, "symbol": symbols,
            "open": px, "high": [p + 1 for p in px], "low": [p - 1 for p in px],
            "close": [p + 0.5 for p in px], "volume": [1.0, 2.0, 3.0],
        }).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
        seq = w.write(df)  # one copy into shared memory; readers get it zero-copy
        print(f"published seq {seq}")
        time.sleep(interval)
