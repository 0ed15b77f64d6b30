"""Types of the daemon client's arguments and answers (for annotations only)."""

from __future__ import annotations

import datetime as _dt
from typing import List, Literal, Optional, Sequence, TypedDict, Union

TimeLike = Union[int, str, _dt.datetime, _dt.date]
"""A point in time: an ``int`` (Unix time in s, ms, µs or ns, told apart by
magnitude), a ``str`` (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS[.f]]`` in UTC,
RFC 3339 with a zone, or an integer as text), a ``datetime`` (exact; naive =
UTC) or a ``date`` (UTC midnight)."""

Symbols = Union[str, Sequence[str], None]
"""One symbol, ``"A,B"``, a sequence of symbols, or ``None`` / ``"*"`` for all."""

# Spelled as a Union of Literals so that the runtime alias is a Union, as
# mypy.stubtest expects of what mypy reads as one.
Position = Union[Literal["next"], Literal["latest"], Literal["oldest"]]
"""Where a live topic reader starts."""


class TimeframeReady(TypedDict):
    """The extent of one stored timeframe."""

    timeframe: str
    first_ts: Optional[int]
    """Open time of the first bar, ns since the epoch (None when empty)."""
    last_ts: Optional[int]
    """Open time of the last bar, ns since the epoch (None when empty)."""
    hot_days: List[str]
    """Days in the hot tier (WAL), "YYYY-MM-DD"."""
    cold_days: int
    """Days in the cold tier (Parquet)."""


class DatasetReady(TypedDict):
    """How far one dataset's data goes."""

    dataset: str
    base: str
    symbols: List[str]
    timeframes: List[TimeframeReady]
    """The base timeframe first, then the rollups."""


class ReadyReport(TypedDict):
    """The answer of ``Client.ready()``."""

    ready: bool
    """Queries and appends work."""
    reason: Optional[str]
    """Why not, when ``ready`` is False."""
    datasets: List[DatasetReady]


class HealthCheck(TypedDict):
    """One subsystem in ``Client.health()``."""

    name: str
    """"store", "ingest", "data_dir", "writable", "integrity", "cache" or "topics"."""
    ok: bool
    detail: str
    """What was found and, when not ok, what to do."""


class HealthReport(TypedDict):
    """The answer of ``Client.health()``."""

    healthy: bool
    """Every check passed: queries and appends work now."""
    checks: List[HealthCheck]


InvalidRows = Union[Literal["refuse"], Literal["skip"], Literal["keep"]]
"""What an append does with a row that breaks the store's rules: refuse the whole
append (default), skip the row, or keep it flagged."""


class _AppendReportOptional(TypedDict, total=False):
    unpublished: str
    """Present when the rows were stored but reaching live subscribers failed:
    what failed. The daemon publishes them, in order, before the topic's next batch."""


class AppendReport(_AppendReportOptional):
    """What the store's row rules made of an append."""

    rows_read: int
    rows_stored: int
    """Flagged rows included."""
    rejected: int
    flagged: int
    rejects: List[str]
    """The first rejected rows: ``append:<row>: <reason>`` (rows 1-based)."""
    flags: List[str]


__all__ = [
    "AppendReport",
    "DatasetReady",
    "HealthCheck",
    "HealthReport",
    "InvalidRows",
    "Position",
    "ReadyReport",
    "Symbols",
    "TimeLike",
    "TimeframeReady",
]
