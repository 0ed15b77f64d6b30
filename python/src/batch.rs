//! `ringfeed.Batch`: one record batch read from a ring, zero-copy.

use crate::export::{self, Owner};
use crate::fork::{forked_error, Guarded};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use std::sync::Arc;

/// A record batch read from a ring. Its columns point into the shared-memory
/// arena; the slot stays leased (never rewritten) while this object, or any
/// pyarrow array / polars frame made from it, is alive.
#[pyclass(frozen, module = "ringfeed._ringfeed")]
pub struct Batch {
    owner: Owner,
    seq: u64,
    ts_ns: u64,
    arena: std::ops::Range<usize>,
}

impl Batch {
    pub(crate) fn new(b: ringfeed_arrow::Batch) -> Self {
        Self {
            seq: b.seq(),
            ts_ns: b.ts_ns(),
            arena: b.arena_range(),
            owner: Arc::new(Guarded::new(b.into_record_batch())),
        }
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.owner.is_current() {
            Ok(())
        } else {
            Err(forked_error("Batch"))
        }
    }
}

#[pymethods]
impl Batch {
    /// Sequence number in the ring (1-based, gap-free per ring).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// Publish time, nanoseconds since the Unix epoch.
    #[getter]
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.owner.get().num_rows()
    }

    #[getter]
    fn num_columns(&self) -> usize {
        self.owner.get().num_columns()
    }

    fn __len__(&self) -> usize {
        self.owner.get().num_rows()
    }

    /// The batch's schema as a `pyarrow.Schema` (needs pyarrow).
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        export::pyarrow_schema(py, self.owner.get().schema_ref())
    }

    /// `(start, end)` addresses of the arena's buffer pool in this process:
    /// zero-copy columns have buffer addresses inside it.
    #[getter]
    fn arena_range(&self) -> (usize, usize) {
        (self.arena.start, self.arena.end)
    }

    /// Whether every buffer of every column lies inside the arena.
    #[getter]
    fn is_zero_copy(&self) -> bool {
        export::all_in(self.owner.get(), &self.arena)
    }

    /// A copy of this batch in private memory: it holds no lease, so it may
    /// be kept for as long as needed without counting against
    /// `leases_per_reader`. Same `seq` and `ts_ns`; `is_zero_copy` is False.
    /// The GIL is released while copying.
    fn copy(&self, py: Python<'_>) -> PyResult<Batch> {
        let src = self.owner.get();
        let copied = py
            .detach(|| export::deep_copy(src))
            .map_err(|e| crate::errors::RingfeedError::new_err(e.to_string()))?;
        Ok(Batch {
            owner: Arc::new(Guarded::new(copied)),
            seq: self.seq,
            ts_ns: self.ts_ns,
            arena: self.arena.clone(),
        })
    }

    /// As a `pyarrow.RecordBatch` (zero-copy; needs pyarrow).
    fn to_arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check_fork()?;
        slf.py()
            .import("pyarrow")?
            .call_method1("record_batch", (slf,))
    }

    /// As a `polars.DataFrame` (zero-copy for numeric, temporal, boolean,
    /// string-view and dictionary columns; needs polars).
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check_fork()?;
        slf.py()
            .import("polars")?
            .getattr("DataFrame")?
            .call1((slf,))
    }

    /// Arrow PyCapsule interface: `(ArrowSchema, ArrowArray)` capsules of a struct array.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let _ = requested_schema; // the batch is offered as it is stored
        self.check_fork()?;
        export::array_capsules(py, &self.owner)
    }

    /// Arrow PyCapsule interface: an `ArrowArrayStream` capsule of this one batch.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        self.check_fork()?;
        export::stream_capsule(py, &self.owner)
    }

    fn __repr__(&self) -> String {
        let b = self.owner.get();
        let cols: Vec<String> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect();
        format!(
            "ringfeed.Batch(seq={}, rows={}, columns=[{}])",
            self.seq,
            b.num_rows(),
            cols.join(", ")
        )
    }
}
