"""Print every batch published to ring "bars.demo" (Ctrl-C stops).
Run: python subscriber.py [count]; it waits for publisher.py to start."""
import sys
import time

import ringfeed as rf

limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
with rf.Reader.open("bars.demo", start="latest", wait=3600) as r:
    for n, batch in enumerate(r, 1):  # blocks; ends when the publisher closes the ring
        lag_us = (time.time_ns() - batch.ts_ns) / 1000
        df = batch.to_polars()  # zero-copy: the columns point into shared memory
        print(f"seq {batch.seq}, received {lag_us:.0f} us after publish")
        print(df)
        if limit is not None and n >= limit:
            break
