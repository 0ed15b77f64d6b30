"""A real ringfeedd for the tests: started on a fresh data dir, stoppable and
restartable on the same socket and data, and bar frames to feed it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

import polars as pl
import pytest

import ringfeed as rf
from conftest import newest_build

MIN = 60_000_000_000
T0 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00Z


def daemon_binary() -> Path | None:
    return newest_build("ringfeedd")


class Daemon:
    """ringfeedd on `tmp_path` (config, data dir and socket there), with
    `extra` top-level config lines and one dataset, `demo` unless told (1m,
    rollups 5m and 1h)."""

    def __init__(self, tmp_path: Path, extra: str = "", dataset: str = "demo") -> None:
        exe = daemon_binary()
        if exe is None:
            pytest.skip("ringfeedd is not built (cargo build -p ringfeed-daemon)")
        self.exe = exe
        self.sock = str(tmp_path / "rf.sock")
        self.data = tmp_path / "data"
        self.cfg = tmp_path / "ringfeed.toml"
        self.cfg.write_text(
            f'data_dir = "{self.data}"\nsocket = "{self.sock}"\narena_prefix = "py{os.getpid()}"\n{extra}\n'
            f'[datasets.{dataset}]\nbase = "1m"\nrollups = ["5m", "1h"]\n'
        )
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        """Starts the daemon and waits until it answers."""
        p = subprocess.Popen([str(self.exe), "--config", str(self.cfg)], env={**os.environ, "RUST_LOG": "warn"})
        self.proc = p
        deadline = time.monotonic() + 30
        while True:
            try:
                rf.connect(self.sock).close()
                return
            except rf.RingfeedError:
                assert time.monotonic() < deadline, "ringfeedd did not come up"
                assert p.poll() is None, "ringfeedd exited"
                time.sleep(0.02)

    def stop(self) -> int:
        """SIGTERM; returns the daemon's exit status (0 when it stopped cleanly)."""
        p, self.proc = self.proc, None
        if p is None:
            return 0
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise


@contextlib.contextmanager
def run_daemon(tmp_path: Path, extra: str = "") -> Iterator[str]:
    """Starts ringfeedd on a fresh data dir (with `extra` top-level config lines), yields its socket."""
    d = Daemon(tmp_path, extra)
    d.start()
    try:
        yield d.sock
    finally:
        status = d.stop()
    assert status == 0


def minutes(symbols: list[str], start: int, n: int) -> pl.DataFrame:
    """Minutes `start..start+n` after T0 for every symbol: open = the minute, close = open + 0.5."""
    rows = [(T0 + m * MIN, s, float(m)) for m in range(start, start + n) for s in symbols]
    ts, sym, px = zip(*rows)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "symbol": list(sym),
            "open": list(px),
            "high": [x + 1 for x in px],
            "low": [x * 0.5 for x in px],
            "close": [x + 0.5 for x in px],
            "volume": [1.0] * len(px),
        }
    )
