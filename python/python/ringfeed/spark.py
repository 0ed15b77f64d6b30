"""Spark reads the ringfeed lake (docs/scale-out.md, "The lake") without hadoop-aws.

``register(spark)`` registers a Spark Python data source (Spark 4.0+, ``pyspark.sql.datasource``)
named ``ringfeed_lake``; it reads the lake through pyarrow's filesystems (S3 or local), so
no jars are needed::

    import ringfeed.spark
    ringfeed.spark.register(spark)
    df = (spark.read.format("ringfeed_lake")
          .option("url", "s3://bars/ringfeed").option("dataset", "b").option("timeframe", "1d")
          .option("endpoint_override", "http://minio:9000")   # S3-compatible servers
          .load())

What is read is what the lake's index names: the index (``_lake/index.json``) gives each
partition's current generation, each generation's manifest is checked against the index
(SHA-256, partition, generation, object list), and the manifest's objects are read, one
Spark input partition per Parquet object. Superseded generations and leftovers of a pass
cut short (which a Hive glob would see until the next pass sweeps them) are never read.

Options (``.option(name, value)``):

- ``url`` (required): ``s3://bucket/prefix`` or ``file:///path``.
- ``dataset`` (required), ``timeframe`` (default ``1m``).
- ``ts``: ``long`` (default: nanoseconds since the epoch as a Spark ``long``, what
  ``spark.read.parquet`` gives with ``spark.sql.legacy.parquet.nanosAsLong``) or
  ``timestamp`` (Spark's microsecond ``TimestampType``; a ``ts`` with a sub-microsecond
  part is refused rather than truncated).
- ``months``: comma-separated ``YYYY-MM`` values; only those partitions are read.
- ``symbols``: comma-separated symbols; other rows are skipped while reading (row groups
  are pruned by their ``symbol`` statistics).
- ``check_manifests``: ``true`` (default) or ``false`` (trust the index's object lists).
- S3: ``access_key``, ``secret_key``, ``session_token``, ``region``, ``endpoint_override``
  (``host:port`` or ``http://host:port``), ``scheme`` (``https`` or ``http``). Unset ones
  fall back to pyarrow's defaults: the ``AWS_*`` environment variables, then
  ``~/.aws`` files and instance metadata.

Columns: the objects' Parquet columns (``ts`` as above), then ``month`` (a string, as
Hive partitioning gives it). A schema passed to ``.schema(...)`` selects and orders columns.

Spark runs the reader in its Python workers (``PYSPARK_PYTHON``: a Python with pyarrow).
The module is shipped to them by value, so they need pyarrow, not ringfeed. This module
imports pyspark only in :func:`register`: the ringfeed wheel does not require it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

__all__ = [
    "NAME",
    "LakeError",
    "LakeOptionError",
    "LakeNotFoundError",
    "LakeCorruptError",
    "LakeDatasetNotFoundError",
    "LakeObject",
    "lake_objects",
    "register",
]

NAME = "ringfeed_lake"
"""The data source's name in ``spark.read.format(...)``."""

# The lake's layout and record formats, as this reader knows them. The source of truth is
# crates/lake/src/manifest.rs (INDEX_FORMAT, MANIFEST_FORMAT, INDEX_KEY, the records'
# fields and how `seal` checksums them); the checks below mirror `unseal`,
# `PartitionManifest::from_bytes` and crates/lake/src/verify.rs. Change them together.
_INDEX_FORMAT = "ringfeed-lake-index/1"
_MANIFEST_FORMAT = "ringfeed-lake-partition/1"
_INDEX_KEY = "_lake/index.json"
_S3_KEYS = ("access_key", "secret_key", "session_token", "region", "endpoint_override", "scheme")


class LakeError(Exception):
    """Base of the errors reading the lake."""


class LakeOptionError(LakeError, ValueError):
    """An option is missing or has a value this reader does not take (the message names it)."""


class LakeNotFoundError(LakeError):
    """No lake at the URL: its index cannot be read (wrong URL, bucket, endpoint or
    credentials, or `ringfeed lake sync` never ran there)."""


class LakeCorruptError(LakeError):
    """The index or a manifest is refused (does not parse, wrong format tag, checksum
    mismatch, names objects outside its partition): run `ringfeed lake verify`."""


class LakeDatasetNotFoundError(LakeError):
    """The lake holds no partition of the dataset / timeframe asked for (the message
    lists what it holds)."""


@dataclass(frozen=True)
class LakeObject:
    """One Parquet object of the lake's current state."""

    partition: str
    """``dataset=D/tf=T/month=M``."""
    month: str
    """``YYYY-MM``."""
    path: str
    """Path on the filesystem (bucket/prefix/key for S3, an absolute path for file://)."""
    rows: int
    """Rows (from the manifest; from the index's partition total when manifests are not checked
    and the partition has one object, else -1)."""


@dataclass(frozen=True)
class _Options:
    url: str
    kind: str  # "s3" | "file"
    root: str  # bucket/prefix or /abs/path, no trailing slash
    dataset: str
    timeframe: str
    ts: str
    months: Optional[Tuple[str, ...]]
    symbols: Optional[Tuple[str, ...]]
    check_manifests: bool
    s3: Tuple[Tuple[str, str], ...]


def _bool(name: str, v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise LakeOptionError(f"option {name!r}: {v!r} is not true or false")


def _list(v: Optional[str]) -> Optional[Tuple[str, ...]]:
    if v is None:
        return None
    return tuple(s.strip() for s in v.split(",") if s.strip())


def _parse_options(options: Mapping[str, str]) -> _Options:
    o = {str(k).lower(): str(v) for k, v in options.items()}
    url = o.get("url") or o.get("path")
    if not url:
        raise LakeOptionError("option 'url' is missing: .option('url', 's3://bucket/prefix') or 'file:///path'")
    dataset = o.get("dataset")
    if not dataset:
        raise LakeOptionError("option 'dataset' is missing: .option('dataset', NAME)")
    u = urlparse(url)
    if u.scheme == "s3" or u.scheme == "s3a":
        if not u.netloc:
            raise LakeOptionError(f"option 'url': {url!r} names no bucket (s3://bucket/prefix)")
        kind = "s3"
        root = (u.netloc + "/" + u.path.strip("/")).rstrip("/")
    elif u.scheme == "file":
        if u.netloc not in ("", "localhost"):
            raise LakeOptionError(f"option 'url': {url!r} is not a local path (file:///path)")
        kind = "file"
        root = "/" + u.path.strip("/")
    else:
        raise LakeOptionError(f"option 'url': {url!r} is neither s3://bucket/prefix nor file:///path")
    ts = o.get("ts", "long").lower()
    if ts not in ("long", "timestamp"):
        raise LakeOptionError(f"option 'ts': {ts!r} is neither 'long' (ns since the epoch) nor 'timestamp'")
    s3 = tuple((k, o[k]) for k in _S3_KEYS if o.get(k))
    if kind == "file" and s3:
        raise LakeOptionError(f"options {[k for k, _ in s3]} apply to s3:// lakes, not {url!r}")
    return _Options(
        url=url,
        kind=kind,
        root=root,
        dataset=dataset,
        timeframe=o.get("timeframe", "1m"),
        ts=ts,
        months=_list(o.get("months")),
        symbols=_list(o.get("symbols")),
        check_manifests=_bool("check_manifests", o.get("check_manifests", "true")),
        s3=s3,
    )


def _filesystem(opts: _Options) -> Any:
    import pyarrow.fs as pafs  # type: ignore[import-untyped,unused-ignore]

    if opts.kind == "file":
        return pafs.LocalFileSystem()
    kw: Dict[str, Any] = dict(opts.s3)
    ep = kw.get("endpoint_override")
    if ep is not None and "://" in ep:
        u = urlparse(ep)
        kw["endpoint_override"] = u.netloc
        kw.setdefault("scheme", u.scheme)
    return pafs.S3FileSystem(**kw)


def _read_bytes(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        data: bytes = f.read()
    return data


def _canonical_sha(record: Dict[str, Any]) -> Tuple[str, str]:
    """(claimed, actual) checksum of a sealed record: SHA-256 of its compact JSON with
    ``checksum`` empty (what crates/lake writes: serde_json, fields in declaration order)."""
    claimed = str(record.get("checksum", ""))
    body = dict(record)
    body["checksum"] = ""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return claimed, hashlib.sha256(raw).hexdigest()


def _unseal(raw: bytes, what: str, fmt: str, hint: str) -> Dict[str, Any]:
    try:
        rec = json.loads(raw)
    except ValueError as e:
        raise LakeCorruptError(f"{what} is corrupt (not valid JSON: {e}); {hint}") from None
    if not isinstance(rec, dict):
        raise LakeCorruptError(f"{what} is corrupt (not a JSON object); {hint}")
    if rec.get("format") != fmt:
        raise LakeCorruptError(f"{what} has format {rec.get('format')!r}, this reader reads {fmt!r}; {hint}")
    claimed, actual = _canonical_sha(rec)
    if claimed != actual:
        raise LakeCorruptError(f"{what} is corrupt (checksum {claimed!r} does not match its contents, {actual}); {hint}")
    return rec


def _read_index(fs: Any, opts: _Options) -> Dict[str, Any]:
    import pyarrow.fs as pafs  # type: ignore[import-untyped,unused-ignore]

    path = f"{opts.root}/{_INDEX_KEY}"
    where = f"{opts.url.rstrip('/')}/{_INDEX_KEY}"
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise LakeNotFoundError(
                f"no lake at {opts.url}: {where} does not exist (check the URL; "
                "`ringfeed lake sync` writes it on its first pass)"
            )
        raw = _read_bytes(fs, path)
    except LakeError:
        raise
    except OSError as e:
        raise LakeNotFoundError(f"cannot read the lake index {where}: {e} (check the URL, endpoint and credentials)") from None
    hint = f"run `ringfeed lake verify --url {opts.url}`; `ringfeed lake sync --rebuild-index` rebuilds it"
    idx = _unseal(raw, f"the lake index {where}", _INDEX_FORMAT, hint)
    if not isinstance(idx.get("partitions"), dict):
        raise LakeCorruptError(f"the lake index {where} has no partitions map; {hint}")
    return idx


def _split(partition: str) -> Tuple[str, str, str]:
    parts = dict(p.split("=", 1) for p in partition.split("/") if "=" in p)
    return parts.get("dataset", ""), parts.get("tf", ""), parts.get("month", "")


def _check_manifest(fs: Any, opts: _Options, partition: str, entry: Dict[str, Any]) -> List[Tuple[str, int]]:
    """The manifest's objects (key, rows), after checking it against the index entry."""
    key = str(entry.get("manifest", ""))
    where = f"{opts.url.rstrip('/')}/{key}"
    hint = f"run `ringfeed lake verify --url {opts.url}`"
    try:
        raw = _read_bytes(fs, f"{opts.root}/{key}")
    except OSError as e:
        raise LakeCorruptError(f"the manifest of {partition} ({where}) cannot be read: {e}; {hint}") from None
    if hashlib.sha256(raw).hexdigest() != entry.get("manifest_sha256"):
        raise LakeCorruptError(f"the manifest of {partition} ({where}) does not match the index's SHA-256; {hint}")
    m = _unseal(raw, f"the manifest {where}", _MANIFEST_FORMAT, hint)
    files = m.get("files") or []
    got = [str(f.get("path")) for f in files]
    if m.get("partition") != partition or m.get("generation") != entry.get("generation") or got != list(entry.get("files", [])):
        raise LakeCorruptError(f"the manifest {where} does not describe what the index records for {partition}; {hint}")
    for p in got:
        if not p.startswith(partition + "/"):
            raise LakeCorruptError(f"the manifest {where} names an object outside {partition}: {p}; {hint}")
    return [(str(f["path"]), int(f.get("rows", -1))) for f in files]


def _objects(opts: _Options, fs: Any, *, months: bool = True) -> List[LakeObject]:
    idx = _read_index(fs, opts)
    parts: Dict[str, Dict[str, Any]] = idx["partitions"]
    mine = {k: e for k, e in parts.items() if _split(k)[:2] == (opts.dataset, opts.timeframe)}
    if not mine:
        datasets = sorted({_split(k)[0] for k in parts})
        if opts.dataset not in datasets:
            raise LakeDatasetNotFoundError(
                f"the lake at {opts.url} holds no dataset {opts.dataset!r} (it holds: {', '.join(datasets) or 'nothing yet'})"
            )
        tfs = sorted({_split(k)[1] for k in parts if _split(k)[0] == opts.dataset})
        raise LakeDatasetNotFoundError(
            f"the lake at {opts.url} holds no timeframe {opts.timeframe!r} of dataset {opts.dataset!r} (it holds: {', '.join(tfs)})"
        )
    if months and opts.months is not None:
        wanted = set(opts.months)
        mine = {k: e for k, e in mine.items() if _split(k)[2] in wanted}
    keys = sorted(mine)
    if opts.check_manifests:
        with ThreadPoolExecutor(max_workers=8) as pool:
            lists = list(pool.map(lambda k: _check_manifest(fs, opts, k, mine[k]), keys))
    else:
        lists = []
        for k in keys:
            fl = [str(f) for f in mine[k].get("files", [])]
            rows = int(mine[k].get("rows", -1)) if len(fl) == 1 else -1
            lists.append([(f, rows) for f in fl])
    return [
        LakeObject(partition=k, month=_split(k)[2], path=f"{opts.root}/{f}", rows=rows)
        for k, fl in zip(keys, lists)
        for f, rows in fl
    ]


def lake_objects(options: Mapping[str, str]) -> List[LakeObject]:
    """The Parquet objects the lake's index names for ``options`` (the data source's
    options: url, dataset, timeframe, months, S3 settings), in partition order. Raises a
    :class:`LakeError` saying what is missing or refused."""
    opts = _parse_options(options)
    return _objects(opts, _filesystem(opts))


def _spark_type(t: Any, ts: str) -> str:
    """Spark DDL type of an Arrow type read from the lake's Parquet."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    if pa.types.is_timestamp(t):
        return "timestamp" if ts == "timestamp" else "bigint"
    if pa.types.is_dictionary(t):
        return _spark_type(t.value_type, ts)
    for test, name in (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_int8, "tinyint"),
        (pa.types.is_int16, "smallint"),
        (pa.types.is_int32, "int"),
        (pa.types.is_int64, "bigint"),
        (pa.types.is_float32, "float"),
        (pa.types.is_float64, "double"),
        (pa.types.is_string, "string"),
        (pa.types.is_large_string, "string"),
        (pa.types.is_date32, "date"),
    ):
        if test(t):
            return name
    raise LakeError(f"column type {t} of the lake's Parquet has no Spark mapping in ringfeed.spark")


def _schema_ddl(opts: _Options, fs: Any) -> str:
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

    objs = _objects(opts, fs, months=False)
    with fs.open_input_file(objs[0].path) as f:
        schema = pq.read_schema(f)
    cols = [f"`{fld.name}` {_spark_type(fld.type, opts.ts)}" for fld in schema if fld.name != "month"]
    return ", ".join([*cols, "`month` string"])


def _arrow_type(spark_type: Any) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    name = type(spark_type).__name__
    table = {
        "LongType": pa.int64(),
        "IntegerType": pa.int32(),
        "ShortType": pa.int16(),
        "ByteType": pa.int8(),
        "DoubleType": pa.float64(),
        "FloatType": pa.float32(),
        "BooleanType": pa.bool_(),
        "StringType": pa.string(),
        "DateType": pa.date32(),
        "TimestampType": pa.timestamp("us", tz="UTC"),
        "TimestampNTZType": pa.timestamp("us"),
    }
    if name not in table:
        raise LakeOptionError(f"schema: Spark type {spark_type} is not one ringfeed_lake reads into")
    return table[name]


def _read_object(opts: _Options, path: str, month: str, fields: List[Tuple[str, Any]]) -> Iterator[Any]:
    """Record batches of one object, conformed to the Spark schema ``fields`` (name, Arrow type)."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
    import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
    import pyarrow.dataset as pds  # type: ignore[import-untyped,unused-ignore]

    fs = _filesystem(opts)
    try:
        dset = pds.dataset(path, filesystem=fs, format="parquet")
    except OSError as e:
        raise LakeCorruptError(
            f"lake object {path} cannot be read: {e} (the lake changed under the read, or run `ringfeed lake verify --url {opts.url}`)"
        ) from None
    names = set(dset.schema.names)
    cols = [n for n, _ in fields if n in names]
    flt = None
    if opts.symbols is not None and "symbol" in names:
        flt = pc.field("symbol").isin(list(opts.symbols))
    for b in dset.to_batches(columns=cols, filter=flt):
        if b.num_rows == 0:
            continue
        arrays = []
        for name, t in fields:
            if name == "month" and "month" not in names:
                arrays.append(pa.array([month] * b.num_rows, pa.string()))
            elif name in names:
                a = b.column(name)
                if pa.types.is_timestamp(a.type) and pa.types.is_integer(t):
                    a = a.cast(pa.int64())
                elif pa.types.is_timestamp(a.type) and pa.types.is_timestamp(t) and a.type.unit != t.unit:
                    try:
                        a = a.cast(t, safe=True)
                    except pa.ArrowInvalid:
                        raise LakeError(
                            f"{path}: column {name!r} has values finer than a Spark timestamp (µs): read it with .option('ts', 'long')"
                        ) from None
                elif a.type != t:
                    a = a.cast(t)
                arrays.append(a)
            else:
                arrays.append(pa.nulls(b.num_rows, t))
        yield pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in fields])


# The DataSource / DataSourceReader subclasses are made with type() on first use, so that
# importing this module does not import pyspark (the wheel does not require it). Their
# methods are these functions.


def _reader_init(self: Any, options: Mapping[str, str], schema: Any) -> None:
    self.opts = _parse_options(options)
    self.fields = [(f.name, _arrow_type(f.dataType)) for f in schema.fields]


def _reader_partitions(self: Any) -> List[Any]:
    ds: Any = importlib.import_module("pyspark.sql.datasource")
    objs = _objects(self.opts, _filesystem(self.opts))
    return [ds.InputPartition((o.path, o.month)) for o in objs]


def _reader_read(self: Any, partition: Any) -> Iterator[Any]:
    # No partitions (a `months` option that matches none): Spark still runs one read,
    # with no partition value.
    value = getattr(partition, "value", None)
    if value is None:
        return iter(())
    path, month = value
    return _read_object(self.opts, path, month, self.fields)


def _source_name(cls: Any) -> str:
    return NAME


def _source_schema(self: Any) -> str:
    opts = _parse_options(self.options)
    return _schema_ddl(opts, _filesystem(opts))


def _source_reader(self: Any, schema: Any) -> Any:
    return self._reader_class(self.options, schema)


_SOURCE: Optional[type] = None


def _source_class() -> type:
    """The DataSource subclass (made on first use)."""
    global _SOURCE
    if _SOURCE is None:
        ds: Any = importlib.import_module("pyspark.sql.datasource")
        reader = type(
            "RingfeedLakeReader",
            (ds.DataSourceReader,),
            {"__init__": _reader_init, "partitions": _reader_partitions, "read": _reader_read},
        )
        _SOURCE = type(
            "RingfeedLakeSource",
            (ds.DataSource,),
            {
                "name": classmethod(_source_name),
                "schema": _source_schema,
                "reader": _source_reader,
                "_reader_class": reader,
            },
        )
    return _SOURCE


def register(spark: Any) -> None:
    """Register the ``ringfeed_lake`` data source with a SparkSession (pyspark 4.0+).

    The module is pickled by value to Spark's Python workers, so they need pyarrow (and
    pyspark, which Spark provides) but not ringfeed."""
    try:
        cloudpickle: Any = importlib.import_module("pyspark.cloudpickle")
        importlib.import_module("pyspark.sql.datasource")
    except ImportError as e:
        raise ImportError(
            f"ringfeed.spark needs pyspark 4.0 or later (its Python data source API): "
            f"pip install 'pyspark>=4' ({e})"
        ) from e
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark.dataSource.register(_source_class())
