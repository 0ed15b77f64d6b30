"""Constants and helpers shared by scripts/bench_daemon.py (the parent process),
bench_daemon_workers.py (its worker processes) and bench_daemon_report.py (the summary).
Imports nothing of theirs."""
from __future__ import annotations

import random
import statistics
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

