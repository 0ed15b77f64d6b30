//! `ringfeed._ringfeed`: the pyo3 extension behind the `ringfeed` Python package.
//!
//! A thin layer in the style of arro3: the ring logic lives in
//! `ringfeed-arrow` / `ringfeed-shm`, the daemon protocol and client in
//! `ringfeed-client`; this crate only moves Arrow data across
//! the C Data Interface (PyCapsules, no pyarrow needed), maps errors to Python
//! exceptions, releases the GIL while waiting or copying, and keeps fork
//! children from touching their parent's ring state ([`fork`]).

mod args;
mod batch;
mod client;
mod coalesce;
mod errors;
mod export;
mod fork;
mod import;
mod json;
mod reader;
mod replay;
mod writer;

use pyo3::prelude::*;
use std::time::Duration;

/// Longest time the extension waits without the GIL before it checks for
/// signals (Ctrl-C) and, for reads, the caller's deadline.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Waits up to `timeout` seconds (`None`: forever) for `poll` to give a value,
/// calling it with waits of at most [`WAIT_SLICE`] and checking for signals
/// (Ctrl-C) between them. `poll` runs with the GIL; it releases it itself.
pub(crate) fn wait_sliced<T>(
    py: Python<'_>,
    timeout: Option<f64>,
    mut poll: impl FnMut(Duration) -> PyResult<Option<T>>,
) -> PyResult<Option<T>> {
    let deadline = timeout.map(|t| std::time::Instant::now() + secs(t));
    loop {
        let slice = match deadline {
            Some(d) => d
                .saturating_duration_since(std::time::Instant::now())
                .min(WAIT_SLICE),
            None => WAIT_SLICE,
        };
        if let Some(v) = poll(slice)? {
            return Ok(Some(v));
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Seconds (a Python float) as a `Duration`; negative and NaN become zero,
/// and +inf or huge values saturate.
pub(crate) fn secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    }
}

/// The canonical 7-column bar schema (`ts, symbol, open, high, low, close, volume`) as a `pyarrow.Schema`.
#[pyfunction]
fn bar_schema(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    export::pyarrow_schema(py, &ringfeed_arrow::ohlcv_schema())
}

/// Removes arena `name` from the shm directory. Mapped pages stay valid for
/// processes that still have them; raises `ArenaNotFoundError` if absent.
#[pyfunction]
fn remove(name: &str) -> PyResult<()> {
    ringfeed_arrow::arena::remove(name).map_err(errors::open_error)
}

/// Names of the arenas in the shm directory (`$RINGFEED_SHM_DIR`, default `/dev/shm`).
#[pyfunction]
fn list_arenas() -> PyResult<Vec<String>> {
    ringfeed_arrow::arena::list_arenas()
        .map_err(|e| errors::RingfeedError::new_err(format!("cannot list arenas: {e}")))
}

/// The directory arenas live in.
#[pyfunction]
fn shm_dir() -> String {
    ringfeed_arrow::arena::shm_dir()
        .to_string_lossy()
        .into_owned()
}

#[pymodule]
fn _ringfeed(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<writer::Writer>()?;
    m.add_class::<reader::Reader>()?;
    m.add_class::<batch::Batch>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<replay::Replay>()?;
    m.add_function(wrap_pyfunction!(client::default_socket, m)?)?;
    m.add_function(wrap_pyfunction!(bar_schema, m)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(list_arenas, m)?)?;
    m.add_function(wrap_pyfunction!(shm_dir, m)?)?;
    m.add_function(wrap_pyfunction!(fork::_after_fork_in_child, m)?)?;
    errors::register(m)?;
    Ok(())
}
