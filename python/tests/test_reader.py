"""Waiting: timeouts, iteration, Ctrl-C, the GIL, context managers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import spawn_python
from helpers import bar_batch

import ringfeed as rf


def test_read_timeouts(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()), rf.Reader.open(name) as r:
        assert r.read(0) is None
        t0 = time.monotonic()
        assert r.read(timeout=0.25) is None
        assert time.monotonic() - t0 >= 0.25  # a lower bound only: never asserts an upper one
        assert r.read(-1) is None


def test_read_returns_as_soon_as_a_batch_arrives(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name, start="next") as r:
        timer = threading.Timer(0.2, lambda: w.write(bar_batch(1, 10)))
        timer.start()
        b = r.read(timeout=30)
        timer.join()
        assert b is not None and b.seq == 1


@pytest.mark.parametrize("start, first", [("oldest", 1), ("latest", 3), ("next", 4)])
def test_start_positions(name: str, start: str, first: int) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w:
        for seq in (1, 2, 3):
            w.write(bar_batch(seq, 2))
        with rf.Reader.open(name, start=start) as r:  # type: ignore[arg-type]
            w.write(bar_batch(4, 2))
            b = r.read(5)
            assert b is not None and b.seq == first


def test_iteration_ends_when_the_writer_closes(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema())
    r = rf.Reader.open(name)
    for seq in range(1, 6):
        w.write(bar_batch(seq, 4))
    w.close()
    assert [b.seq for b in r] == [1, 2, 3, 4, 5]
    assert list(r) == []  # stays exhausted
    assert r.writer_alive is False


def test_iteration_follows_a_live_writer(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema(), on_full="block")
    r = rf.Reader.open(name, start="oldest")

    def produce() -> None:
        for seq in range(1, 51):
            w.write(bar_batch(seq, 10))
        w.close()

    t = threading.Thread(target=produce)
    t.start()
    seqs = [b.seq for b in r]
    t.join()
    assert seqs == list(range(1, 51))


def test_context_managers_close(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w:
        with rf.Reader.open(name) as r:
            assert not r.closed
        assert r.closed
        assert not w.closed
    assert w.closed


def test_spin_reader_reads(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w, rf.Reader.open(name, spin_us=200) as r:
        w.write(bar_batch(1, 1))
        b = r.read(5)
        assert b is not None and b.seq == 1


def test_gil_is_released_while_waiting(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()), rf.Reader.open(name) as r:
        ticks = 0
        stop = False

        def spin() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                time.sleep(0.001)

        t = threading.Thread(target=spin)
        t.start()
        assert r.read(timeout=0.5) is None
        during = ticks
        stop = True
        t.join()
        assert during > 10  # the other thread ran while read() waited


class Interrupted(Exception):
    pass


def _raise(*_: object) -> None:
    raise Interrupted()


def _signal_me_later(delay: float) -> threading.Timer:
    # SIGUSR1, not SIGALRM: pytest-timeout's watchdog uses SIGALRM and stays armed.
    t = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGUSR1))
    t.start()
    return t


def test_signal_interrupts_a_blocking_read(name: str) -> None:
    old = signal.signal(signal.SIGUSR1, _raise)
    try:
        with rf.Writer.create(name, rf.bar_schema()), rf.Reader.open(name) as r:
            timer = _signal_me_later(0.3)
            with pytest.raises(Interrupted):
                r.read()  # no timeout: only the signal ends it
            timer.join()
            assert r.read(0) is None  # still usable
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_signal_interrupts_a_blocked_write(name: str) -> None:
    old = signal.signal(signal.SIGUSR1, _raise)
    try:
        with rf.Writer.create(name, rf.bar_schema(), slots=1, on_full="block", timeout=3600) as w:
            _r = rf.Reader.open(name, start="oldest")
            w.write(bar_batch(1, 1))
            timer = _signal_me_later(0.3)
            with pytest.raises(Interrupted):
                w.write(bar_batch(2, 1))  # the reader never reads: blocks until the signal
            timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_ctrl_c_stops_a_subscriber_loop(name: str) -> None:
    code = """
import sys, ringfeed as rf
r = rf.Reader.open(sys.argv[1], wait=30)
print("ready", flush=True)
try:
    for b in r:
        pass
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(7)
"""
    with rf.Writer.create(name, rf.bar_schema()):
        p = spawn_python(code, name)
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            p.kill()
        assert p.returncode == 7, err
        assert "interrupted" in out


def test_full_validation_reads_what_trusted_reads(name: str) -> None:
    """validate="full" checks every value (offsets, string views, dictionary keys,
    UTF-8) before handing a batch out; on a ring written by a ringfeed Writer it reads
    exactly what the default (trusted) reader reads, still zero-copy."""
    with rf.Writer.create(name, rf.bar_schema()) as w:
        full = rf.Reader.open(name, start="oldest", validate="full")
        trusted = rf.Reader.open(name, start="oldest")
        for seq in (1, 2, 3):
            w.write(bar_batch(seq, 500))
        for seq in (1, 2, 3):
            a, b = full.read(5), trusted.read(5)
            assert a is not None and b is not None
            assert a.seq == b.seq == seq
            assert a.is_zero_copy
            assert a.to_arrow().equals(b.to_arrow())
            del a, b
        full.close()
        trusted.close()
