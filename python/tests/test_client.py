"""The daemon client as the Rust ringfeed-client under pyo3: the one time
grammar, symbol lists, ready(), replays filtered by symbol, reconnection after
a daemon restart, appends without pyarrow, typed errors. Spawns the real
binary."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import polars as pl
import pytest

import ringfeed as rf
from conftest import run_python
from daemons import MIN, T0, Daemon, minutes

T0_MS = T0 // 1_000_000


def closes(df: pl.DataFrame) -> list[float]:
    return [float(x) for x in df["close"].to_list()]


def test_ready_reports_an_empty_and_a_filled_dataset(daemon: str) -> None:
    with rf.connect(daemon) as c:
        empty = c.ready("demo")
        assert empty["ready"] is True and empty["reason"] is None
        [ds] = empty["datasets"]
        assert ds["dataset"] == "demo" and ds["base"] == "1m" and ds["symbols"] == []
        assert [t["timeframe"] for t in ds["timeframes"]] == ["1m", "5m", "1h"]
        assert all(t["first_ts"] is None and t["last_ts"] is None and t["hot_days"] == [] for t in ds["timeframes"])

        c.append("demo", minutes(["A", "B"], 0, 70))
        full = c.ready()
        [ds] = [d for d in full["datasets"] if d["dataset"] == "demo"]
        assert ds["symbols"] == ["A", "B"]
        by = {t["timeframe"]: t for t in ds["timeframes"]}
        assert by["1m"]["first_ts"] == T0 and by["1m"]["last_ts"] == T0 + 69 * MIN
        assert by["1h"]["first_ts"] == T0 and by["1h"]["last_ts"] == T0 + 60 * MIN
        assert by["1m"]["hot_days"] == ["2021-01-01"] and by["1m"]["cold_days"] == 0

        with pytest.raises(rf.DaemonError) as e:
            c.ready("nope")
        assert e.value.kind == "unknown_dataset"


def test_health_reports_every_subsystem(daemon: str) -> None:
    with rf.connect(daemon) as c:
        h = c.health()
        assert h["healthy"] is True, h
        names = [x["name"] for x in h["checks"]]
        assert names == ["store", "ingest", "data_dir", "writable", "integrity", "cache", "topics"]
        assert all(x["ok"] and x["detail"] for x in h["checks"])


def test_times_follow_the_one_grammar(daemon: str) -> None:
    """Integers by magnitude (s, ms, us, ns), ISO without a zone = UTC, datetime
    exact (naive = UTC), date = UTC midnight: all the same instant."""
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A"], 0, 60))
        want = [m + 0.5 for m in range(30, 60)]
        t30_ns = T0 + 30 * MIN
        for start in (
            T0_MS + 30 * 60_000,  # ms: read as ns it would select every row
            t30_ns // 1_000_000_000,  # s
            t30_ns // 1_000,  # us
            t30_ns,  # ns
            "2021-01-01T00:30",  # ISO without a zone: UTC
            "2021-01-01 00:30:00",
            "2021-01-01T01:30:00+01:00",
            str(T0_MS + 30 * 60_000),
            dt.datetime(2021, 1, 1, 0, 30),  # naive: UTC
            dt.datetime(2021, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ):
            assert closes(c.bars("demo", "A", "1m", start=start)) == want, start
        # A date is its UTC midnight; end is excluded.
        assert c.bars("demo", "A", "1m", end=dt.date(2021, 1, 1)).height == 0
        assert c.bars("demo", "A", "1m", start=dt.date(2021, 1, 1), end=T0_MS + 60_000).height == 1
        # A datetime is exact to the microsecond: 00:29:59.999999 includes minute 30, not 29.
        just_before = dt.datetime(2021, 1, 1, 0, 29, 59, 999_999, tzinfo=dt.timezone.utc)
        assert closes(c.bars("demo", "A", "1m", start=just_before)) == want

        # A datetime with a `nanosecond` (as pandas.Timestamp has) is exact to the ns;
        # the inverted-range message shows the instant sent.
        class NsDatetime(dt.datetime):
            nanosecond = 7

        t = NsDatetime(2021, 1, 1, 0, 30)
        with pytest.raises(rf.DaemonError, match=r"start 2021-01-01T00:30:00\.000000007Z is not before"):
            c.bars("demo", "A", "1m", start=t, end=t)
        assert c.bars("demo", "A", "1m", fields="close").columns == ["ts", "symbol", "close"]


def test_inverted_and_bad_times_are_typed_errors(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A"], 0, 10))
        for start, end in ((T0_MS + 5 * 60_000, T0_MS), ("2021-01-01T00:05", "2021-01-01T00:05")):
            with pytest.raises(rf.DaemonError) as e:
                c.bars("demo", "A", "1m", start=start, end=end)
            assert e.value.kind == "bad_request" and "is not before end" in str(e.value)
        with pytest.raises(rf.DaemonError) as e:
            c.bars("demo", "A", "1m", start="yesterday")
        assert e.value.kind == "bad_request" and "YYYY-MM-DD" in str(e.value)
        # Wrong types are refused before anything is sent.
        for bad in (1.5, True, [T0]):
            with pytest.raises(rf.ArgumentTypeError) as te:
                c.bars("demo", "A", "1m", start=bad)  # type: ignore[arg-type]
            assert isinstance(te.value, TypeError) and isinstance(te.value, rf.RingfeedError)
        with pytest.raises(rf.InvalidArgumentError):
            c.bars("demo", "A", "1m", start=2**70)
        with pytest.raises(rf.ArgumentTypeError, match="symbols"):
            c.bars("demo", 5, "1m")  # type: ignore[arg-type]


def test_symbols_as_a_comma_list_or_a_sequence(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A", "B", "C"], 0, 5))
        for symbols in ("A,B", "A, B", ["A", "B"], ("A", "B"), ["A,B"]):
            df = c.bars("demo", symbols, "1m")
            assert sorted(set(df["symbol"].to_list())) == ["A", "B"], symbols
            assert df.height == 10
        assert c.bars("demo", "*", "1m").height == 15
        assert c.bars("demo", None, "1m").height == 15
        assert c.bars_arrow("demo", "A,C", "1m").num_rows == 10


def test_a_live_replay_keeps_only_its_symbols(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A", "B"], 0, 10))
        with c.subscribe("demo", "1m", start=T0_MS + 5 * 60_000, symbols="B") as rp:
            assert isinstance(rp, rf.Replay)
            assert rp.symbols == ["B"] and rp.history_rows == 5 and rp.in_history
            first = rp.read(timeout=0)  # history is already in the arena: no wait needed
            assert first is not None
            seen: list[float] = closes(first.to_polars())

            def feed() -> None:
                with rf.connect(daemon) as f:
                    for m in range(10, 20):
                        f.append("demo", minutes(["A", "B"], m, 1))  # one batch with both symbols

            t = threading.Thread(target=feed)
            t.start()
            try:
                while seen[-1] != 19.5:
                    b = rp.read(timeout=20)
                    assert b is not None, f"replay stalled after {seen[-1:]}"
                    df = b.to_polars()
                    assert set(df["symbol"].to_list()) == {"B"}, df
                    seen.extend(closes(df))
            finally:
                t.join()
            assert seen == [m + 0.5 for m in range(5, 20)]
            assert not rp.in_history
        assert rp.closed
        with pytest.raises(rf.ClosedError):
            rp.read(timeout=0)


def test_a_live_reader_refuses_symbols_instead_of_ignoring_them(daemon: str) -> None:
    with rf.connect(daemon) as c:
        for start in ("next", "latest", "oldest"):
            with pytest.raises(rf.InvalidArgumentError, match="pass a start time") as e:
                c.subscribe("demo", "1m", start, symbols="B")  # type: ignore[call-overload]
            assert isinstance(e.value, ValueError)
        # "*" is every symbol: nothing to filter.
        r = c.native.subscribe("demo", "1m", "next", symbols="*")
        assert isinstance(r, rf.Reader)
        r.close()


def test_the_client_reconnects_after_a_daemon_restart(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    d.start()
    try:
        c = rf.connect(d.sock)
        c.append("demo", minutes(["A"], 0, 10))
        assert d.stop() == 0
        with pytest.raises(rf.ConnectError, match="ringfeed serve"):
            c.ping()  # nobody listens: a clear error, and the client stays usable
        d.start()  # a new daemon on the same socket and data dir
        assert closes(c.bars("demo", "A", "1m")) == [m + 0.5 for m in range(10)]
        c.ping()
        c.close()
        with pytest.raises(rf.ClosedError):
            c.ping()
    finally:
        d.stop()


def test_append_a_polars_frame_without_pyarrow(daemon: str) -> None:
    # A fresh interpreter where pyarrow cannot be imported at all.
    code = """
import sys
sys.modules["pyarrow"] = None  # any `import pyarrow` now fails
import datetime as dt
import polars as pl
import ringfeed as rf
df = pl.DataFrame({
    "ts": [dt.datetime(2021, 1, 1, 0, m, tzinfo=dt.timezone.utc) for m in range(3)],
    "symbol": ["P"] * 3, "open": [1.0, 2.0, 3.0], "high": [2.0, 3.0, 4.0],
    "low": [0.0, 1.0, 2.0], "close": [1.5, 2.5, 3.5], "volume": [1.0] * 3,
})  # ts in microseconds, as polars makes them
with rf.connect(sys.argv[1]) as c:
    print(c.append("demo", df))
    print(c.bars("demo", "P", "1m")["close"].to_list())
"""
    r = run_python(code, daemon)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["3", "[1.5, 2.5, 3.5]"]


def test_append_takes_ts_with_any_zone_and_unit_naive_as_utc_but_no_integers(daemon: str) -> None:
    """A zoned ts keeps its instant whatever the zone and unit; a naive ts is UTC;
    an integer ts is refused (an Int64 of ms once became a bar in 1970)."""
    with rf.connect(daemon) as c:
        base = minutes(["N"], 0, 3)
        want = [T0, T0 + MIN, T0 + 2 * MIN]
        for symbol, ts in (
            ("US", pl.col("ts").cast(pl.Datetime("us", "UTC"))),
            ("PARIS", pl.col("ts").dt.convert_time_zone("Europe/Paris")),
            ("NAIVE", pl.col("ts").dt.replace_time_zone(None)),
        ):
            assert c.append("demo", base.with_columns(ts, symbol=pl.lit(symbol))) == 3
            df = c.bars("demo", symbol, "1m")
            assert df["ts"].dtype == pl.Datetime("ns", "UTC")
            assert df["ts"].dt.epoch("ns").to_list() == want, symbol
        for ts in (pl.col("ts").dt.epoch("ns"), pl.col("ts").dt.epoch("ms")):
            with pytest.raises(rf.DaemonError) as e:
                c.append("demo", base.with_columns(ts, symbol=pl.lit("INT")))
            assert e.value.kind == "bad_request" and "timestamp" in str(e.value), e.value
        assert "INT" not in c.datasets()["demo"]["symbols"]


def test_append_checks_every_row_and_refuses_skips_or_keeps_bad_ones(daemon: str) -> None:
    """The store's row rules apply to client appends: high < low, NaN or negative prices,
    negative volume and off-grid bars are refused by default (nothing stored), skipped
    with a warning, or kept flagged."""
    with rf.connect(daemon) as c:
        good = minutes(["R"], 0, 4)
        bad_frames = {
            "high": good.with_columns(pl.when(pl.int_range(4) == 1).then(-5.0).otherwise(pl.col("high")).alias("high")),
            "close": good.with_columns(pl.when(pl.int_range(4) == 2).then(float("nan")).otherwise(pl.col("close")).alias("close")),
            "volume": good.with_columns(pl.when(pl.int_range(4) == 3).then(-1.0).otherwise(pl.col("volume")).alias("volume")),
            "grid": good.with_columns(
                pl.when(pl.int_range(4) == 2).then(pl.col("ts") + pl.duration(seconds=17)).otherwise(pl.col("ts")).alias("ts")
            ),
        }
        for what, frame in bad_frames.items():
            with pytest.raises(rf.DaemonError) as e:
                c.append("demo", frame)
            assert e.value.kind == "bad_request" and what in str(e.value) and "append:" in str(e.value), e.value
        assert "R" not in c.datasets()["demo"]["symbols"], "nothing half-stored"
        with pytest.warns(rf.RowsRejectedWarning, match="1 rows rejected.*append:2"):
            assert c.append("demo", bad_frames["high"], invalid="skip") == 3
        assert c.bars("demo", "R", "1m").height == 3
        with pytest.warns(rf.RowsRejectedWarning, match="1 kept flagged"):
            assert c.append("demo", bad_frames["high"], invalid="keep") == 4
        assert c.bars("demo", "R", "1m").height == 4
        with pytest.raises(rf.InvalidArgumentError):
            c.append("demo", good, invalid="maybe")  # type: ignore[arg-type]


def test_append_errors_are_daemon_errors_with_a_kind(daemon: str) -> None:
    with rf.connect(daemon) as c:
        with pytest.raises(rf.DaemonError) as e:
            c.append("nope", minutes(["A"], 0, 3))
        assert e.value.kind == "unknown_dataset" and "demo" in str(e.value)
        with pytest.raises(rf.DaemonError) as e:
            c.append("demo", pl.DataFrame({"ts": [1], "symbol": ["A"]}))
        assert e.value.kind == "bad_request" and "missing" in str(e.value)
        with pytest.raises(rf.ArgumentTypeError, match="polars.DataFrame"):
            c.append("demo", [1, 2, 3])
        c.ping()


def test_connect_errors_say_to_start_the_daemon(tmp_path: Path) -> None:
    with pytest.raises(rf.ConnectError, match="ringfeed serve") as e:
        rf.connect(tmp_path / "none.sock")
    assert isinstance(e.value, rf.RingfeedError)
    with pytest.raises(rf.InvalidArgumentError, match="timeout"):
        rf.connect(tmp_path / "none.sock", timeout=0)


def test_client_module_has_no_protocol_code() -> None:
    """The protocol lives in Rust (ringfeed-client): the Python module only adds
    polars/pyarrow conveniences."""
    src = Path(rf.client.__file__).read_text()
    for word in ("import socket", "import struct", "import json", "sendall", "recv"):
        assert word not in src, word


def test_create_dataset_through_the_daemon(daemon: str) -> None:
    with rf.connect(daemon) as c:
        with pytest.raises(rf.DaemonError) as e:
            c.append("fresh", minutes(["A"], 0, 3))
        assert e.value.kind == "unknown_dataset" and "--create" in str(e.value)
        assert "created dataset fresh (1m, 5m)" in c.create_dataset("fresh", "1m", ["5m"])
        assert "exists" in c.create_dataset("fresh", "1m", ["5m"])
        with pytest.raises(rf.DaemonError) as e:
            c.create_dataset("fresh", "1m", ["1h"])
        assert e.value.kind == "bad_request"
        assert c.append("fresh", minutes(["A"], 0, 10)) == 10
        assert c.bars("fresh", "A", "5m").height == 2
