"""The real pymarketstore (from PyPI, unmodified) against ringfeedd's MarketStore face
(`[http] listen`, `/rpc` and `/ws`): queries of one and several symbols with limits from
either end, list_symbols, write then query back, destroy, and StreamConn receiving live
bars after an append."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import ringfeed as rf
from daemons import MIN, T0, minutes, run_daemon

pymkts = pytest.importorskip("pymarketstore", reason="pymarketstore is not installed (scripts/py_env.sh installs it)")

T0_S = T0 // 1_000_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ms(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A daemon with the HTTP face on loopback, `OHLCV` = its `demo` dataset, seeded with
    AAA and BBB, 1500 minutes each: (socket, /rpc endpoint)."""
    port = _free_port()
    extra = f'[http]\nlisten = "127.0.0.1:{port}"\nohlcv_dataset = "demo"'
    with run_daemon(tmp_path, extra) as sock:
        with rf.connect(sock) as c:
            assert c.append("demo", minutes(["AAA", "BBB"], 0, 1500)) == 3000
        yield sock, f"http://127.0.0.1:{port}/rpc"


def test_query_one_symbol_matches_the_local_client(ms: tuple[str, str]) -> None:
    sock, url = ms
    cli = pymkts.Client(url)
    reply = cli.query(pymkts.Params("AAA", "1Min", "OHLCV", start=T0_S, end=T0_S + 59 * 60))
    df = reply.first().df()
    assert len(df) == 60
    assert list(df.columns)[:5] == ["Open", "High", "Low", "Close", "Volume"]
    assert df["Open"].tolist() == [float(m) for m in range(60)]
    assert df.index[0].value == T0 and str(df.index.tz) == "UTC"
    # The same bars as the local client reads.
    with rf.connect(sock) as c:
        local = c.bars("demo", "AAA", "1m", start=T0, end=T0 + 60 * MIN)
    assert local["close"].to_list() == df["Close"].tolist()
    # A rollup (stored) and a resample on read (not stored).
    h = cli.query(pymkts.Params("AAA", "1H", "OHLCV")).first().df()
    assert len(h) == 25 and h["Open"].iloc[1] == 60.0 and h["High"].iloc[0] == 60.0
    m7 = cli.query(pymkts.Params("AAA", "15Min", "OHLCV", limit=3, limit_from_start=True)).first().df()
    assert m7["Open"].tolist() == [0.0, 15.0, 30.0] and m7["Close"].tolist() == [14.5, 29.5, 44.5]


def test_query_several_symbols_with_limits_from_either_end(ms: tuple[str, str]) -> None:
    _, url = ms
    cli = pymkts.Client(url)
    reply = cli.query(pymkts.Params(["AAA", "BBB"], "1Min", "OHLCV", limit=5))
    by = reply.by_symbols()
    assert sorted(by) == ["AAA", "BBB"]
    for s in ("AAA", "BBB"):
        # Default: the last `limit` rows.
        assert by[s].df()["Open"].tolist() == [float(m) for m in range(1495, 1500)]
    first = cli.query(pymkts.Params(["AAA", "BBB"], "1Min", "OHLCV", limit=3, limit_from_start=True))
    assert first.by_symbols()["BBB"].df()["Open"].tolist() == [0.0, 1.0, 2.0]
    # Several requests in one call, and `*` for every symbol.
    two = cli.query([
        pymkts.Params("AAA", "5Min", "OHLCV", limit=2),
        pymkts.Params("*", "1Min", "demo", limit=1, limit_from_start=True),
    ])
    assert len(two.results) == 2
    assert two.results[0].first().df()["Open"].tolist() == [1490.0, 1495.0]
    assert sorted(two.results[1].keys()) == ["AAA/1Min/demo", "BBB/1Min/demo"]
    # Columns: Epoch always, then the ones asked for.
    cols = cli.query(pymkts.Params("AAA", "1Min", "OHLCV", limit=1, columns=["Close"])).first()
    assert cols.array.dtype.names == ("Epoch", "Close")


def test_list_symbols(ms: tuple[str, str]) -> None:
    _, url = ms
    cli = pymkts.Client(url)
    assert sorted(cli.list_symbols()) == ["AAA", "BBB"]
    tbks = cli.list_symbols(pymkts.ListSymbolsFormat.TBK)
    assert "AAA/1Min/OHLCV" in tbks and "BBB/1H/OHLCV" in tbks and "AAA/5Min/OHLCV" in tbks
    assert cli.server_version().startswith("ringfeed-")


def _bars(epochs: list[int], px: float) -> np.ndarray:
    a = np.array(
        [(e, px, px + 1, px - 1, px + 0.5, 10.0) for e in epochs],
        dtype=[("Epoch", "i8"), ("Open", "f4"), ("High", "f4"), ("Low", "f4"), ("Close", "f4"), ("Volume", "f8")],
    )
    return a


def test_write_then_query_back_and_destroy(ms: tuple[str, str]) -> None:
    sock, url = ms
    cli = pymkts.Client(url)
    epochs = [T0_S + 86_400 * 10 + 60 * i for i in range(30)]
    assert cli.write(_bars(epochs, 100.0), "NEW/1Min/OHLCV") == {"responses": None}
    df = cli.query(pymkts.Params("NEW", "1Min", "OHLCV")).first().df()
    assert len(df) == 30 and df["Open"].tolist() == [100.0] * 30
    assert [ts.value // 1_000_000_000 for ts in df.index] == epochs
    # Rolled up on write.
    assert cli.query(pymkts.Params("NEW", "5Min", "OHLCV")).first().df()["Volume"].tolist() == [50.0] * 6
    # A write to a rollup is refused in MarketStore's shape: a response with its error.
    bad = cli.write(_bars(epochs[:1], 1.0), "NEW/5Min/OHLCV")
    assert "base timeframe" in bad["responses"][0]["error"]
    # A new attribute group is a new dataset (created on first write, as MarketStore does).
    cli.write(_bars(epochs[:3], 7.0), "XYZ/1Min/fresh")
    assert cli.query(pymkts.Params("XYZ", "1Min", "fresh")).first().df()["Close"].tolist() == [7.5] * 3
    # Destroy: the symbol's bars are gone, in every timeframe; others are untouched.
    assert cli.destroy("NEW/1Min/OHLCV")["responses"][0]["error"] == ""
    assert len(cli.query(pymkts.Params("NEW", "1Min", "OHLCV")).first().df()) == 0
    assert len(cli.query(pymkts.Params("NEW", "5Min", "OHLCV")).first().df()) == 0
    assert len(cli.query(pymkts.Params("AAA", "1Min", "OHLCV")).first().df()) == 1500
    # Create, then GetInfo through the raw RPC client, then destroy the whole group.
    assert cli.create("Q/1Sec/secs", [("Epoch", "i8"), ("Open", "f8")])["responses"][0]["error"] == ""
    info = cli.client.rpc.call("DataService.GetInfo", requests=[{"key": "AAA/1Min/OHLCV"}])
    r0 = info["responses"][0]
    assert r0["TimeFrame"] == 60_000_000_000 and r0["DSV"][0] == {"Name": "Epoch", "Type": 4}
    assert r0["LatestYear"] == 2021 and r0["ServerResp"]["error"] == ""
    assert cli.destroy("*/1Min/fresh")["responses"][0]["error"] == ""
    assert "XYZ" not in cli.list_symbols()
    # Errors come back in MarketStore's shape: pymarketstore raises with the message.
    with pytest.raises(Exception, match="unknown symbol|no symbol|UNKNOWN"):
        cli.query(pymkts.Params("NOPE", "1Min", "OHLCV"))
    with pytest.raises(Exception, match="timeframe"):
        cli.query(pymkts.Params("AAA", "1Fortnight", "OHLCV"))


def test_stream_conn_receives_live_bars_after_an_append(ms: tuple[str, str]) -> None:
    sock, url = ms
    # As pymarketstore's README does it: a StreamConn on the /ws beside /rpc.
    conn = pymkts.StreamConn(url.replace("http://", "ws://").replace("/rpc", "/ws"))
    got: list[dict[str, Any]] = []
    seen = threading.Event()

    @conn.on(r"^LIVE/")
    def on_bar(_conn: Any, msg: dict[str, Any]) -> None:
        got.append(msg)
        if any(m["key"] == "LIVE/5Min/OHLCV" for m in got) and any(m["key"] == "LIVE/1Min/OHLCV" for m in got):
            seen.set()

    def run() -> None:
        try:
            conn.run(["LIVE/*/OHLCV"])
        except Exception:  # the daemon stops at the end of the test: the socket closes
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    # The subscription goes live when the daemon has read the message: append until a
    # bar comes back (each append is a new minute), within a deadline.
    deadline = time.monotonic() + 30
    minute = 3000
    with rf.connect(sock) as c:
        while not seen.is_set():
            assert time.monotonic() < deadline, f"no live bars over /ws; got {got}"
            c.append("demo", minutes(["LIVE", "OTHER"], minute, 1))
            minute += 1
            seen.wait(0.2)
    one = next(m for m in got if m["key"] == "LIVE/1Min/OHLCV")
    m = (one["data"]["Epoch"] - T0_S) // 60
    assert 3000 <= m < minute
    assert one["data"]["Open"] == float(m) and one["data"]["Close"] == float(m) + 0.5
    five = next(m for m in got if m["key"] == "LIVE/5Min/OHLCV")
    assert five["data"]["Epoch"] % 300 == 0
    assert not any(m["key"].startswith("OTHER") for m in got)
