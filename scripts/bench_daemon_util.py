"""Constants and helpers shared by scripts/bench_daemon.py (the parent process),
bench_daemon_workers.py (its worker processes) and bench_daemon_report.py (the summary).
Imports nothing of theirs."""
from __future__ import annotations

import statistics
from typing import Sequence

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
