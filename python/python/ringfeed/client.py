"""Client of the ringfeedd daemon: bars queries, live subscriptions, appends.

The protocol, the time grammar, reconnection and the replay seam live in the
Rust crate ``ringfeed-client``; :class:`ringfeed._ringfeed.Client` wraps it.
This module only adds the polars and pyarrow conveniences on top::

    import ringfeed as rf
    c = rf.connect()                                  # $RINGFEED_SOCKET or the default path
    df = c.bars("binance-spot", "BTCUSDT", "1h", start="2021-01-01", end="2022-01-01")
    for batch in c.subscribe("binance-spot", "5m"):  # live topic ring
        print(batch.to_polars())

The daemon answers a query by materialising the result into a shared-memory
arena; the client maps that arena, so the DataFrame points into the daemon's
memory (one copy in RAM however many processes ask).
"""

from __future__ import annotations

import os
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Type, Union, overload

from . import _ringfeed
from ._ringfeed import Batch, DaemonError, Reader, Replay, default_socket
from .types import HealthReport, InvalidRows, Position, ReadyReport, Symbols, TimeLike

if TYPE_CHECKING:
    import polars as pl


class RowsRejectedWarning(UserWarning):
    """An append stored its good rows and skipped (``invalid="skip"``) or flagged
    (``invalid="keep"``) others; the message lists the first ones with their row numbers."""


class Client:
    """One connection to ringfeedd; use :func:`connect`.

    Every call goes through :attr:`native` (the Rust client); a connection
    that broke (say, the daemon restarted) is reopened by the next call.
    """

    native: _ringfeed.Client
    """The extension's client: the same calls, with :meth:`bars` answering a
    list of :class:`Batch` (for consumers of ``__arrow_c_stream__`` without
    polars or pyarrow)."""

    def __init__(self, socket: Union[str, os.PathLike[str], None] = None, timeout: Optional[float] = 120.0) -> None:
        self.native = _ringfeed.Client(socket, timeout)

    @property
    def path(self) -> str:
        """The socket path."""
        return self.native.path

    @property
    def closed(self) -> bool:
        return self.native.closed

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self.native)

    def close(self) -> None:
        """Closes the connection (idempotent); what it returned stays valid."""
        self.native.close()

    def set_timeout(self, timeout: Optional[float]) -> None:
        """How long a request may wait for its answer, in seconds (None: forever)."""
        self.native.set_timeout(timeout)

    def ping(self) -> None:
        self.native.ping()

    def stat(self) -> str:
        """Metrics as Prometheus text."""
        return self.native.stat()

    def datasets(self) -> Dict[str, Any]:
        """``{dataset: {"base": ..., "timeframes": [...], "symbols": [...], "config": {...}}}``
        (``config``: the store settings, as a follower copies them)."""
        return self.native.datasets()

    def create_dataset(
        self,
        dataset: str,
        base: str = "1m",
        rollups: Optional[Sequence[str]] = None,
        fsync: Optional[str] = None,
        retention: Optional[str] = None,
        rollup_retention: Optional[str] = None,
        week_start: Optional[str] = None,
    ) -> str:
        """Creates ``dataset`` through the daemon: ``base`` timeframe, ``rollups`` kept on
        write (e.g. ``["5m", "1h", "1d"]``; default: the ladder 5m, 15m, 1h, 1d above
        ``base``; ``[]`` for none), ``fsync`` ("always", "never", "every:<ms>"),
        ``retention`` ("400d", "26w", "2y": partitions wholly older are dropped at each
        write-down; default: keep everything), ``rollup_retention`` (rollups kept
        longer, e.g. "10y") and ``week_start`` (first day of ``1w`` bars: "mon", the
        default, ... "sun"). The same settings again are a no-op. Returns the daemon's
        summary."""
        return self.native.create_dataset(
            dataset, base, list(rollups) if rollups is not None else None, fsync, retention, rollup_retention,
            week_start,
        )

    def ready(self, dataset: Optional[str] = None) -> ReadyReport:
        """Whether the daemon answers queries and appends, and per dataset (default:
        all) its symbols and, per stored timeframe, the first and last bar (ns since
        the epoch, None when empty), the hot days and the number of cold days."""
        return self.native.ready(dataset)

    def health(self) -> HealthReport:
        """Whether the daemon can answer queries and take appends right now (``ping``
        only says it answers): ``healthy``, and per subsystem (store, ingest lock,
        data directory, writability, integrity, result cache, topics) ``ok`` and a
        ``detail`` that says what to do when not ok."""
        return self.native.health()

    def call(self, request: Dict[str, Any], payload: bytes = b"") -> Dict[str, Any]:
        """Sends one raw protocol request (``{"op": ...}``) and returns the answer's
        header; raises :class:`DaemonError`. For tools and tests."""
        return self.native.call(request, payload)

    def bars(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m", *,
             start: Optional[TimeLike] = None, end: Optional[TimeLike] = None,
             fields: Union[str, Sequence[str], None] = None, limit: Optional[int] = None,
             from_end: bool = False, offset: Optional[str] = None, week_start: Optional[str] = None) -> pl.DataFrame:
        """Bars as a ``polars.DataFrame`` whose chunks point into the daemon's shared memory.

        ``symbols``: one symbol, ``"A,B"``, a list, or None/``"*"`` for all.
        ``timeframe``: stored ("1m", "5m", ...) or any other interval, resampled on
        read (``offset`` shifts the buckets), including calendar months and years
        ("1M", "3M", "1Y"; capital M is months, lowercase m minutes): read as stored when
        the dataset keeps them as rollups, else resampled on read, within the dataset's
        session when it has one. ``start`` (included) and ``end``
        (excluded): see :data:`ringfeed.types.TimeLike`. ``fields``: columns besides
        ts and symbol. ``limit`` bars per symbol, from the end if ``from_end``.
        ``week_start``: first day of week timeframes ("sun", "mon", ...; default: the
        dataset's, Monday unless created otherwise).

        Columns: ``ts`` (datetime[ns, UTC], the bar's open time), ``symbol``,
        ``open, high, low, close, volume`` (f64), then ``quote_volume``, ``trades``
        (i64), ``taker_buy_base``, ``taker_buy_quote`` (null where the source has
        none), and for rollups and resampled timeframes ``complete`` (False while
        the bar's window is still open).
        """
        import polars as pl

        batches = self.native.bars(dataset, symbols, timeframe, start=start, end=end, fields=fields,
                                   limit=limit, from_end=from_end, offset=offset, week_start=week_start)
        frames = [pl.DataFrame(b) for b in batches]
        if not frames:
            return pl.DataFrame()
        return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False)

    def bars_arrow(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m", *,
                   start: Optional[TimeLike] = None, end: Optional[TimeLike] = None,
                   fields: Union[str, Sequence[str], None] = None, limit: Optional[int] = None,
                   from_end: bool = False, offset: Optional[str] = None, week_start: Optional[str] = None) -> Any:
        """Like :meth:`bars`, as a ``pyarrow.Table`` whose chunks point into the daemon's
        arena (typed Any: pyarrow has no type information)."""
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

        batches = self.native.bars(dataset, symbols, timeframe, start=start, end=end, fields=fields,
                                   limit=limit, from_end=from_end, offset=offset, week_start=week_start)
        return pa.Table.from_batches([b.to_arrow() for b in batches]) if batches else pa.table({})

    # The three position strings are also str (a TimeLike): the overlap is the
    # point, and the first overload wins for them, as at runtime.
    @overload
    def subscribe(  # type: ignore[overload-overlap]
        self, dataset: str, timeframe: str, start: Position = "next"
    ) -> Reader: ...

    @overload
    def subscribe(self, dataset: str, timeframe: str, start: TimeLike, *, symbols: Symbols = None) -> Replay: ...

    def subscribe(self, dataset: str, timeframe: str, start: Union[Position, TimeLike] = "next", *,
                  symbols: Symbols = None) -> Union[Reader, Replay]:
        """Live batches of (dataset, timeframe).

        ``start`` = "next" (default), "latest" or "oldest": a :class:`Reader` of the
        live topic ring at that position, holding every symbol (passing ``symbols``
        raises :class:`InvalidArgumentError`: give a start time instead). Any other
        ``start`` is a time: a :class:`Replay` (see :meth:`replay`).
        """
        return self.native.subscribe(dataset, timeframe, start, symbols=symbols)

    def replay(self, dataset: str, timeframe: str, start: TimeLike, *, symbols: Symbols = None) -> Replay:
        """The stored bars of (dataset, timeframe) from ``start`` (of ``symbols``, default
        all), then every live batch (only the rows of ``symbols``), with no gap and no
        duplicate at the seam. Iterate it, or call ``read(timeout=)``."""
        return self.native.replay(dataset, timeframe, start, symbols=symbols)

    def append(self, dataset: str, frame: Any, *, invalid: InvalidRows = "refuse") -> int:
        """Appends rows at the dataset's base timeframe; returns the rows stored, once
        durable. ``frame``: a polars DataFrame, a pyarrow Table or RecordBatch, or any
        object with ``__arrow_c_stream__`` / ``__arrow_c_array__`` (imported in Rust,
        without pyarrow). ``ts`` must be a timestamp (a naive one is read as UTC).

        Every row is checked by the store's rules (finite, non-negative prices, low <= open,
        close <= high, volume >= 0, ts on the timeframe's grid). ``invalid`` says what a bad
        row does: ``"refuse"`` (default: nothing is stored and ``DaemonError`` names the
        row), ``"skip"`` (the good rows are stored, and a ``RowsRejectedWarning`` lists the
        others) or ``"keep"`` (stored, and a warning lists them as flagged)."""
        report = self.native.append(dataset, frame, invalid)
        if report["rejected"] or report["flagged"]:
            lines = "; ".join(report["rejects"] + report["flags"])
            warnings.warn(
                RowsRejectedWarning(
                    f"{dataset}: {report['rejected']} rows rejected, {report['flagged']} kept flagged: {lines}"
                ),
                stacklevel=2,
            )
        return int(report["rows_stored"])

    def delete(self, dataset: str, start: TimeLike, end: TimeLike, symbol: Optional[str] = None) -> str:
        """Deletes the bars of ``symbol`` (default: every symbol) in ``[start, end)``: a
        correction; the rollups follow and cached query results it changes are dropped.
        Live subscribers are not told. Returns the daemon's summary."""
        return self.native.delete(dataset, start, end, symbol)

    def write_down(self, dataset: Optional[str] = None, before: Optional[str] = None, all: bool = False) -> str:
        """Moves finished days into the Parquet cold tier now: the days before ``before``
        ("YYYY-MM-DD", default: before today), or every day with ``all=True``, of
        ``dataset`` (default: every dataset). The daemon also does this by itself after
        each UTC midnight. Returns its one-line summary."""
        return self.native.write_down(dataset, before, all)

    def set_retention(self, dataset: str, retention: Optional[str], rollup_retention: Optional[str] = None) -> str:
        """Sets how long ``dataset`` keeps its rows (``"400d"``, ``"26w"``, ``"2y"``; a
        year is 365 days; ``None`` keeps everything) and, optionally, the longer
        ``rollup_retention`` of its rollups, then applies it: partitions wholly older are
        dropped whole (never rewritten), now and at every write-down. Returns the
        daemon's summary."""
        return self.native.set_retention(dataset, retention, rollup_retention)

    def trim(self, dataset: str, before: TimeLike, symbol: Optional[str] = None) -> str:
        """Removes the rows of ``symbol`` (default: every symbol) with ``ts < before``, in
        every stored timeframe, hot and cold. Rollup bars of the day holding ``before``
        are recomputed from the rows left; cached query results it changes are dropped.
        Returns the daemon's summary."""
        return self.native.trim(dataset, before, symbol)

    def drop_dataset(self, dataset: str, yes: bool = False) -> str:
        """Removes ``dataset`` and its files; its live topics close. A dataset holding
        rows is refused (``DaemonError``, kind ``bad_request``, saying what it holds) unless
        ``yes=True``.
        Afterwards the name is free for a dataset with other settings. Returns the
        daemon's summary."""
        return self.native.drop_dataset(dataset, yes)


def connect(socket: Union[str, os.PathLike[str], None] = None, timeout: Optional[float] = 120.0, *,
            token: Optional[str] = None, tls_root_certs: Optional[bytes] = None,
            cert_chain: Optional[bytes] = None, private_key: Optional[bytes] = None) -> Client:
    """Connects to ringfeedd (default socket: :func:`default_socket`). ``timeout``:
    seconds a request may wait for its answer (None: forever). Raises
    :class:`ConnectError` when no daemon listens there.

    A ``grpc://host:port`` or ``grpc+tls://host:port`` URL instead of a socket connects
    to the daemon's Arrow Flight face (:class:`ringfeed.remote.RemoteClient`: the same
    methods for queries and status; ``token`` is sent as ``authorization: Bearer``;
    ``tls_root_certs``, ``cert_chain``, ``private_key`` are PEM bytes for TLS)."""
    from .remote import RemoteClient, is_remote

    if is_remote(socket):
        assert isinstance(socket, str)
        return RemoteClient(socket, timeout, token=token, tls_root_certs=tls_root_certs,
                            cert_chain=cert_chain, private_key=private_key)
    return Client(socket, timeout)


__all__ = ["Batch", "Client", "DaemonError", "Reader", "Replay", "RowsRejectedWarning", "connect", "default_socket"]
