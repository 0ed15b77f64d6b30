"""Client of the ringfeedd daemon: bars queries and live subscriptions.

The daemon answers a query by materialising the result into a shared-memory
arena; this client maps that arena, so the DataFrame it returns points into
the daemon's memory (one copy in RAM however many processes ask)::

    import ringfeed as rf
    c = rf.connect()                                  # $RINGFEED_SOCKET or the default path
    df = c.bars("binance-spot", "BTCUSDT", "1h", start="2021-01-01", end="2022-01-01")
    for batch in c.subscribe("binance-spot", "5m"):  # live topic ring
        print(batch.to_polars())

Wire format (see crates/daemon/src/protocol.rs): every message is
``u32 LE header length, JSON header, u64 LE payload length, payload``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from ._ringfeed import Batch, Reader, RingfeedError

TimeLike = Union[int, str, _dt.datetime, _dt.date, None]


class DaemonError(RingfeedError):
    """The daemon refused a request. ``kind`` is machine-readable
    (``unknown_dataset``, ``unknown_symbol``, ``bad_timeframe``, ``bad_request``,
    ``too_large``, ``too_many_pending``, ``busy``, ``store``, ``ring``, ``internal``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"ringfeedd: {message}")
        self.kind = kind


def default_socket() -> str:
    """``$RINGFEED_SOCKET``, else ``$XDG_RUNTIME_DIR/ringfeed.sock``, else ``/tmp/ringfeed-$UID.sock``."""
    if os.environ.get("RINGFEED_SOCKET"):
        return os.environ["RINGFEED_SOCKET"]
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run:
        return str(Path(run) / "ringfeed.sock")
    return f"/tmp/ringfeed-{os.getuid()}.sock"


def _time(t: TimeLike) -> Union[int, str, None]:
    if t is None or isinstance(t, (int, str)):
        return t
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000
    if isinstance(t, _dt.date):
        return t.isoformat()
    raise TypeError(f"time must be ns (int), 'YYYY-MM-DD' / RFC 3339 text, datetime or date, not {type(t).__name__}")


class Client:
    """One connection to ringfeedd. Use :func:`connect`."""

    def __init__(self, path: Optional[str] = None, timeout: float = 30.0) -> None:
        self.path = path or default_socket()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.path)
        except OSError as e:
            self._sock.close()
            raise RingfeedError(
                f"cannot connect to ringfeedd at {self.path!r}: {e}; start it with `ringfeed serve` (or set RINGFEED_SOCKET)"
            ) from None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise RingfeedError("ringfeedd closed the connection")
            buf += chunk
        return bytes(buf)

    def _recv_response(self) -> Dict[str, Any]:
        (hlen,) = struct.unpack("<I", self._recv_exact(4))
        resp: Dict[str, Any] = json.loads(self._recv_exact(hlen))
        (plen,) = struct.unpack("<Q", self._recv_exact(8))
        if plen:
            self._recv_exact(plen)
        return resp

    def call(self, request: Dict[str, Any], payload: bytes = b"") -> Dict[str, Any]:
        """Sends one request and returns the response header (raises DaemonError)."""
        head = json.dumps(request).encode()
        try:
            self._sock.sendall(struct.pack("<I", len(head)) + head + struct.pack("<Q", len(payload)) + payload)
        except OSError as e:
            # A daemon that refuses a request (busy, oversize) answers and hangs up,
            # possibly before the request is written: its answer is the better error.
            try:
                resp = self._recv_response()
            except (OSError, RingfeedError, ValueError):
                raise RingfeedError(f"ringfeedd connection failed: {e}") from e
        else:
            resp = self._recv_response()
        if not resp.get("ok"):
            err = resp.get("error") or {}
            raise DaemonError(err.get("kind", "internal"), err.get("message", "error without details"))
        return resp

    def ping(self) -> None:
        self.call({"op": "ping"})

    def stat(self) -> str:
        """Metrics as Prometheus text."""
        return str(self.call({"op": "stat"}).get("text", ""))

    def delete(self, dataset: str, start: TimeLike, end: TimeLike, symbol: Optional[str] = None) -> str:
        """Deletes the bars of ``symbol`` (default: every symbol) in ``[start, end)``: a correction;
        the rollups follow and cached query results it changes are dropped. Live subscribers are not
        told. Returns the daemon's summary."""
        if start is None or end is None:
            raise ValueError("delete needs both start and end")
        request = {"op": "delete", "dataset": dataset, "symbol": symbol, "start": _time(start), "end": _time(end)}
        return str(self.call(request).get("text", ""))

    def write_down(self, dataset: Optional[str] = None, before: Optional[str] = None, all: bool = False) -> str:
        """Asks the daemon to move finished days into the Parquet cold tier now: the days before
        ``before`` ("YYYY-MM-DD", default: before today), or every day with ``all=True``, of
        ``dataset`` (default: every dataset). The daemon also does this by itself after each UTC
        midnight. Returns its one-line summary."""
        request = {"op": "write_down", "dataset": dataset, "before": before, "all": all}
        return str(self.call(request).get("text", ""))

    def datasets(self) -> Dict[str, Any]:
        """Datasets with their base timeframe, stored timeframes and symbols."""
        return dict(self.call({"op": "datasets"}).get("data") or {})

    def _query(self, dataset: str, symbols: Union[str, Sequence[str], None], timeframe: str,
               start: TimeLike, end: TimeLike, fields: Optional[Sequence[str]], limit: Optional[int],
               from_end: bool, offset: Optional[str]) -> List[Any]:
        if isinstance(symbols, str):
            symbols = [symbols]
        req: Dict[str, Any] = {"op": "query", "dataset": dataset, "symbols": list(symbols or []), "timeframe": timeframe,
                               "from_end": bool(from_end)}
        for k, v in (("start", _time(start)), ("end", _time(end)), ("offset", offset), ("limit", limit),
                     ("fields", list(fields) if fields is not None else None)):
            if v is not None:
                req[k] = v
        resp = self.call(req)
        arena, n = resp["arena"], int(resp.get("batches", 0))
        try:
            r = Reader.open(arena, start="oldest")
            batches: List[Any] = []
            while len(batches) < n:
                b = r.read(timeout=10.0)
                if b is None:
                    raise RingfeedError(f"timed out reading query result {arena!r}")
                batches.append(b)
            r.close()
        finally:
            # Mapped (or failed): the daemon now accounts for it by its leases.
            self.call({"op": "release", "arena": arena})
        return batches

    def bars_arrow(self, dataset: str, symbols: Union[str, Sequence[str], None] = None, timeframe: str = "1m", *,
                   start: TimeLike = None, end: TimeLike = None, fields: Optional[Sequence[str]] = None,
                   limit: Optional[int] = None, from_end: bool = False, offset: Optional[str] = None) -> Any:
        """Like :meth:`bars`, as a ``pyarrow.Table`` whose chunks point into the daemon's arena."""
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

        batches = self._query(dataset, symbols, timeframe, start, end, fields, limit, from_end, offset)
        rbs = [b.to_arrow() for b in batches]
        return pa.Table.from_batches(rbs) if rbs else pa.table({})

    def bars(self, dataset: str, symbols: Union[str, Sequence[str], None] = None, timeframe: str = "1m", *,
             start: TimeLike = None, end: TimeLike = None, fields: Optional[Sequence[str]] = None,
             limit: Optional[int] = None, from_end: bool = False, offset: Optional[str] = None) -> Any:
        """Bars as a ``polars.DataFrame`` (zero-copy chunks in the daemon's shared memory).

        ``symbols``: one symbol, a list, or None/"*" for all. ``timeframe``: stored
        ("1m", "5m", ...) or any other interval, resampled on read (``offset`` shifts
        the buckets). ``start`` (included) and ``end`` (excluded): ns, "YYYY-MM-DD",
        RFC 3339, datetime or date. ``limit`` bars per symbol, from the end if ``from_end``.
        """
        import polars as pl

        batches = self._query(dataset, symbols, timeframe, start, end, fields, limit, from_end, offset)
        frames = [pl.DataFrame(b) for b in batches]
        if not frames:
            return pl.DataFrame()
        return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)

    def subscribe(self, dataset: str, timeframe: str, start: TimeLike = "next", *,
                  symbols: Union[str, Sequence[str], None] = None) -> Union[Reader, "Replay"]:
        """Live batches of (dataset, timeframe).

        ``start`` = "next" (default), "latest" or "oldest": a :class:`Reader` of the
        live topic ring at that position. Any other ``start`` is a time (ns, "YYYY-MM-DD",
        RFC 3339, datetime or date): a :class:`Replay` that yields the stored bars from
        that time (of ``symbols``, default all), then the live batches, with no gap
        and no duplicate at the seam.
        """
        if isinstance(start, str) and start in _RING_POSITIONS:
            resp = self.call({"op": "subscribe", "dataset": dataset, "timeframe": timeframe})
            return Reader.open(resp["arena"], start=start)  # type: ignore[arg-type]
        return self.replay(dataset, timeframe, start, symbols=symbols)

    def replay(self, dataset: str, timeframe: str, start: TimeLike, *,
               symbols: Union[str, Sequence[str], None] = None) -> "Replay":
        """History of (dataset, timeframe) from ``start``, then live: see :meth:`subscribe`."""
        when = _time(start)
        if when is None:
            raise TypeError("replay needs a start time")
        if isinstance(symbols, str):
            symbols = [symbols]
        # The live reader joins first, so it holds every publication from the seam on.
        resp = self.call({"op": "subscribe", "dataset": dataset, "timeframe": timeframe})
        live = Reader.open(resp["arena"], start="next")
        try:
            snap = self.call({"op": "replay", "dataset": dataset, "timeframe": timeframe, "start": when,
                              "symbols": list(symbols or [])})
            arena = snap["arena"]
            try:
                history = Reader.open(arena, start="oldest")
            finally:
                # Mapped (or failed): the daemon now accounts for it by its reader row.
                self.call({"op": "release", "arena": arena})
        except BaseException:
            live.close()
            raise
        return Replay(history, int(snap.get("batches", 0)), int(snap.get("rows", 0)), live, int(snap["seq"]))

    def append(self, dataset: str, frame: Any) -> int:
        """Appends rows at the dataset's base timeframe; returns once they are durable.
        ``frame``: polars DataFrame, pyarrow Table/RecordBatch, or anything with ``__arrow_c_stream__``."""
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

        table = frame if isinstance(frame, pa.Table) else pa.table(frame)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        return int(self.call({"op": "append", "dataset": dataset}, sink.getvalue().to_pybytes()).get("rows", 0))


_RING_POSITIONS = ("next", "latest", "oldest")


class Replay:
    """Stored bars from a time, then live batches (see :meth:`Client.subscribe`).

    Iterate it, or call :meth:`read`. History batches come first (sorted by
    symbol, then time, as a query returns them), then every live batch the
    daemon publishes from the seam on; a live batch published before the
    history was taken is skipped, so nothing repeats and nothing is missing.
    """

    def __init__(self, history: Reader, batches: int, rows: int, live: Reader, seam: int) -> None:
        self._history: Optional[Reader] = history
        self._left = batches
        self.history_rows = rows
        self.live = live
        self.seam = seam

    @property
    def in_history(self) -> bool:
        """Whether history batches remain."""
        return self._history is not None and self._left > 0

    def read(self, timeout: Optional[float] = None) -> Optional[Batch]:
        """The next batch, or None if nothing arrives within ``timeout`` seconds."""
        if self._history is not None:
            if self._left > 0:
                b = self._history.read(timeout=10.0 if timeout is None else max(timeout, 10.0))
                if b is None:
                    raise RingfeedError("timed out reading the replayed history")
                self._left -= 1
                return b
            self._history.close()
            self._history = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            b = self.live.read(timeout=left)
            if b is None or b.seq >= self.seam:
                return b

    def __iter__(self) -> Iterator[Batch]:
        while True:
            b = self.read()
            if b is None:
                return
            yield b

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None
        self.live.close()

    def __enter__(self) -> "Replay":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def connect(socket: Optional[str] = None, timeout: float = 30.0) -> Client:
    """Connects to ringfeedd (default socket: :func:`default_socket`)."""
    return Client(socket, timeout)


__all__ = ["Client", "DaemonError", "Replay", "connect", "default_socket"]
