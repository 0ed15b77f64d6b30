"""A ringfeedd on another host, over Arrow Flight: ``rf.connect("grpc://host:8815")``.

The daemon's Flight face (``[flight] listen`` in its config, docs/flight.md) takes the
same query fields as the local client; this client sends them as the JSON ticket and
returns the same types: :meth:`RemoteClient.bars` a polars DataFrame, ``bars_arrow`` a
pyarrow Table, ``ready``/``datasets``/``stat``/``ping`` as the local ones. Data crosses
the network, so frames are copies in this process (no shared memory).

Appends go through DoPut (each append one batch, acknowledged once durable), deletes
and write-downs through actions. Subscriptions and replays are Flight subscribe tickets (:class:`RemoteReplay`). Not
served over Flight yet (they raise :class:`RemoteUnsupportedError`, saying so):
retention, trims, dataset creation and removal, ``health`` and raw ``call``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import TYPE_CHECKING, Any, Dict, NoReturn, Optional, Sequence, Union

from ._ringfeed import RingfeedError
from .client import Client
from .types import ReadyReport, Symbols, TimeLike

if TYPE_CHECKING:
    import polars as pl

__all__ = ["RemoteBatch", "RemoteClient", "RemoteReplay", "RemoteUnsupportedError", "is_remote"]

SCHEMES = ("grpc://", "grpc+tcp://", "grpc+tls://")


def is_remote(target: Union[str, "os.PathLike[str]", None]) -> bool:
    """Whether :func:`ringfeed.connect` was given a Flight URL rather than a socket."""
    return isinstance(target, str) and target.startswith(SCHEMES)


class RemoteUnsupportedError(RingfeedError):
    """The operation is not served over Flight yet: use a local client on the daemon's
    host."""


def _symbols(symbols: Symbols) -> Any:
    """Symbols for JSON: a string as given (the daemon splits ``"A,B"``), else a list."""
    return symbols if symbols is None or isinstance(symbols, str) else list(symbols)


def _time(t: Optional[TimeLike]) -> Any:
    """A time for the JSON ticket: ints and strings as given (the daemon applies the one
    time grammar), datetimes and dates as ISO text (naive = UTC)."""
    return t.isoformat() if isinstance(t, (dt.datetime, dt.date)) else t


class RemoteClient(Client):
    """A :class:`ringfeed.Client` whose calls go to a daemon's Flight face. Made by
    ``rf.connect("grpc://host:port", token=...)``."""

    def __init__(self, location: str, timeout: Optional[float] = 120.0, *,
                 token: Optional[str] = None, tls_root_certs: Optional[bytes] = None,
                 cert_chain: Optional[bytes] = None, private_key: Optional[bytes] = None) -> None:
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        kwargs: Dict[str, Any] = {}
        if tls_root_certs is not None:
            kwargs["tls_root_certs"] = tls_root_certs
        if cert_chain is not None:
            kwargs["cert_chain"] = cert_chain
        if private_key is not None:
            kwargs["private_key"] = private_key
        self._location = location
        self._flight = flight.FlightClient(location, **kwargs)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._timeout = timeout
        self._headers = headers
        self._closed = False

    def _options(self) -> Any:
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        return flight.FlightCallOptions(timeout=self._timeout, headers=self._headers)

    @property
    def path(self) -> str:
        """The Flight location."""
        return self._location

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"RemoteClient({self._location!r}{', closed' if self._closed else ''})"

    def close(self) -> None:
        if not self._closed:
            self._flight.close()
            self._closed = True

    def set_timeout(self, timeout: Optional[float]) -> None:
        self._timeout = timeout

    def _action(self, kind: str, body: Optional[Dict[str, Any]] = None) -> bytes:
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        payload = json.dumps(body).encode() if body is not None else b""
        results = list(self._flight.do_action(flight.Action(kind, payload), self._options()))
        return b"".join(r.body.to_pybytes() for r in results)

    def ping(self) -> None:
        self._action("ping")

    def stat(self) -> str:
        return self._action("stat").decode()

    def datasets(self) -> Dict[str, Any]:
        out: Dict[str, Any] = json.loads(self._action("datasets"))
        return out

    def ready(self, dataset: Optional[str] = None) -> ReadyReport:
        body = {"dataset": dataset} if dataset is not None else None
        out: ReadyReport = json.loads(self._action("ready", body))
        return out

    def _ticket(self, dataset: str, symbols: Symbols, timeframe: str, start: Optional[TimeLike],
                end: Optional[TimeLike], fields: Union[str, Sequence[str], None], limit: Optional[int],
                from_end: bool, offset: Optional[str], week_start: Optional[str]) -> bytes:
        q: Dict[str, Any] = {"dataset": dataset, "timeframe": timeframe}
        if symbols is not None:
            q["symbols"] = _symbols(symbols)
        for k, v in (("start", _time(start)), ("end", _time(end)), ("limit", limit),
                     ("offset", offset), ("week_start", week_start)):
            if v is not None:
                q[k] = v
        if fields is not None:
            q["fields"] = [f.strip() for f in fields.split(",")] if isinstance(fields, str) else list(fields)
        if from_end:
            q["from_end"] = True
        return json.dumps(q).encode()

    def bars_arrow(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m", *,
                   start: Optional[TimeLike] = None, end: Optional[TimeLike] = None,
                   fields: Union[str, Sequence[str], None] = None, limit: Optional[int] = None,
                   from_end: bool = False, offset: Optional[str] = None, week_start: Optional[str] = None) -> Any:
        """As :meth:`ringfeed.Client.bars_arrow`: a ``pyarrow.Table`` (here a copy, read
        from the network)."""
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        ticket = self._ticket(dataset, symbols, timeframe, start, end, fields, limit, from_end, offset, week_start)
        return self._flight.do_get(flight.Ticket(ticket), self._options()).read_all()

    def bars(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m", *,
             start: Optional[TimeLike] = None, end: Optional[TimeLike] = None,
             fields: Union[str, Sequence[str], None] = None, limit: Optional[int] = None,
             from_end: bool = False, offset: Optional[str] = None, week_start: Optional[str] = None) -> pl.DataFrame:
        """As :meth:`ringfeed.Client.bars` (same arguments and columns)."""
        import polars as pl

        table = self.bars_arrow(dataset, symbols, timeframe, start=start, end=end, fields=fields, limit=limit,
                                from_end=from_end, offset=offset, week_start=week_start)
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        return df

    def _unsupported(self, what: str) -> NoReturn:
        raise RemoteUnsupportedError(
            f"{what} is not served over Flight yet: call it through a local client on the daemon's host "
            f"(rf.connect() with its socket)")

    def health(self) -> Any:
        self._unsupported("health")

    def call(self, request: Dict[str, Any], payload: bytes = b"") -> Dict[str, Any]:
        self._unsupported("call")

    def create_dataset(self, dataset: str, base: str = "1m", rollups: Optional[Sequence[str]] = None,
                       fsync: Optional[str] = None, retention: Optional[str] = None,
                       rollup_retention: Optional[str] = None, week_start: Optional[str] = None) -> str:
        self._unsupported("create_dataset")

    def subscribe(self, dataset: str, timeframe: str, start: Any = "next", *, symbols: Symbols = None) -> Any:
        """As :meth:`ringfeed.Client.subscribe`, over a Flight subscribe ticket: a
        :class:`RemoteReplay` (history from ``start``, then live batches, with the local
        replay's seam). ``start="next"``: live batches from now on; ``"latest"`` and
        ``"oldest"`` (ring positions) have no remote meaning and raise."""
        if start in ("latest", "oldest"):
            self._unsupported(f"subscribe(start={start!r})")
        if start == "next":
            import time

            start = time.time_ns()
        return self.replay(dataset, timeframe, start, symbols=symbols)

    def replay(self, dataset: str, timeframe: str, start: TimeLike, *, symbols: Symbols = None) -> Any:
        """As :meth:`ringfeed.Client.replay`: the stored bars from ``start``, then every
        live batch, no gap and no duplicate at the seam; only the rows of ``symbols``.
        Returns a :class:`RemoteReplay` (typed Any: it is not the local ``Replay``, whose
        batches live in shared memory)."""
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        sub: Dict[str, Any] = {"dataset": dataset, "timeframe": timeframe, "start": _time(start)}
        if symbols is not None:
            sub["symbols"] = _symbols(symbols)
        ticket = flight.Ticket(json.dumps({"subscribe": sub}).encode())
        # No call deadline: a subscription lasts until closed.
        options = flight.FlightCallOptions(headers=self._headers)
        return RemoteReplay(self._flight.do_get(ticket, options))

    def append(self, dataset: str, frame: Any, *, invalid: Any = "refuse") -> int:
        """As :meth:`ringfeed.Client.append`, over Flight's DoPut: the frame (polars,
        pyarrow, or anything with ``__arrow_c_stream__``) is sent as one record batch, one
        append, stored whole or refused whole; returns the rows stored once durable. Needs
        a token with ``write`` on the dataset."""
        import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
        import pyarrow.flight as flight  # type: ignore[import-untyped,unused-ignore]

        table = frame.to_arrow() if hasattr(frame, "to_arrow") else pa.table(frame)
        batch = table.combine_chunks().to_batches()
        descriptor = flight.FlightDescriptor.for_command(json.dumps({"dataset": dataset, "invalid": invalid}))
        writer, acks = self._flight.do_put(descriptor, table.schema, self._options())
        rows = 0
        for b in batch:
            writer.write_batch(b)
        writer.done_writing()
        while True:
            ack = acks.read()
            if ack is None:
                break
            rows += int(json.loads(ack.to_pybytes())["rows"])
        writer.close()
        return rows

    def delete(self, dataset: str, start: TimeLike, end: TimeLike, symbol: Optional[str] = None) -> str:
        """As :meth:`ringfeed.Client.delete` (needs an ``admin`` token)."""
        body: Dict[str, Any] = {"dataset": dataset, "start": _time(start), "end": _time(end)}
        if symbol is not None:
            body["symbol"] = symbol
        out: Dict[str, Any] = json.loads(self._action("delete", body))
        return str(out["text"])

    def write_down(self, dataset: Optional[str] = None, before: Optional[str] = None, all: bool = False) -> str:
        """As :meth:`ringfeed.Client.write_down` (needs an ``admin`` token)."""
        body: Dict[str, Any] = {"all": all}
        if dataset is not None:
            body["dataset"] = dataset
        if before is not None:
            body["before"] = before
        out: Dict[str, Any] = json.loads(self._action("write_down", body))
        return str(out["text"])

    def set_retention(self, dataset: str, retention: Optional[str], rollup_retention: Optional[str] = None) -> str:
        self._unsupported("set_retention")

    def trim(self, dataset: str, before: TimeLike, symbol: Optional[str] = None) -> str:
        self._unsupported("trim")

    def drop_dataset(self, dataset: str, yes: bool = False) -> str:
        self._unsupported("drop_dataset")


class RemoteBatch:
    """A batch of a :class:`RemoteReplay`: ``to_polars()``, ``to_arrow()`` (a copy that
    came over the network, not shared memory)."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    @property
    def num_rows(self) -> int:
        return int(self._batch.num_rows)

    def to_arrow(self) -> Any:
        """The ``pyarrow.RecordBatch``."""
        return self._batch

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        df = pl.from_arrow(self._batch)
        assert isinstance(df, pl.DataFrame)
        return df

    def __arrow_c_array__(self, requested_schema: Any = None) -> Any:
        return self._batch.__arrow_c_array__(requested_schema)


class RemoteReplay:
    """History then live batches from a daemon's Flight face: ``read(timeout=)``,
    iteration, ``close()``. A thread pulls batches off the network into a queue, so
    ``read`` can wait with a timeout."""

    def __init__(self, reader: Any) -> None:
        import queue
        import threading

        self._reader = reader
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._pull, name="ringfeed-remote-replay", daemon=True)
        self._thread.start()

    def _pull(self) -> None:
        try:
            while True:
                chunk = self._reader.read_chunk()
                self._queue.put(RemoteBatch(chunk.data))
        except StopIteration:
            self._queue.put(StopIteration())
        except BaseException as e:  # handed to the reader, raised there
            self._queue.put(e)

    def read(self, timeout: Optional[float] = None) -> Optional[RemoteBatch]:
        """The next batch, waiting up to ``timeout`` seconds (None: until one comes);
        ``None`` on timeout. Raises the server's error (e.g. ``FlightResourceExhaustedError``
        when the subscriber fell behind and was cut); ``ClosedError`` once it ended."""
        import queue

        from ._ringfeed import ClosedError

        if self._closed:
            raise ClosedError("the remote replay is closed")
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, RemoteBatch):
            return item
        self._closed = True
        if isinstance(item, StopIteration):
            raise ClosedError("the remote subscription ended")
        raise item

    def __iter__(self) -> RemoteReplay:
        return self

    def __next__(self) -> RemoteBatch:
        from ._ringfeed import ClosedError

        try:
            b = self.read(None)
        except ClosedError:
            raise StopIteration from None
        assert b is not None
        return b

    def close(self) -> None:
        """Cancels the subscription."""
        if not self._closed:
            self._closed = True
            self._reader.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RemoteReplay:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
