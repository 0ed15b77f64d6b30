"""Constants and helpers shared by scripts/bench_daemon.py (the parent process),
bench_daemon_workers.py (its worker processes) and bench_daemon_report.py (the summary),
and by the other benchmarks that start a ringfeedd (bench_flight, bench_marketstore,
bench_web). Imports nothing of theirs."""
from __future__ import annotations

import random
import socket
import statistics
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

MIN_NS = 60 * 10**9
# Datasets the daemon creates from its config for the append phase: (name, fsync, rollups).
# `bench` itself (the ingested year) uses the CLI's defaults: fsync always, rollups 5m..1d.
LIVE_DATASETS = [
    ("live_always", "always", None),
    ("live_never", "never", None),
    ("live_always_norollups", "always", []),
    ("live_never_norollups", "never", []),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(xs: Sequence[float], q: float) -> float:
    """The `q` quantile of `xs` (nearest rank below), NaN for none."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def wait_for_daemon(sock: str, daemon: "subprocess.Popen[bytes]", timeout_s: float = 30) -> None:
    """Until the daemon `daemon` answers on its socket `sock`; fails if it exits or
    `timeout_s` passes first."""
    import ringfeed as rf

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rf.connect(sock).close()
            return
        except rf.RingfeedError:
            assert time.monotonic() < deadline and daemon.poll() is None, "ringfeedd did not come up"
            time.sleep(0.05)


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def timed_turns(ways: Dict[str, Callable[[], Any]], reps: int, rows: int, times: Dict[str, List[float]],
                probed: Optional[str] = None, probe: Optional[Callable[[], float]] = None,
                probes: Optional[List[float]] = None) -> None:
    """Each way `reps` times, in turns shuffled per rep (seeded by it): its ms appended to
    `times[name]`; every result (a DataFrame) must have `rows` rows. For the way named
    `probed`, `probe()` is read before and after, and the difference (in ms, `probe` being
    in seconds) appended to `probes`."""
    for rep in range(reps):
        order = list(ways)
        random.Random(rep).shuffle(order)
        for name in order:
            p0 = probe() if name == probed and probe is not None else None
            t = time.perf_counter_ns()
            df = ways[name]()
            ms = (time.perf_counter_ns() - t) / 1e6
            if df.height != rows:
                raise SystemExit(f"{name}: {df.height} rows, expected {rows}")
            del df
            times[name].append(ms)
            if p0 is not None and probe is not None and probes is not None:
                probes.append((probe() - p0) * 1e3)

