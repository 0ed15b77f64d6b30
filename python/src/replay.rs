//! `ringfeed.Replay`: stored bars from a time, then live batches
//! (`ringfeed_client::Replay`, which joins them without a gap or a duplicate
//! and keeps only the replay's symbols in live batches).

use crate::batch::Batch;
use crate::errors::{self, ClosedError};
use crate::fork::{forked_error, Guarded};
use pyo3::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// History of (dataset, timeframe) from a time on, then every live batch
/// (holding only the replay's symbols); made by `Client.replay` and by
/// `Client.subscribe(..., start=<time>)`.
#[pyclass(frozen, module = "ringfeed._ringfeed")]
pub struct Replay {
    inner: Guarded<Mutex<Option<ringfeed_client::Replay>>>,
    seam: u64,
    history_rows: u64,
    symbols: Vec<String>,
}

impl Replay {
    pub(crate) fn new(r: ringfeed_client::Replay) -> Self {
        Self {
            seam: r.seam(),
            history_rows: r.history_rows(),
            symbols: r.symbols().to_vec(),
            inner: Guarded::new(Mutex::new(Some(r))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<ringfeed_client::Replay>> {
        self.inner.get().lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.inner.is_current() {
            Ok(())
        } else {
            Err(forked_error("Replay"))
        }
    }

    fn closed_error() -> PyErr {
        ClosedError::new_err("replay is closed")
    }
}

#[pymethods]
impl Replay {
    /// The next batch: history first, then live batches from the seam on.
    /// Waits up to `timeout` seconds (`None`: forever, `0`: do not wait) and
    /// returns `None` on timeout. Raises `ClosedError` when the daemon closed
    /// the topic, `WriterGoneError` if it died, `LaggedError` if this replay
    /// fell behind the topic ring (it lost batches; reading may go on). The
    /// GIL is released while waiting, and Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Batch>> {
        self.check_fork()?;
        crate::wait_sliced(py, timeout, |slice| {
            py.detach(|| self.lock().as_mut().map(|r| r.read(slice)))
                .ok_or_else(Self::closed_error)?
                .map(|b| b.map(Batch::new))
                .map_err(errors::client_error)
        })
    }

    /// For event loops, as `Reader.arm`: a file descriptor that turns readable when a
    /// live batch is published, or `None` when `read(0)` would not wait now (history is
    /// left, or a live batch is ready). Raises `OSError` where the kernel cannot.
    fn arm(&self, py: Python<'_>) -> PyResult<Option<i32>> {
        self.check_fork()?;
        py.detach(|| self.lock().as_mut().map(|r| r.arm()))
            .ok_or_else(Self::closed_error)?
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

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Blocks for the next batch; stops when the daemon closed the topic.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Batch>> {
        match self.read(py, None) {
            Ok(b) => Ok(b),
            Err(e) if e.is_instance_of::<ClosedError>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Detaches from the history and the live topic. Batches already read stay valid.
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

    /// Whether history batches remain to be read.
    #[getter]
    fn in_history(&self, py: Python<'_>) -> bool {
        self.inner.is_current()
            && py.detach(|| self.lock().as_ref().is_some_and(|r| r.in_history()))
    }

    /// The first live topic seq after the history: live batches below it are
    /// skipped, since the history holds their rows.
    #[getter]
    fn seam(&self) -> u64 {
        self.seam
    }

    /// Rows in the history part.
    #[getter]
    fn history_rows(&self) -> u64 {
        self.history_rows
    }

    /// The symbols kept (empty: every symbol).
    #[getter]
    fn symbols(&self) -> Vec<String> {
        self.symbols.clone()
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !self.inner.is_current() || py.detach(|| self.lock().is_none())
    }

    fn __repr__(&self) -> String {
        format!(
            "ringfeed.Replay(seam={}, history_rows={}, symbols={:?})",
            self.seam, self.history_rows, self.symbols
        )
    }
}
