"""asyncio faces of the readers and the daemon client.

::

    import ringfeed as rf
    from ringfeed.aio import AsyncReader, connect_async

    async with AsyncReader(rf.Reader.open("bars.demo")) as r:
        async for batch in r:            # awaits; the event loop keeps running
            df = batch.to_polars()

    c = await connect_async()
    df = await c.bars("crypto", "BTCUSDT", "1h", start="2024-01-01")
    async for batch in c.subscribe("crypto", "1m", "2024-06-01"):
        ...

How it waits, and why it does not poll: a batch that is ready is returned at once, on the
event loop's thread. Otherwise the wait runs on a thread of the reader's own (one per
reader, started on first use), blocked in the ring's futex wait with the GIL released, and
the event loop is woken through ``call_soon_threadsafe`` when the batch arrives. Nothing
spins. Client calls run on one thread per client, in order, as a blocking client would
make them (a connection carries one request at a time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Type, TypeVar, Union

from ._ringfeed import Batch, ClosedError, Reader, Replay
from .client import Client, connect
from .types import HealthReport, InvalidRows, Position, ReadyReport, Symbols, TimeLike

if TYPE_CHECKING:
    import polars as pl

__all__ = ["AsyncReader", "AsyncClient", "connect_async"]

T = TypeVar("T")


class _Waiter:
    """One thread that runs blocking waits and hands each result to the event loop that
    asked (``call_soon_threadsafe``): one hop, no executor futures in between."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue[Optional[Callable[[], None]]]" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ringfeed-aio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def wait(self, loop: asyncio.AbstractEventLoop, f: Callable[[], T]) -> "asyncio.Future[T]":
        fut: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                r = f()
            except BaseException as e:  # handed to the awaiting task, raised there
                loop.call_soon_threadsafe(_fail, fut, e)
            else:
                loop.call_soon_threadsafe(_done, fut, r)

        self._jobs.put(job)
        return fut

    def stop(self) -> None:
        """Ends the thread after the wait in progress; joins it."""
        self._jobs.put(None)
        self._thread.join()


def _done(fut: "asyncio.Future[T]", r: T) -> None:
    if not fut.cancelled():
        fut.set_result(r)


def _fail(fut: "asyncio.Future[Any]", e: BaseException) -> None:
    if not fut.cancelled():
        fut.set_exception(e)


class AsyncReader:
    """``async for batch in AsyncReader(reader)`` over a :class:`Reader` (a live ring) or a
    :class:`Replay` (stored bars, then live ones). Owns the reader: :meth:`aclose` (or
    ``async with``) closes both.

    A cancelled :meth:`read` leaves its wait running on the reader's thread: the batch it
    takes then is kept and returned by the next :meth:`read`, so none is lost."""

    def __init__(self, source: Union[Reader, Replay]) -> None:
        self._source = source
        self._waiter: Optional[_Waiter] = None
        self._pending: Optional[asyncio.Future[Optional[Batch]]] = None

    @property
    def source(self) -> Union[Reader, Replay]:
        """The blocking reader this one awaits."""
        return self._source

    async def read(self, timeout: Optional[float] = None) -> Optional[Batch]:
        """The next batch; waits up to ``timeout`` seconds (``None``: until one comes)
        without blocking the event loop. ``None`` on timeout; raises as ``Reader.read``
        does (``ClosedError`` once the writer closed the ring and every batch was read)."""
        if self._pending is None:
            ready = self._source.read(0)
            if ready is not None or timeout == 0:
                return ready
            if self._waiter is None:
                self._waiter = _Waiter()
            self._pending = self._waiter.wait(asyncio.get_running_loop(),
                                              lambda: self._source.read(timeout))
        # Shielded: a cancelled read leaves the wait (and the batch it takes) pending.
        b = await asyncio.shield(self._pending)
        self._pending = None
        return b

    def __aiter__(self) -> AsyncReader:
        return self

    async def __anext__(self) -> Batch:
        try:
            b = await self.read(None)
        except ClosedError:
            raise StopAsyncIteration from None
        if b is None:  # a Replay ends with None once its source is gone
            raise StopAsyncIteration
        return b

    async def aclose(self) -> None:
        """Close the reader; a wait in progress ends within one wait slice (it then
        raises ``ClosedError`` to whoever awaits it)."""
        waiter, self._waiter = self._waiter, None

        def close() -> None:
            self._source.close()  # the waiting read sees it at its next slice
            if waiter is not None:
                waiter.stop()

        await asyncio.get_running_loop().run_in_executor(None, close)

    async def __aenter__(self) -> AsyncReader:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


class AsyncClient:
    """The daemon client (:class:`ringfeed.Client`) with awaitable methods: the same
    arguments and return types. Calls run in order on the client's own thread."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ringfeed-client")

    @property
    def client(self) -> Client:
        """The blocking client underneath."""
        return self._client

    async def _call(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: f(*args, **kwargs))

    async def ping(self) -> None:
        await self._call(self._client.ping)

    async def stat(self) -> str:
        return await self._call(self._client.stat)

    async def datasets(self) -> Dict[str, Any]:
        return await self._call(self._client.datasets)

    async def ready(self, dataset: Optional[str] = None) -> ReadyReport:
        return await self._call(self._client.ready, dataset)

    async def health(self) -> HealthReport:
        return await self._call(self._client.health)

    async def create_dataset(self, dataset: str, base: str = "1m",
                             rollups: Optional[Sequence[str]] = None, **kwargs: Any) -> str:
        return await self._call(self._client.create_dataset, dataset, base, rollups, **kwargs)

    async def bars(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m",
                   **kwargs: Any) -> pl.DataFrame:
        """As :meth:`ringfeed.Client.bars` (same keyword arguments)."""
        return await self._call(self._client.bars, dataset, symbols, timeframe, **kwargs)

    async def bars_arrow(self, dataset: str, symbols: Symbols = None, timeframe: str = "1m",
                         **kwargs: Any) -> Any:
        """As :meth:`ringfeed.Client.bars_arrow` (a ``pyarrow.Table``, typed Any: pyarrow has
        no type information)."""
        return await self._call(self._client.bars_arrow, dataset, symbols, timeframe, **kwargs)

    async def subscribe(self, dataset: str, timeframe: str,
                        start: Union[Position, TimeLike] = "next", *,
                        symbols: Symbols = None) -> AsyncReader:
        """As :meth:`ringfeed.Client.subscribe`, as an :class:`AsyncReader`."""
        r = await self._call(self._client.subscribe, dataset, timeframe, start, symbols=symbols)
        return AsyncReader(r)

    async def replay(self, dataset: str, timeframe: str, start: TimeLike, *,
                     symbols: Symbols = None) -> AsyncReader:
        """As :meth:`ringfeed.Client.replay`, as an :class:`AsyncReader`."""
        r = await self._call(self._client.replay, dataset, timeframe, start, symbols=symbols)
        return AsyncReader(r)

    async def append(self, dataset: str, frame: Any, *, invalid: InvalidRows = "refuse") -> int:
        return await self._call(self._client.append, dataset, frame, invalid=invalid)

    async def delete(self, dataset: str, start: TimeLike, end: TimeLike,
                     symbol: Optional[str] = None) -> str:
        return await self._call(self._client.delete, dataset, start, end, symbol)

    async def write_down(self, dataset: Optional[str] = None, before: Optional[str] = None,
                         all: bool = False) -> str:
        return await self._call(self._client.write_down, dataset, before, all)

    async def aclose(self) -> None:
        """Close the connection after the calls in progress."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)
        self._client.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


async def connect_async(socket: Union[str, "os.PathLike[str]", None] = None,
                        timeout: Optional[float] = 120.0, **remote: Any) -> AsyncClient:
    """:func:`ringfeed.connect` without blocking the event loop: a socket, or a
    ``grpc://`` / ``grpc+tls://`` URL with ``token=``, ``tls_root_certs=``, ...
    (``subscribe``/``replay`` of a remote client are awaited the same way)."""
    loop = asyncio.get_running_loop()
    c = await loop.run_in_executor(None, lambda: connect(socket, timeout, **remote))
    return AsyncClient(c)
