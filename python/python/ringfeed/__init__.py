"""ringfeed: a zero-copy shared-memory ring of Apache Arrow record batches.

One process publishes frames (polars DataFrames, pyarrow Tables/RecordBatches,
or anything with ``__arrow_c_stream__`` / ``__arrow_c_array__``); any number of
processes on the same host read them as Arrow data that points straight into
shared memory::

    import ringfeed as rf
    w = rf.Writer.create("bars.demo", schema, on_full="block")
    w.write(df)

    r = rf.Reader.open("bars.demo", start="oldest")
    for batch in r:              # blocks; Ctrl-C interrupts; stops when the writer closes
        df = batch.to_polars()   # zero-copy

``ringfeed.connect()`` talks to the ``ringfeedd`` daemon: bars queries as
polars DataFrames in the daemon's shared memory, live subscriptions, replays
from a time, appends (see :mod:`ringfeed.client`).

After ``os.fork()`` a child must open its own readers and writers: objects
inherited from the parent raise ``RingfeedError`` in the child, and are leaked
(never closed) there, so that the child cannot disturb the parent's ring state.
"""

import os as _os

from ._ringfeed import (
    ArenaExistsError,
    ArenaNotFoundError,
    ArgumentTypeError,
    Batch,
    BatchTooLargeError,
    ClosedError,
    ConnectError,
    ConnectionLostError,
    CorruptBatchError,
    DaemonError,
    InvalidArgumentError,
    InvalidNameError,
    LaggedError,
    Reader,
    Replay,
    RingFullError,
    RingfeedError,
    SchemaMismatchError,
    TooManyLeasesError,
    Writer,
    WriterGoneError,
    __version__,
    _after_fork_in_child,
    bar_schema,
    default_socket,
    list_arenas,
    remove,
    shm_dir,
)

from .client import Client, RowsRejectedWarning, connect
from .remote import RemoteClient, RemoteUnsupportedError
from .types import AppendReport, HealthCheck, HealthReport, InvalidRows, ReadyReport, TimeLike

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "ArenaExistsError",
    "ArenaNotFoundError",
    "ArgumentTypeError",
    "Batch",
    "BatchTooLargeError",
    "Client",
    "ClosedError",
    "ConnectError",
    "ConnectionLostError",
    "CorruptBatchError",
    "DaemonError",
    "InvalidArgumentError",
    "InvalidNameError",
    "LaggedError",
    "ReadyReport",
    "HealthCheck",
    "HealthReport",
    "RowsRejectedWarning",
    "AppendReport",
    "InvalidRows",
    "Reader",
    "RemoteClient",
    "RemoteUnsupportedError",
    "Replay",
    "RingFullError",
    "RingfeedError",
    "SchemaMismatchError",
    "TimeLike",
    "TooManyLeasesError",
    "Writer",
    "WriterGoneError",
    "__version__",
    "bar_schema",
    "connect",
    "default_socket",
    "list_arenas",
    "remove",
    "shm_dir",
]
