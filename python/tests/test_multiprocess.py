"""Across processes: Python ⇄ Python, Rust writer → Python reader,
Python writer → Rust reader, writer death, fork."""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys

import polars as pl
import pytest
from conftest import open_reader_of, run_python, spawn_python, wait_for_reader_process, xtest_binary
from helpers import bar_batch, in_range, mp_read_bars, mp_write_bars

import ringfeed as rf

XTEST = xtest_binary()
needs_xtest = pytest.mark.skipif(
    XTEST is None, reason="rf-xtest not built (cargo build -p ringfeed-xtest); scripts/test_python.sh builds it"
)

READER_CHILD = """
import json, sys, ringfeed as rf
sys.path.insert(0, sys.argv[3])
from helpers import bar_batch
name, rows = sys.argv[1], int(sys.argv[2])
r = rf.Reader.open(name, start="oldest", wait=30)
seqs, ok = [], True
for b in r:
    seqs.append(b.seq)
    df = b.to_polars()
    ok = ok and b.is_zero_copy and df.equals(__import__("polars").DataFrame(bar_batch(b.seq, rows)))
print(json.dumps({"seqs": seqs, "ok": ok}))
"""


def test_python_writer_to_two_python_reader_processes(name: str) -> None:
    tests_dir = os.path.dirname(__file__)
    w = rf.Writer.create(name, rf.bar_schema(), on_full="block", timeout=30)
    kids = [spawn_python(READER_CHILD, name, "100", tests_dir) for _ in range(2)]
    try:
        assert w.wait_for_readers(2, timeout=30), [k.stderr.read() for k in kids if k.poll() is not None and k.stderr]
        for seq in range(1, 201):
            w.write(bar_batch(seq, 100))
        w.close()
        for k in kids:
            out, err = k.communicate(timeout=60)
            assert k.returncode == 0, err
            res = json.loads(out)
            assert res == {"seqs": list(range(1, 201)), "ok": True}
    finally:
        for k in kids:
            k.kill()


def test_python_writer_process_to_python_reader_process_multiprocessing(name: str) -> None:
    ctx = mp.get_context("spawn")
    writer = ctx.Process(target=mp_write_bars, args=(name, 50, 500))
    reader = ctx.Process(target=mp_read_bars, args=(name, 50, 500))
    writer.start()
    reader.start()
    try:
        writer.join(60)
        reader.join(60)
        assert writer.exitcode == 0
        assert reader.exitcode == 0
    finally:
        writer.kill()
        reader.kill()


def test_writer_process_to_this_process(name: str) -> None:
    ctx = mp.get_context("spawn")
    writer = ctx.Process(target=mp_write_bars, args=(name, 30, 1000))
    writer.start()
    try:
        r = rf.Reader.open(name, start="oldest", wait=30)
        seqs = []
        for b in r:
            assert b.to_polars().equals(pl.DataFrame(bar_batch(b.seq, 1000)))
            seqs.append(b.seq)
        writer.join(60)
        assert writer.exitcode == 0
    finally:
        writer.kill()
    assert seqs == list(range(1, 31))


@needs_xtest
def test_rust_writer_to_python_reader(name: str) -> None:
    assert XTEST is not None
    p = subprocess.Popen(
        [str(XTEST), "publish", "--name", name, "--batches", "200", "--rows", "1000", "--block-ms", "30000", "--wait-readers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        r = open_reader_of(p, name)
        seqs = []
        for b in r:
            seqs.append(b.seq)
            assert b.is_zero_copy
            t = b.to_arrow()
            assert t.equals(bar_batch(b.seq, 1000)), b.seq
            df = pl.DataFrame(b)
            assert in_range(df["close"].to_numpy(allow_copy=False).__array_interface__["data"][0], b.arena_range)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == "published 200"
        assert seqs == list(range(1, 201))
    finally:
        p.kill()


@needs_xtest
def test_rust_writer_overwrite_mode_python_reader_may_lag(name: str) -> None:
    assert XTEST is not None
    p = subprocess.Popen(
        [str(XTEST), "publish", "--name", name, "--batches", "300", "--rows", "10", "--slots", "4", "--wait-readers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        r = open_reader_of(p, name)
        seen, missed, last = 0, 0, 0
        while True:
            try:
                b = r.read(30)
            except rf.LaggedError as e:
                missed += e.missed
                continue
            except rf.ClosedError:
                break
            assert b is not None
            assert b.seq > last
            assert b.to_arrow().equals(bar_batch(b.seq, 10))
            last = b.seq
            seen += 1
        assert p.wait(60) == 0
        assert last == 300
        assert seen + missed == 300
    finally:
        p.kill()


@needs_xtest
def test_python_writer_to_rust_reader(name: str) -> None:
    assert XTEST is not None
    p = subprocess.Popen(
        [str(XTEST), "subscribe", "--name", name, "--expect", "100", "--rows", "64", "--start", "oldest"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with rf.Writer.create(name, rf.bar_schema(), on_full="block", timeout=30) as w:
            wait_for_reader_process(w, p)
            for seq in range(1, 101):
                # alternate polars and pyarrow producers
                src = bar_batch(seq, 64)
                w.write(pl.DataFrame(src) if seq % 2 else src)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (out, err)
        res = json.loads(out.strip().splitlines()[-1])
        assert res["verified"] is True and res["zero_copy"] is True
        assert (res["first_seq"], res["last_seq"], res["batches"]) == (1, 100, 100)
    finally:
        p.kill()


WRITER_THEN_DIE = """
import os, sys, ringfeed as rf, pyarrow as pa
w = rf.Writer.create(sys.argv[1], pa.schema([("x", pa.int64())]))
for i in range(3):
    w.write(pa.record_batch({"x": [i]}))
print("wrote", flush=True)
sys.stdin.readline()
"""


def test_writer_death_gives_writer_gone(name: str) -> None:
    p = subprocess.Popen([sys.executable, "-c", WRITER_THEN_DIE, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "wrote"
        r = rf.Reader.open(name, start="oldest")
        assert r.writer_alive
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        got = []
        with pytest.raises(rf.WriterGoneError, match="batches already read stay valid"):
            for b in r:
                got.append(b)
        assert [b.to_arrow().column(0).to_pylist() for b in got] == [[0], [1], [2]]
        assert not r.writer_alive
    finally:
        p.kill()


def test_open_in_a_fresh_process_sees_schema(name: str) -> None:
    with rf.Writer.create(name, rf.bar_schema()) as w:
        w.write(bar_batch(1, 2))
        res = run_python("import sys, ringfeed as rf; r = rf.Reader.open(sys.argv[1]); print(r.schema == rf.bar_schema(), r.read(5).seq)", name)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["True", "1"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_must_reopen_and_cannot_disturb_the_parent(name: str) -> None:
    w = rf.Writer.create(name, rf.bar_schema(), slots=2)
    r = rf.Reader.open(name)
    w.write(bar_batch(1, 2000))
    b = r.read(5)
    assert b is not None
    df = b.to_polars()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 1
        try:
            try:
                r.read(0)
            except rf.RingfeedError as e:
                assert "before fork" in str(e)
            else:
                raise AssertionError("inherited reader worked in the child")
            try:
                w.write(bar_batch(2, 1))
            except rf.RingfeedError:
                pass
            else:
                raise AssertionError("inherited writer worked in the child")
            assert df["close"][0] == 1.25  # inherited frames stay readable (the parent holds them)
            mine = rf.Reader.open(name, start="latest")  # a child opens its own
            got = mine.read(5)
            assert got is not None and got.seq == 1
            del got, mine
            # Dropping inherited objects in the child must not unpin, unlock or close anything of the parent's.
            del b
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    del b
    gc.collect()
    # Had the child released the parent's pin, these writes would reuse its buffer.
    for seq in range(2, 150):
        w.write(bar_batch(seq, 2000))
        nb = r.read(5)  # the parent's reader row is still its own
        assert nb is not None and nb.seq == seq
        del nb
    assert df.equals(pl.DataFrame(bar_batch(1, 2000)))
    assert r.leases == 1
    r.close()
    w.close()


FORKING_WRITER = """
import os, sys, time, ringfeed as rf
w = rf.Writer.create(sys.argv[1], rf.bar_schema())
pid = os.fork()
if pid == 0:  # the child lives on, holding whatever it inherited
    time.sleep(600)
    os._exit(0)
print(pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_killed_writer_is_gone_although_its_forked_child_lives(name: str) -> None:
    """A forked child shares the parent's open file descriptions; it must not keep
    the parent's liveness lock alive (issue 12, item 13)."""
    p = spawn_python(FORKING_WRITER, name)
    child = 0
    try:
        assert p.stdout is not None
        child = int(p.stdout.readline())
        r = open_reader_of(p, name)
        assert r.writer_alive
        p.kill()
        p.wait(timeout=30)
        os.kill(child, 0)  # the child still lives
        assert not r.writer_alive
        with pytest.raises(rf.WriterGoneError):
            r.read(5)
        r.close()
    finally:
        p.kill()
        if child:
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(rf.RingfeedError):
            rf.remove(name)
