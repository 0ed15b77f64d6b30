//! `ringfeed._ringfeed.Client`: the Rust daemon client (`ringfeed_client::Client`)
//! as a Python class, one method per Rust method. The protocol, the time
//! grammar, reconnection and the replay seam all live in `ringfeed-client`;
//! this file converts arguments, releases the GIL around every socket call,
//! and maps errors to exceptions.

use crate::args::{opt_time_spec, symbols, time_spec};
use crate::batch::Batch;
use crate::errors::{self, invalid_argument, ClosedError};
use crate::fork::{forked_error, Guarded};
use crate::reader::Reader;
use crate::replay::Replay;
use crate::{import, json, secs};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use ringfeed_arrow::StartAt;
use ringfeed_client::protocol::symbol_list;
use ringfeed_client::{ClientError, QuerySpec, Request};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A connection to `ringfeedd` (reopened by the next call after it broke,
/// e.g. when the daemon restarted). Calls from several threads take turns.
#[pyclass(frozen, module = "ringfeed._ringfeed")]
pub struct Client {
    inner: Guarded<Mutex<Option<ringfeed_client::Client>>>,
    path: String,
}

/// `timeout` seconds as the Rust client's timeout (`None`: wait forever).
fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t > 0.0 => Ok(Some(secs(t))),
        Some(t) => Err(invalid_argument(format!(
            "timeout must be a positive number of seconds or None (wait forever), not {t}"
        ))),
    }
}

impl Client {
    fn lock(&self) -> MutexGuard<'_, Option<ringfeed_client::Client>> {
        // A panic inside a call leaves at worst a connection the next call replaces.
        self.inner.get().lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the Rust client without the GIL.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ringfeed_client::Client) -> Result<T, ClientError> + Send,
    ) -> PyResult<T> {
        if !self.inner.is_current() {
            return Err(forked_error("Client"));
        }
        py.detach(|| self.lock().as_mut().map(f))
            .ok_or_else(|| ClosedError::new_err(format!("client of {:?} is closed", self.path)))?
            .map_err(errors::client_error)
    }
}

#[pymethods]
impl Client {
    /// Connects to the daemon at `socket` (default: `default_socket()`).
    /// `timeout`: seconds a request may wait for its answer (`None`: forever).
    /// Raises `ConnectError` when no daemon listens there.
    #[new]
    #[pyo3(signature = (socket=None, timeout=Some(120.0)), text_signature = "(socket=None, timeout=120.0)")]
    fn new(py: Python<'_>, socket: Option<PathBuf>, timeout: Option<f64>) -> PyResult<Self> {
        let timeout = timeout_arg(timeout)?;
        let c = py
            .detach(|| {
                let mut c = ringfeed_client::Client::connect(socket.as_deref())?;
                c.set_timeout(timeout)?;
                Ok(c)
            })
            .map_err(errors::client_error)?;
        Ok(Self {
            path: c.path().to_string_lossy().into_owned(),
            inner: Guarded::new(Mutex::new(Some(c))),
        })
    }

    /// The socket path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Sets how long a request may wait for its answer, in seconds (`None`: forever).
    #[pyo3(signature = (timeout))]
    fn set_timeout(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = timeout_arg(timeout)?;
        self.with(py, |c| c.set_timeout(timeout))
    }

    /// Round trip to the daemon.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |c| c.ping())
    }

    /// Metrics, as Prometheus text.
    fn stat(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |c| c.stat())
    }

    /// `{dataset: {"base": ..., "timeframes": [...], "symbols": [...]}}`.
    fn datasets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.with(py, |c| c.datasets())?;
        json::to_py(py, &v)
    }

    /// Creates `dataset` with base timeframe `base` and `rollups` (None: the
    /// ladder 5m, 15m, 1h, 1d above the base; [] for none). The same settings
    /// again are a no-op. `retention` ("400d", "26w", "2y") drops partitions
    /// older than it; `rollup_retention` keeps rollups longer. Returns the
    /// daemon's summary.
    #[pyo3(signature = (dataset, base="1m", rollups=None, fsync=None, retention=None, rollup_retention=None, week_start=None))]
    #[allow(clippy::too_many_arguments)]
    fn create_dataset(
        &self,
        py: Python<'_>,
        dataset: String,
        base: &str,
        rollups: Option<Vec<String>>,
        fsync: Option<String>,
        retention: Option<String>,
        rollup_retention: Option<String>,
        week_start: Option<String>,
    ) -> PyResult<String> {
        let spec = ringfeed_client::DatasetSpec {
            dataset,
            base: base.to_string(),
            rollups,
            fsync,
            retention,
            rollup_retention,
            week_start,
        };
        self.with(py, |c| c.create_dataset(&spec))
    }

    /// Whether the daemon can answer queries and appends, and how far the data
    /// of `dataset` (default: every dataset) goes: a dict shaped like the
    /// protocol's `ReadyReport` (times are ns since the epoch, or None when
    /// the timeframe holds no bar).
    #[pyo3(signature = (dataset=None))]
    fn ready<'py>(&self, py: Python<'py>, dataset: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.with(py, |c| c.ready(dataset.as_deref()))?;
        let mut v = serde_json::to_value(&report)
            .map_err(|e| errors::RingfeedError::new_err(e.to_string()))?;
        // One shape whether or not there is a reason.
        if let Some(m) = v.as_object_mut() {
            m.entry("reason").or_insert(serde_json::Value::Null);
        }
        json::to_py(py, &v)
    }

    /// Whether queries and appends work right now: a dict shaped like the
    /// protocol's `HealthReport` (`healthy`, and `checks` of `name`, `ok`,
    /// `detail`).
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.with(py, |c| c.health())?;
        let v = serde_json::to_value(&report)
            .map_err(|e| errors::RingfeedError::new_err(e.to_string()))?;
        json::to_py(py, &v)
    }

    /// Bars of `dataset` as the daemon's result batches (zero-copy views of
    /// its shared-memory arena). See `ringfeed.Client.bars` for the arguments.
    #[pyo3(signature = (dataset, symbols=None, timeframe="1m", *, start=None, end=None, fields=None, limit=None, from_end=false, offset=None, week_start=None))]
    #[allow(clippy::too_many_arguments)]
    fn bars(
        &self,
        py: Python<'_>,
        dataset: String,
        symbols: Option<&Bound<'_, PyAny>>,
        timeframe: &str,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        fields: Option<&Bound<'_, PyAny>>,
        limit: Option<usize>,
        from_end: bool,
        offset: Option<String>,
        week_start: Option<String>,
    ) -> PyResult<Vec<Batch>> {
        let q = QuerySpec {
            dataset,
            symbols: self::symbols(symbols)?,
            timeframe: timeframe.to_owned(),
            offset,
            start: opt_time_spec(start, "start")?,
            end: opt_time_spec(end, "end")?,
            fields: crate::args::fields(fields)?,
            limit,
            from_end,
            week_start,
        };
        let bars = self.with(py, |c| c.bars(&q))?;
        Ok(bars.batches.into_iter().map(Batch::new).collect())
    }

    /// Live batches of (dataset, timeframe). `start` = "next", "latest" or
    /// "oldest": a `Reader` of the live topic ring at that position (with
    /// every symbol: passing `symbols` raises `InvalidArgumentError`). Any
    /// other `start` is a time: a `Replay` (see `replay`).
    #[pyo3(signature = (dataset, timeframe, start=None, *, symbols=None))]
    fn subscribe<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        timeframe: &str,
        start: Option<&Bound<'py, PyAny>>,
        symbols: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let position = match start {
            None => StartAt::Next,
            Some(s) => match s.extract::<String>().as_deref() {
                Ok("next") => StartAt::Next,
                Ok("latest") => StartAt::Latest,
                Ok("oldest") => StartAt::Oldest,
                _ => {
                    let replay = self.replay(py, dataset, timeframe, s, symbols)?;
                    return Ok(Bound::new(py, replay)?.into_any());
                }
            },
        };
        let wanted = self::symbols(symbols)?;
        if !symbol_list(&wanted).is_empty() {
            return Err(invalid_argument(format!(
                "a live topic reader (start=\"next\", \"latest\" or \"oldest\") holds every symbol; \
                 to receive only {wanted:?}, pass a start time (e.g. start=datetime.now(timezone.utc)): \
                 that returns a Replay whose live batches hold only those symbols"
            )));
        }
        let r = self.with(py, |c| c.subscribe(dataset, timeframe, position))?;
        Ok(Bound::new(py, Reader::from_reader(r))?.into_any())
    }

    /// The stored bars of (dataset, timeframe) from `start` (of `symbols`,
    /// default all), then every live batch (only the rows of `symbols`), with
    /// no gap and no duplicate where history ends and live data begins.
    #[pyo3(signature = (dataset, timeframe, start, *, symbols=None))]
    fn replay(
        &self,
        py: Python<'_>,
        dataset: &str,
        timeframe: &str,
        start: &Bound<'_, PyAny>,
        symbols: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Replay> {
        let start = time_spec(start, "start")?;
        let symbols = self::symbols(symbols)?;
        let r = self.with(py, |c| c.replay(dataset, timeframe, start, &symbols))?;
        Ok(Replay::new(r))
    }

    /// Appends `frame` (anything with `__arrow_c_stream__` or
    /// `__arrow_c_array__`: a polars DataFrame, a pyarrow Table or
    /// RecordBatch) at the dataset's base timeframe, imported through the
    /// Arrow C stream interface (no pyarrow needed). Every row is checked by
    /// the store's rules; `invalid` says what a bad row does: "refuse" (the
    /// default: nothing is stored, `DaemonError` names the row), "skip"
    /// (store the good rows) or "keep" (store them flagged). Returns the
    /// report (`rows_read`, `rows_stored`, `rejected`, `flagged`, `rejects`,
    /// `flags`), once durable.
    #[pyo3(signature = (dataset, frame, invalid="refuse"))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        frame: &Bound<'py, PyAny>,
        invalid: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let invalid = match invalid {
            "refuse" => ringfeed_client::InvalidRows::Refuse,
            "skip" => ringfeed_client::InvalidRows::Skip,
            "keep" => ringfeed_client::InvalidRows::Keep,
            other => {
                return Err(invalid_argument(format!(
                    "invalid={other:?}: use \"refuse\", \"skip\" or \"keep\""
                )))
            }
        };
        let f = import::frame(frame)?;
        let report = self.with(py, |c| c.append_with(dataset, &f.batches, invalid))?;
        json::to_py(py, &serde_json::to_value(report).expect("serialisable"))
    }

    /// Deletes the bars of `symbol` (default: every symbol) in `[start, end)`;
    /// returns the daemon's summary.
    #[pyo3(signature = (dataset, start, end, symbol=None))]
    fn delete(
        &self,
        py: Python<'_>,
        dataset: &str,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        symbol: Option<String>,
    ) -> PyResult<String> {
        let start = time_spec(start, "start")?;
        let end = time_spec(end, "end")?;
        self.with(py, |c| c.delete(dataset, symbol.as_deref(), start, end))
    }

    /// Sets (None: clears) `dataset`'s retention ("400d", "26w", "2y") and the
    /// longer retention of its rollups, then applies it: partitions wholly
    /// older are dropped. Returns the daemon's summary.
    #[pyo3(signature = (dataset, retention, rollup_retention=None))]
    fn set_retention(
        &self,
        py: Python<'_>,
        dataset: &str,
        retention: Option<String>,
        rollup_retention: Option<String>,
    ) -> PyResult<String> {
        self.with(py, |c| {
            c.set_retention(dataset, retention.as_deref(), rollup_retention.as_deref())
        })
    }

    /// Removes the rows of `symbol` (default: every symbol) before `before`, in
    /// every stored timeframe; returns the daemon's summary.
    #[pyo3(signature = (dataset, before, symbol=None))]
    fn trim(
        &self,
        py: Python<'_>,
        dataset: &str,
        before: &Bound<'_, PyAny>,
        symbol: Option<String>,
    ) -> PyResult<String> {
        let before = time_spec(before, "before")?;
        self.with(py, |c| c.trim(dataset, symbol.as_deref(), before))
    }

    /// Drops `dataset` and its files; refused (DaemonError bad_request) when it holds rows
    /// and `yes` is false. Returns the daemon's summary.
    #[pyo3(signature = (dataset, yes=false))]
    fn drop_dataset(&self, py: Python<'_>, dataset: &str, yes: bool) -> PyResult<String> {
        self.with(py, |c| c.drop_dataset(dataset, yes))
    }

    /// Moves finished days into Parquet now: the days before `before`
    /// ("YYYY-MM-DD", default before today), or every day with `all`, of
    /// `dataset` (default every dataset). Returns the daemon's summary.
    #[pyo3(signature = (dataset=None, before=None, all=false))]
    fn write_down(
        &self,
        py: Python<'_>,
        dataset: Option<String>,
        before: Option<String>,
        all: bool,
    ) -> PyResult<String> {
        self.with(py, |c| {
            c.write_down(dataset.as_deref(), before.as_deref(), all)
        })
    }

    /// Sends one raw protocol request (a dict such as `{"op": "ping"}`) and
    /// returns the answer's header as a dict; raises `DaemonError` for an
    /// error answer. For tools and tests: the other methods cover every op.
    #[pyo3(signature = (request, payload=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyDict>,
        payload: Option<&Bound<'py, PyBytes>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: Request = serde_json::from_value(json::from_py(request.as_any())?)
            .map_err(|e| invalid_argument(format!("not a ringfeedd request: {e}")))?;
        let payload = payload.map(|p| p.as_bytes().to_vec()).unwrap_or_default();
        let resp = self.with(py, |c| c.call(&req, &payload))?;
        let v = serde_json::to_value(&resp)
            .map_err(|e| errors::RingfeedError::new_err(e.to_string()))?;
        json::to_py(py, &v)
    }

    /// Closes the connection; idempotent. Batches, readers and replays
    /// obtained from it stay valid.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if !self.inner.is_current() {
            return Err(forked_error("Client"));
        }
        let c = py.detach(|| self.lock().take());
        drop(c);
        Ok(())
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !self.inner.is_current() || py.detach(|| self.lock().is_none())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        if self.inner.is_current() {
            self.close(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("ringfeed.Client({:?})", self.path)
    }
}

/// The socket a client connects to by default: `$RINGFEED_SOCKET`, else
/// `$XDG_RUNTIME_DIR/ringfeed.sock`, else `/tmp/ringfeed-$UID/ringfeed.sock`.
#[pyfunction]
pub(crate) fn default_socket() -> String {
    ringfeed_client::socket_path()
        .to_string_lossy()
        .into_owned()
}
