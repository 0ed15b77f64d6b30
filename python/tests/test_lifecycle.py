"""A dataset's lifecycle through the daemon: retention, trim and drop-dataset, with
the answers checked by queries (and the rollups against the base rows). Spawns the
real binary."""

from __future__ import annotations


import polars as pl
import pytest

import ringfeed as rf
from daemons import MIN, T0, minutes


def test_trim_one_symbol_then_every_symbol(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.append("demo", minutes(["A", "B"], 0, 180))
        assert c.bars("demo").height == 360
        text = c.trim("demo", T0 + 30 * MIN, symbol="A")
        assert "trimmed A of demo" in text, text
        a = c.bars("demo", "A")
        assert a.height == 150 and a["ts"].cast(pl.Int64)[0] == T0 + 30 * MIN
        assert c.bars("demo", "B").height == 180
        # The 00:00 hour of A is rebuilt from 00:30..00:59: its open is minute 30.
        h = c.bars("demo", "A", "1h")
        assert [float(x) for x in h["open"]] == [30.0, 60.0, 120.0]
        assert [float(x) for x in h["volume"]] == [30.0, 60.0, 60.0]
        c.trim("demo", "2021-01-01T02:00")
        assert c.bars("demo").height == 120
        with pytest.raises(rf.DaemonError) as e:
            c.trim("demo", T0, symbol="ZZ")
        assert e.value.kind == "unknown_symbol"


def test_drop_dataset_asks_for_yes_closes_and_frees_the_name(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.create_dataset("scratch", "1m", ["1h"])
        c.append("scratch", minutes(["A"], 0, 10))
        with pytest.raises(rf.DaemonError) as e:
            c.drop_dataset("scratch")
        assert e.value.kind == "bad_request" and "10 rows" in str(e.value), e.value
        assert c.bars("scratch").height == 10
        assert "dropped dataset scratch: 10 rows" in c.drop_dataset("scratch", yes=True)
        with pytest.raises(rf.DaemonError) as e:
            c.bars("scratch")
        assert e.value.kind == "unknown_dataset"
        with pytest.raises(rf.DaemonError) as e:
            c.drop_dataset("scratch", yes=True)
        assert e.value.kind == "unknown_dataset" and "demo" in str(e.value)
        # Other settings under the same name, none of the old rows.
        c.create_dataset("scratch", "5m", [])
        assert c.bars("scratch", timeframe="5m").height == 0


def test_retention_drops_old_days_and_refuses_bad_spellings(daemon: str) -> None:
    with rf.connect(daemon) as c:
        c.create_dataset("kept", "1m", ["1h"], retention="400d")
        c.append("kept", minutes(["A"], 0, 60))  # 2021: years older than 400 days
        with pytest.raises(rf.DaemonError) as e:
            c.set_retention("kept", "400")
        assert e.value.kind == "bad_request" and "400d" in str(e.value)
        assert c.bars("kept").height == 60, "a spelling error changes nothing"
        text = c.set_retention("kept", "30d", "10y")
        assert "rollups 10y" in text, text
        # The hot day is older than the base cutoff but not the rollups': written down,
        # then its base bars dropped; the hourly bar stays.
        assert c.bars("kept").height == 0
        assert c.bars("kept", timeframe="1h").height == 1
        assert "every row is kept" in c.set_retention("kept", None)
