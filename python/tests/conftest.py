"""Shared fixtures: a private arena directory, unique ring names, helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

# Every arena of this test session lives in its own directory (on tmpfs when
# there is one), so tests never see other arenas and leave nothing behind.
_SHM_DIR = tempfile.mkdtemp(prefix="rf-pytest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
os.environ["RINGFEED_SHM_DIR"] = _SHM_DIR

REPO = Path(__file__).resolve().parents[2]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SHM_DIR, ignore_errors=True)


@pytest.fixture
def name() -> str:
    """A fresh ring name."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    """A fresh ringfeedd on its own data directory (``daemons.run_daemon``): its socket."""
    from daemons import run_daemon  # daemons imports this module

    with run_daemon(tmp_path) as sock:
        yield sock


def newest_build(name: str) -> Path | None:
    """The newest cargo build of binary `name`: a stale release build must not
    shadow a fresh debug one."""
    found = [p for p in (REPO / "target" / prof / name for prof in ("release", "debug"))
             if p.is_file() and os.access(p, os.X_OK)]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def xtest_binary() -> Path | None:
    """The Rust multi-process helper `rf-xtest`, if it has been built."""
    env = os.environ.get("RF_XTEST")
    if env:
        return Path(env)
    return newest_build("rf-xtest")


def run_python(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (same venv, same arena dir)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def spawn_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def open_reader_of(proc: subprocess.Popen[str], name: str, start: str = "oldest", timeout: float = 30.0) -> "rf.Reader":
    """Opens ring `name` once the writer process `proc` has made it; fails with
    the writer's stderr if it exits first."""
    import time

    import ringfeed as rf

    deadline = time.monotonic() + timeout
    while True:
        try:
            return rf.Reader.open(name, start=start)  # type: ignore[arg-type]
        except rf.ArenaNotFoundError:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"writer process exited with {proc.returncode} before making the ring: {err}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def wait_for_reader_process(w: "rf.Writer", proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Waits until a reader is attached; fails with the reader's output if it exits first."""
    import time

    deadline = time.monotonic() + timeout
    while not w.wait_for_readers(1, timeout=0.2):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"reader process exited with {proc.returncode}: {out} {err}")
        if time.monotonic() > deadline:
            raise AssertionError("reader process did not attach")
