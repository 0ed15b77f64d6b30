"""The ringfeedd daemon from Python: append, bars (zero-copy from the daemon's
arena), live subscriptions with rollups, errors. Spawns the real binary."""

from __future__ import annotations

import os
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

import ringfeed as rf
from daemons import MIN, T0, minutes, run_daemon


def test_append_bars_and_zero_copy(daemon: str) -> None:
    with rf.connect(daemon) as c:
        assert c.append("demo", minutes(["AAA", "BBB"], 0, 120)) == 240
        df = c.bars("demo", "AAA", "1m", start="2021-01-01 00:30", end=T0 + 40 * MIN)
        assert isinstance(df, pl.DataFrame)
        assert df.height == 10
        assert df["close"].to_list() == [m + 0.5 for m in range(30, 40)]
        # The numeric column points into the daemon's arena.
        t = c.bars_arrow("demo", "AAA", "1m")
        assert t.num_rows == 120
        arenas = [a for a in rf.list_arenas() if a.startswith(f"py{os.getpid()}.q.")]
        assert arenas, rf.list_arenas()
        # Resampled on read and stored rollups agree.
        h = c.bars("demo", ["AAA"], "1h")
        r = c.bars("demo", ["AAA"], "30m")
        assert h["close"].to_list() == [59.5, 119.5]
        assert r.height == 4
        info = c.datasets()
        assert set(info["demo"]["symbols"]) == {"AAA", "BBB"}
        assert "ringfeed_queries_total" in c.stat()


def test_write_down_moves_finished_days_to_parquet(tmp_path: Path) -> None:
    with run_daemon(tmp_path, 'write_down_delay = "off"') as sock, rf.connect(sock) as c:
        c.append("demo", minutes(["AAA"], 1430, 20))  # 23:50 on 2021-01-01 to 00:10 on the 2nd
        before = c.bars("demo", "AAA", "1m")
        text = c.write_down(before="2021-01-02")
        assert text.startswith("wrote down 3 partitions: 13 rows"), text  # 1m, 5m, 1h of the 1st
        # A day part of January (not compacted: the month has not ended before 2021-01-02).
        assert list((tmp_path / "data").glob("dataset=demo/tf=1m/month=2021-01/date-2021-01-01-part-*.parquet"))
        assert not list((tmp_path / "data").glob("dataset=demo/tf=1m/month=2021-01/date-2021-01-02-*.parquet"))
        assert c.bars("demo", "AAA", "1m").equals(before)
        with pytest.raises(rf.DaemonError) as e:
            c.write_down("nope")
        assert e.value.kind == "unknown_dataset"


def test_delete_a_range_through_the_daemon(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["AAA", "BBB"], 0, 120))
        assert c.bars("demo", "AAA", "1h")["close"].to_list() == [59.5, 119.5]  # cached now
        text = c.delete("demo", T0 + 60 * MIN, "2021-01-01T02:00:00Z", symbol="AAA")
        assert text == "deleted from 1 days of demo", text
        assert c.bars("demo", "AAA", "1m").height == 60
        assert c.bars("demo", "BBB", "1m").height == 120
        assert c.bars("demo", "AAA", "1h")["close"].to_list() == [59.5]  # the rollup followed
        with pytest.raises(rf.DaemonError) as e:
            c.delete("demo", T0 + MIN, T0)
        assert e.value.kind == "bad_request"


def test_repeated_query_shares_one_arena(daemon: str) -> None:
    with rf.connect(daemon) as c1, rf.connect(daemon) as c2:
        c1.append("demo", minutes(["X"], 0, 30))
        r1 = c1.call({"op": "query", "dataset": "demo", "symbols": ["X"], "timeframe": "1m"})
        r2 = c2.call({"op": "query", "dataset": "demo", "symbols": ["X"], "timeframe": "1m"})
        assert r1["arena"] == r2["arena"] and r2["cached"] is True
        c1.call({"op": "release", "arena": r1["arena"]})
        c2.call({"op": "release", "arena": r2["arena"]})


def test_subscribe_sees_appends_and_rollups(daemon: str) -> None:
    with rf.connect(daemon) as c:
        s1 = c.subscribe("demo", "1m")
        s5 = c.subscribe("demo", "5m")
        c.append("demo", minutes(["Z"], 0, 12))
        b = s1.read(timeout=10)
        assert b is not None and len(b) == 12
        lo, hi = b.arena_range
        col = b.to_arrow().column("close")
        assert lo <= col.buffers()[1].address < hi
        r = s5.read(timeout=10)
        assert r is not None
        bars5 = r.to_polars()
        assert bars5["close"].to_list() == [4.5, 9.5, 11.5]
        # The bucket whose last minute arrived is final; the 00:10 bucket is still open.
        assert bars5["complete"].to_list() == [True, True, False]


def test_errors_are_typed(daemon: str) -> None:
    with rf.connect(daemon) as c:
        with pytest.raises(rf.DaemonError) as e:
            c.bars("nope", None, "1m")
        assert e.value.kind == "unknown_dataset" and "demo" in str(e.value)
        with pytest.raises(rf.DaemonError) as e:
            c.bars("demo", None, "1m", start="2021-02-01", end="2021-01-01")
        # The message is the one time grammar's (ringfeed-client), the same in every face.
        assert "is not before end" in str(e.value) and e.value.kind == "bad_request"
        with pytest.raises(rf.DaemonError) as e:
            c.subscribe("demo", "3m")
        assert e.value.kind == "bad_timeframe"
        with pytest.raises(TypeError):
            c.bars("demo", None, "1m", start=1.5)  # type: ignore[arg-type]
        c.ping()


def test_missing_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(rf.RingfeedError, match="ringfeed serve"):
        rf.connect(str(tmp_path / "none.sock"))


def test_append_rejects_bad_rows(daemon: str) -> None:
    with rf.connect(daemon) as c:
        with pytest.raises(rf.DaemonError):
            c.append("demo", pa.table({"nothing": [1, 2]}))
        c.ping()


def test_replay_from_a_time_then_live_without_gap_or_duplicate(daemon: str) -> None:
    import threading

    with rf.connect(daemon) as c:
        c.append("demo", minutes(["R"], 0, 60))
        end = 160

        def feed() -> None:
            with rf.connect(daemon) as f:
                for m in range(60, end):
                    f.append("demo", minutes(["R"], m, 1))

        t = threading.Thread(target=feed)
        t.start()
        try:
            time.sleep(0.05)  # join mid-feed
            seen: list[int] = []
            with c.subscribe("demo", "1m", start=T0 + 10 * MIN) as rp:
                assert isinstance(rp, rf.Replay)
                assert rp.history_rows >= 50 and rp.seam >= 1
                while not seen or seen[-1] != end - 1:
                    b = rp.read(timeout=20)
                    assert b is not None, f"replay stalled after {seen[-1:]}"
                    df = b.to_polars().filter(pl.col("symbol") == "R")
                    seen.extend(int(x - 0.5) for x in df["close"].to_list())
            assert seen == list(range(10, end))
        finally:
            t.join()
        # A position string is still a plain live reader.
        assert isinstance(c.subscribe("demo", "1m", start="latest"), rf.Reader)
        with pytest.raises(rf.DaemonError) as e:
            c.subscribe("demo", "1m", start="not a time")
        assert e.value.kind == "bad_request"


def test_limits_are_clear_errors_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    extra = 'max_result_bytes = "16KiB"\nmax_connections = 4\nmax_connections_per_client = 2\nmax_append_bytes = "64KiB"'
    with run_daemon(tmp_path, extra) as sock, rf.connect(sock) as c:
        c.append("demo", minutes(["X"], 0, 600))
        with pytest.raises(rf.DaemonError, match="max_result_bytes") as e:
            c.bars("demo", "X", "1m")
        assert e.value.kind == "too_large"
        assert c.bars("demo", "X", "1m", limit=10).height == 10
        # An oversize append gets the reason, not a broken pipe; nothing of it is stored.
        with pytest.raises(rf.DaemonError, match="max_append_bytes") as e:
            c.append("demo", minutes(["Y"], 0, 5000))
        assert e.value.kind == "too_large"
        with pytest.raises(rf.DaemonError) as e:
            c.bars("demo", "Y", "1m")
        assert e.value.kind == "unknown_symbol"
        # Connections: c is one of this process's two; the third is told why.
        with rf.connect(sock) as c2:
            c2.ping()
            with rf.connect(sock) as c3, pytest.raises(rf.DaemonError) as e:
                c3.ping()
            assert e.value.kind == "busy"
            assert "max_connections_per_client" in str(e.value)
        c.ping()
