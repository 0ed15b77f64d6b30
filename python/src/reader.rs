//! `ringfeed.Reader`.

use crate::batch::Batch;
use crate::errors::{self, arg, ClosedError};
use crate::fork::{forked_error, Guarded};
use crate::{export, secs};
use arrow_schema::SchemaRef;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use ringfeed_arrow::{ReadError, ReaderOptions, StartAt, Validate};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Reads record batches from a ring. Each reader has its own cursor and sees
/// every batch in order, unless it falls behind an `on_full="overwrite"` ring
/// (then `read` raises `LaggedError` and goes on with the oldest batch left).
#[pyclass(frozen, module = "ringfeed._ringfeed")]
pub struct Reader {
    inner: Guarded<Mutex<Option<ringfeed_arrow::Reader>>>,
    name: String,
    schema: SchemaRef,
    /// An error a `read_many` met after taking batches: raised by the next read.
    deferred: Mutex<Option<ReadError>>,
    pyarrow_schema: PyOnceLock<Py<PyAny>>,
}

fn parse_start(s: &str) -> PyResult<StartAt> {
    match s {
        "oldest" => Ok(StartAt::Oldest),
        "latest" => Ok(StartAt::Latest),
        "next" => Ok(StartAt::Next),
        _ => Err(errors::invalid_argument(format!(
            "start must be \"oldest\", \"latest\" or \"next\", not {s:?}"
        ))),
    }
}

fn parse_validate(s: &str) -> PyResult<Validate> {
    match s {
        "trusted" => Ok(Validate::Trusted),
        "full" => Ok(Validate::Full),
        _ => Err(errors::invalid_argument(format!(
            "validate must be \"trusted\" or \"full\", not {s:?}"
        ))),
    }
}

impl Reader {
    /// Wraps a reader opened in Rust (e.g. a daemon topic from `Client.subscribe`).
    pub(crate) fn from_reader(reader: ringfeed_arrow::Reader) -> Self {
        Self {
            name: reader.ring().name().to_string(),
            schema: reader.schema().clone(),
            inner: Guarded::new(Mutex::new(Some(reader))),
            deferred: Mutex::new(None),
            pyarrow_schema: PyOnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<ringfeed_arrow::Reader>> {
        // A panic while holding the lock cannot leave the reader half-updated
        // in a way that matters more than the panic itself.
        self.inner.get().lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.inner.is_current() {
            Ok(())
        } else {
            Err(forked_error("Reader"))
        }
    }

    fn closed_error(&self) -> PyErr {
        ClosedError::new_err(format!("reader of {:?} is closed", self.name))
    }

    /// The error a `read_many` deferred, if any (taken: raised once).
    fn take_deferred(&self) -> PyResult<()> {
        match self
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(e) => Err(errors::read_error(e)),
            None => Ok(()),
        }
    }

    /// One wait of at most `slice` without the GIL.
    fn read_slice(
        &self,
        py: Python<'_>,
        slice: Duration,
    ) -> PyResult<Result<Option<ringfeed_arrow::Batch>, ReadError>> {
        py.detach(|| {
            let mut g = self.lock();
            g.as_mut().map(|r| r.read(slice))
        })
        .ok_or_else(|| self.closed_error())
    }
}

#[pymethods]
impl Reader {
    /// Attaches to ring `name`.
    ///
    /// `start`: "oldest" (the oldest batch still in the ring), "latest" (the
    /// newest one) or "next" (only batches published after the open).
    /// `spin_us`: busy-poll this long before sleeping (lower latency, burns a core).
    /// `wait`: seconds to wait for the arena to appear (0: fail at once with
    /// `ArenaNotFoundError`).
    /// `validate`: "trusted" (the default: only the ring's writer can write
    /// it, so values are trusted and a read costs O(columns)) or "full" (check
    /// every offset, string view, dictionary key and UTF-8 value, O(rows), for
    /// rings written by less trusted writers; a bad batch raises
    /// `CorruptBatchError` and the reader goes on).
    #[staticmethod]
    #[pyo3(signature = (name, start="oldest", spin_us=0, wait=0.0, validate="trusted"))]
    fn open(
        py: Python<'_>,
        #[pyo3(from_py_with = arg::string)] name: String,
        start: &str,
        #[pyo3(from_py_with = arg::u64)] spin_us: u64,
        #[pyo3(from_py_with = arg::f64)] wait: f64,
        validate: &str,
    ) -> PyResult<Self> {
        let name = name.as_str();
        let opts = ReaderOptions {
            start: parse_start(start)?,
            spin: Duration::from_micros(spin_us),
            validate: parse_validate(validate)?,
            ..Default::default()
        };
        let deadline = Instant::now() + secs(wait);
        let reader = loop {
            let res = py.detach(|| ringfeed_arrow::Reader::open_with(name, opts.clone()));
            match res {
                Ok(r) => break r,
                Err(e)
                    if e.kind() == ringfeed_arrow::ErrorKind::NotFound
                        && Instant::now() < deadline =>
                {
                    let pause = deadline
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(10));
                    py.detach(|| std::thread::sleep(pause));
                    py.check_signals()?;
                }
                Err(e) => return Err(errors::open_error(e)),
            }
        };
        Ok(Self {
            schema: reader.schema().clone(),
            inner: Guarded::new(Mutex::new(Some(reader))),
            name: name.to_string(),
            deferred: Mutex::new(None),
            pyarrow_schema: PyOnceLock::new(),
        })
    }

    /// The next batch; waits up to `timeout` seconds (`None`: forever, `0`:
    /// do not wait). Returns `None` on timeout. Raises `LaggedError` (then
    /// goes on), `ClosedError` once the writer closed the ring and every batch
    /// was read, `WriterGoneError` if the writer died. The GIL is released
    /// while waiting, and Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Batch>> {
        self.check_fork()?;
        self.take_deferred()?;
        crate::wait_sliced(py, timeout, |slice| {
            self.read_slice(py, slice)?
                .map(|b| b.map(Batch::new))
                .map_err(errors::read_error)
        })
    }

    /// For event loops: a file descriptor that turns readable when the next batch is
    /// published, or `None` when `read(0)` would not wait now (a batch is ready, or the
    /// ring is closed). Register the fd for readability; when it fires, or at the latest
    /// after 0.1 s (so that a dead writer is noticed), call `read(0)` and `arm()` again.
    /// The reader counts as a sleeper until `disarm()`, a call that finds a batch ready,
    /// or `close()`. Raises `OSError` where the kernel cannot (no io_uring futex wait:
    /// Linux before 6.7, or io_uring disabled): wait on a thread then.
    /// `ringfeed.aio.AsyncReader` does all this.
    fn arm(&self, py: Python<'_>) -> PyResult<Option<i32>> {
        self.check_fork()?;
        py.detach(|| self.lock().as_mut().map(|r| r.arm()))
            .ok_or_else(|| self.closed_error())?
            .map_err(PyErr::from)
    }

    /// No longer counted as a sleeper after `arm()`.
    fn disarm(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork()?;
        py.detach(|| {
            if let Some(r) = self.lock().as_mut() {
                r.disarm()
            }
        });
        Ok(())
    }

    /// Every batch ready for this reader, as one: waits up to `timeout` seconds
    /// for the first (as `read` does), then takes the ones published since
    /// without waiting, at most `max_batches` in all (`None`: no limit), and
    /// returns them coalesced into one `Batch` (one DataFrame, one table):
    /// for a reader that fell behind a fast writer. One batch is returned as
    /// `read` returns it (zero-copy); several are copied into private memory
    /// (their slots are released at once; `is_zero_copy` is False).
    /// `batches`, `first_seq` and `seq` tell which ring batches it holds.
    /// An error met after the first batch (`LaggedError`, `ClosedError`, ...)
    /// is raised by the next read, after these batches are returned.
    #[pyo3(signature = (timeout=None, max_batches=None))]
    fn read_many(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        max_batches: Option<usize>,
    ) -> PyResult<Option<Batch>> {
        self.check_fork()?;
        self.take_deferred()?;
        let max = max_batches.unwrap_or(usize::MAX);
        if max == 0 {
            return Err(errors::invalid_argument("max_batches must be at least 1"));
        }
        let first = crate::wait_sliced(py, timeout, |slice| {
            self.read_slice(py, slice)?.map_err(errors::read_error)
        })?;
        let Some(first) = first else { return Ok(None) };
        let drained = py
            .detach(|| {
                let mut g = self.lock();
                g.as_mut().map(|r| crate::coalesce::drain(r, first, max))
            })
            .ok_or_else(|| self.closed_error())?
            .map_err(|e| errors::RingfeedError::new_err(format!("cannot coalesce batches: {e}")))?;
        if let Some(e) = drained.deferred.clone() {
            *self.deferred.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
        Ok(Some(Batch::coalesced(drained)))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Blocks for the next batch. Stops when the writer closed the ring and
    /// every batch was read; raises `LaggedError` (iterate again to go on) and
    /// `WriterGoneError`.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Batch>> {
        match self.read(py, None) {
            Ok(b) => Ok(b),
            Err(e) if e.is_instance_of::<ClosedError>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Detaches from the ring. Batches (and frames made from them) stay valid.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork()?;
        let r = py.detach(|| self.lock().take());
        drop(r);
        Ok(())
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

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !self.inner.is_current() || py.detach(|| self.lock().is_none())
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The ring's schema as a `pyarrow.Schema` (needs pyarrow; made once per reader).
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.pyarrow_schema
            .get_or_try_init(py, || {
                export::pyarrow_schema(py, &self.schema).map(Bound::unbind)
            })
            .map(|s| s.bind(py).clone())
    }

    /// Batches this reader holds right now (alive Batch objects and frames made from them).
    #[getter]
    fn leases(&self, py: Python<'_>) -> PyResult<u32> {
        self.check_fork()?;
        py.detach(|| self.lock().as_ref().map(|r| r.ring().leases()))
            .ok_or_else(|| self.closed_error())
    }

    /// Whether the ring's writer process is alive.
    #[getter]
    fn writer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.check_fork()?;
        py.detach(|| self.lock().as_ref().map(|r| r.ring().writer_alive()))
            .ok_or_else(|| self.closed_error())
    }

    fn __repr__(&self) -> String {
        format!("ringfeed.Reader({:?})", self.name)
    }
}
