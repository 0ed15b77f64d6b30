"""Calendar timeframes through the daemon against polars: Lean's daily equity bars
(../shared/data, skipped when absent) appended to a 1d dataset, then ``bars(..., "1M")``
and ``"1Y"`` compared with ``group_by_dynamic("1mo")`` / ``("1y")`` of the same rows."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

import ringfeed as rf
from conftest import REPO
from daemons import run_daemon

LEAN = REPO.parent / "shared" / "data" / "lean" / "equity" / "usa" / "daily"
# Whether each file's last month is closed: SPY ends on 31 March 2021, GOOAV on 2 April
# 2014, WMI on 4 August 2009.
CLOSED = {"spy": True, "gooav": False, "wmi": False}


def lean_daily(sym: str) -> pl.DataFrame:
    """A Lean daily file: ``YYYYMMDD 00:00,open*10000,high,low,close,volume``."""
    with zipfile.ZipFile(LEAN / f"{sym}.zip") as z:
        text = z.read(z.namelist()[0]).decode()
    df = pl.read_csv(io.StringIO(text), has_header=False,
                     new_columns=["date", "open", "high", "low", "close", "volume"])
    return df.select(
        pl.col("date").str.slice(0, 8).str.strptime(pl.Datetime("ns"), "%Y%m%d")
        .dt.replace_time_zone("UTC").alias("ts"),
        pl.lit(sym.upper()).alias("symbol"),
        *(pl.col(c).cast(pl.Float64) / 1e4 for c in ["open", "high", "low", "close"]),
        pl.col("volume").cast(pl.Float64),
    )


def reference(daily: pl.DataFrame, every: str) -> pl.DataFrame:
    """polars' calendar group-by; complete = the window ends by the end of the last daily bar."""
    last_end = daily["ts"].max() + dt.timedelta(days=1)  # type: ignore[operator]
    out = (
        daily.sort("ts")
        .group_by_dynamic("ts", every=every, closed="left", label="left", group_by="symbol")
        .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
             pl.col("close").last(), pl.col("volume").sum())
        .with_columns((pl.col("ts").dt.offset_by(every) <= last_end).alias("complete"))
    )
    return out.select("ts", "symbol", "open", "high", "low", "close", "volume", "complete")


@pytest.mark.skipif(not LEAN.is_dir(), reason="../shared/data/lean is absent (real data lives beside the project)")
# ~45 s against the debug daemon of scripts/test.sh: 3 files of up to 5,849 daily bars,
# each day its own hot WAL file (a correctness test, not a timing one).
@pytest.mark.timeout(180)
def test_months_and_years_match_polars_group_by_dynamic(tmp_path: Path) -> None:
    """Resampled on read (``lean``) and kept on write as calendar rollups (``leancal``,
    appended in two halves, the later first): both equal polars' group-by."""
    with run_daemon(tmp_path) as sock, rf.connect(sock) as c:
        c.create_dataset("lean", base="1d", rollups=[])
        c.create_dataset("leancal", base="1d", rollups=["1M", "3M", "1Y"])
        assert c.datasets()["leancal"]["timeframes"] == ["1d", "1M", "3M", "1Y"]
        for sym in CLOSED:
            daily = lean_daily(sym)
            assert c.append("lean", daily) == daily.height
            # The last ~6 years (a debug daemon keeps the test short), the later half
            # first: the earlier half's months then close and join them.
            recent = daily.tail(1500)
            half = recent.height // 2
            for piece in [recent.slice(half), recent.slice(0, half)]:
                c.append("leancal", piece)
            for ds, rows in [("lean", daily), ("leancal", recent)]:
                for ours, theirs in [("1M", "1mo"), ("3M", "3mo"), ("1Y", "1y")]:
                    got = c.bars(ds, sym.upper(), ours).select(
                        "ts", "symbol", "open", "high", "low", "close", "volume", "complete"
                    ).with_columns(pl.col("symbol").cast(pl.String))
                    want = reference(rows, theirs)
                    assert got.height == want.height, (ds, sym, ours)
                    assert got.drop("volume").equals(want.drop("volume")), (ds, sym, ours)
                    diff = (got["volume"] - want["volume"]).abs() / want["volume"].abs().clip(lower_bound=1.0)
                    assert diff.max() <= 1e-12, (ds, sym, ours)  # type: ignore[operator]
                # The last month is closed only when the data ends on its last day.
                last = c.bars(ds, sym.upper(), "1M", limit=1, from_end=True)
                assert last["complete"].to_list() == [CLOSED[sym]], (ds, sym)
        # A calendar rollup that nothing stored nests in is refused with a clear error.
        with pytest.raises(rf.DaemonError) as e:
            c.create_dataset("odd", base="7m", rollups=["1M"])
        assert e.value.kind == "bad_request"
        assert "calendar rollup" in str(e.value)


def test_week_start_per_dataset_and_per_query(tmp_path: Path) -> None:
    """A dataset created with ``week_start="sun"`` gives Sunday weeks; a query may ask for
    Monday weeks; both agree with a polars group-by of the same daily bars; a bad weekday
    is a bad request that names the spellings."""
    days = 28
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)  # a Monday
    daily = pl.DataFrame({
        "ts": [start + dt.timedelta(days=k) for k in range(days)],
        "symbol": ["AAA"] * days,
        "open": [100.0 + k for k in range(days)],
        "high": [101.0 + k for k in range(days)],
        "low": [99.0 + k for k in range(days)],
        "close": [100.5 + k for k in range(days)],
        "volume": [float(10 + k) for k in range(days)],
    }).with_columns(pl.col("ts").dt.cast_time_unit("ns"))

    def weeks(offset: str) -> pl.DataFrame:
        return (daily.group_by_dynamic("ts", every="1w", offset=offset, closed="left", label="left")
                .agg(pl.col("open").first(), pl.col("close").last(), pl.col("volume").sum()))

    with run_daemon(tmp_path) as sock, rf.connect(sock) as c:
        c.create_dataset("sun", base="1d", rollups=[], week_start="sun")
        assert c.append("sun", daily) == days
        w = c.bars("sun", "AAA", "1w")
        assert w["ts"].dt.weekday().unique().to_list() == [7]  # polars: Monday 1 ... Sunday 7
        ref = weeks("-1d")  # polars' weeks start on Monday; one day earlier is Sunday
        assert w.select("ts", "open", "close", "volume").equals(ref.select("ts", "open", "close", "volume"))
        m = c.bars("sun", "AAA", "1w", week_start="mon")
        assert m["ts"].dt.weekday().unique().to_list() == [1]
        assert m.select("ts", "open", "close", "volume").equals(weeks("0d").select("ts", "open", "close", "volume"))
        with pytest.raises(rf.DaemonError) as e:
            c.bars("sun", "AAA", "1w", week_start="sunday-ish")
        assert e.value.kind == "bad_request" and "mon, tue" in str(e.value)
        with pytest.raises(rf.DaemonError) as e:
            c.create_dataset("bad", base="1d", week_start="funday")
        assert e.value.kind == "bad_request"
        # The daemon still answers a real query afterwards.
        assert c.bars("sun", "AAA", "1d").height == days
