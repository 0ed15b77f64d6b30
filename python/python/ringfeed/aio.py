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
event loop's thread. Otherwise the reader is *armed* (``Reader.arm``): it counts as a
sleeper in the ring, as a blocked reader does, and the writer's futex wake completes an
io_uring futex wait whose file descriptor the event loop watches (``loop.add_reader``). The
loop itself is woken by the publish: one wake-up per batch, as for a blocking read, and no
thread. The fd also fires every 0.1 s without a batch, and the reader reads once then, to
notice a writer that died.
Where the kernel has no io_uring futex wait (before Linux 6.7, or io_uring disabled), and
for remote readers, the wait runs on a thread of the reader's own, blocked in the ring's
futex wait with the GIL released, and the loop is woken through ``call_soon_threadsafe``.
Nothing spins. Client calls run on one thread per client, in order, as a blocking client
would make them (a connection carries one request at a time).
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


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncReader:
    """``async for batch in AsyncReader(reader)`` over a :class:`Reader` (a live ring) or a
    :class:`Replay` (stored bars, then live ones). Owns the reader: :meth:`aclose` (or
    ``async with``) closes both.

    A cancelled :meth:`read` loses no batch: on the event-loop path nothing is taken until
    the loop runs the read; on the thread path (no io_uring, remote readers) the wait goes
    on, and the batch it takes is returned by the next :meth:`read`."""

    def __init__(self, source: Union[Reader, Replay]) -> None:
        self._source = source
        self._waiter: Optional[_Waiter] = None
        self._pending: Optional[asyncio.Future[Optional[Batch]]] = None
        # Whether the source can be armed: None until tried, then True or False.
        self._evented: Optional[bool] = None if hasattr(source, "arm") else False
        self._fd: Optional[int] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._woken: Optional[asyncio.Future[None]] = None
        self._closed = False

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
            if self._evented is not False:
                try:
                    return await self._read_armed(timeout)
                except OSError:
                    if self._evented:  # worked before: a real error, not a missing feature
                        raise
                    self._evented = False
            if self._waiter is None:
                self._waiter = _Waiter()
            self._pending = self._waiter.wait(asyncio.get_running_loop(),
                                              lambda: self._source.read(timeout))
        # Shielded: a cancelled read leaves the wait (and the batch it takes) pending.
        b = await asyncio.shield(self._pending)
        self._pending = None
        return b

    async def _read_armed(self, timeout: Optional[float]) -> Optional[Batch]:
        """Waits for the armed fd on the running loop; ``OSError`` if the source cannot
        be armed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        src = self._source
        while True:
            fd = src.arm()
            self._evented = True
            if fd is None:  # ready (or closed: read raises)
                b = src.read(0)
                if b is not None:
                    return b
                continue  # a replay's live batch without our symbols
            woken: asyncio.Future[None] = loop.create_future()
            self._watch(loop, fd, woken)
            # The fd fires every liveness slice anyway (the wait's linked timeout): a timer
            # is needed only for the caller's own timeout.
            timer = None if deadline is None else loop.call_later(
                max(0.0, deadline - loop.time()), _wake, woken)
            try:
                await woken
            finally:
                if timer is not None:
                    timer.cancel()
                self._woken = None
            if self._closed:
                raise ClosedError("the reader was closed while this read waited")
            b = src.read(0)  # also the liveness check
            if b is not None:
                return b
            if deadline is not None and loop.time() >= deadline:
                return None

    def _watch(self, loop: asyncio.AbstractEventLoop, fd: int,
               woken: "asyncio.Future[None]") -> None:
        """Routes readiness of ``fd`` to ``woken``. The fd stays registered between reads
        (no two epoll_ctl calls per batch); one that fires with nobody waiting is dropped
        until the next wait (it stays readable until re-armed)."""
        self._woken = woken
        if self._fd == fd and self._loop is loop:
            return
        self._unwatch()
        loop.add_reader(fd, self._on_readable)
        self._fd, self._loop = fd, loop

    def _on_readable(self) -> None:
        w = self._woken
        if w is None or w.done():
            self._unwatch()
            return
        w.set_result(None)

    def _unwatch(self) -> None:
        if self._fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._fd = self._loop = None

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
        self._closed = True
        self._unwatch()
        if self._woken is not None:  # a read waits on the loop: it raises ClosedError
            _wake(self._woken)
        if self._evented:
            self._source.disarm()

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
