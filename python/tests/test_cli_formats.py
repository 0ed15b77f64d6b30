"""`ringfeed query --format table|csv|json|arrow|parquet`: each output read back by a
standard reader (pyarrow for the Arrow IPC stream, DuckDB for Parquet, polars for CSV and
JSON lines) equals the rows ingested; the table says how many rows it shows and leaves
out."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from test_store_parquet import _ringfeed

SYMBOLS = ("AAA", "BBB")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, pl.DataFrame]:
    """A store with 2 symbols × 300 minutes of bars (prices with many digits, and an exact
    binary fraction), ingested from CSV by the real binary; the rows as polars saw them."""
    rf = _ringfeed()
    tmp = tmp_path_factory.mktemp("formats")
    rows = []
    for m in range(300):
        for i, s in enumerate(SYMBOLS):
            p = 100.0 + i * 10 + m / 7  # many digits: text formats must round-trip them
            rows.append((f"2024-03-01T{m // 60:02d}:{m % 60:02d}:00Z", s, p, p + 1.25, p - 1.5, p + 0.5, m + 0.125))
    frame = pl.DataFrame(rows, schema=["timestamp", "symbol", "open", "high", "low", "close", "volume"], orient="row")
    csv = tmp / "bars.csv"
    frame.write_csv(csv)
    data = tmp / "data"
    subprocess.run([rf, "ingest", "--data-dir", str(data), "--dataset", "d", "--timeframe", "1m",
                    "--rollups", "none", str(csv)], check=True, capture_output=True)
    want = frame.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC").dt.cast_time_unit("ns")
                              .alias("ts")).select("ts", "symbol", "open", "high", "low", "close", "volume")
    return rf, data, want.sort("symbol", "ts")


def query(store: tuple[str, Path, pl.DataFrame], fmt: str, *extra: str) -> bytes:
    rf, data, _ = store
    out = subprocess.run([rf, "query", "--data-dir", str(data), "--dataset", "d", "--format", fmt, *extra],
                         check=True, capture_output=True)
    return out.stdout


def ohlcv(df: pl.DataFrame) -> pl.DataFrame:
    """The compared columns, ts as UTC ns and symbol as a string."""
    return df.select(
        pl.col("ts").cast(pl.Datetime("ns", "UTC")), pl.col("symbol").cast(pl.String),
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
    )


def test_arrow_ipc_is_exact(store: tuple[str, Path, pl.DataFrame]) -> None:
    table = pa.ipc.open_stream(io.BytesIO(query(store, "arrow"))).read_all()
    got = pl.from_arrow(table)
    assert isinstance(got, pl.DataFrame)
    assert ohlcv(got).equals(store[2])


def test_parquet_read_by_duckdb_is_exact(store: tuple[str, Path, pl.DataFrame], tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "q.parquet"
    path.write_bytes(query(store, "parquet"))
    con = duckdb.connect()
    got = pl.from_arrow(con.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY symbol, ts").to_arrow_table())
    assert isinstance(got, pl.DataFrame)
    assert ohlcv(got).equals(store[2])
    [(n,)] = con.sql(f"SELECT count(*) FROM read_parquet('{path}') WHERE symbol = 'BBB'").fetchall()
    assert n == 300


def test_csv_and_json_lines_round_trip_to_15_digits(store: tuple[str, Path, pl.DataFrame]) -> None:
    want = store[2]
    got_csv = pl.read_csv(io.BytesIO(query(store, "csv")), try_parse_dates=True)
    got_json = pl.read_ndjson(io.BytesIO(query(store, "json")))
    for name, got in (("csv", got_csv), ("json", got_json)):
        got = got.with_columns(pl.col("ts").cast(pl.String).str.to_datetime(time_zone="UTC")
                               if got.schema["ts"] == pl.String else pl.col("ts"))
        got = ohlcv(got)
        assert got.height == want.height, name
        assert got["ts"].equals(want["ts"]), name
        assert got["symbol"].equals(want["symbol"]), name
        for c in ("open", "high", "low", "close", "volume"):
            rel = ((got[c] - want[c]).abs() / want[c].abs()).max()
            assert rel is not None and rel <= 1e-14, (name, c, rel)  # type: ignore[operator]


def test_the_table_shows_the_ends_and_says_what_it_leaves_out(store: tuple[str, Path, pl.DataFrame]) -> None:
    text = query(store, "table", "--symbol", "AAA", "--rows", "3").decode()
    lines = [x for x in text.splitlines() if "AAA" in x]
    assert len(lines) == 6, text  # the first 3 and the last 3
    assert "… 294 rows not shown (--rows N or --all to see more) …" in text, text
    assert "(300 rows)" in text, text
    assert lines[0].startswith("2024-03-01T00:00:00Z") and lines[-1].startswith("2024-03-01T04:59:00Z"), text
    assert "empty in every row: quote_volume, trades, taker_buy_base, taker_buy_quote" in text, text
    full = query(store, "table", "--symbol", "AAA", "--all").decode()
    assert sum("AAA" in x for x in full.splitlines()) == 300
