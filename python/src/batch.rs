//! `ringfeed.Batch`: one record batch read from a ring, zero-copy.

use crate::export::{self, Owner};
use crate::fork::{forked_error, Guarded};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
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
    /// Ring batches in this one: 1, or more for `Reader.read_many`.
    batches: u64,
    first_seq: u64,
}

impl Batch {
    pub(crate) fn new(b: ringfeed_arrow::Batch) -> Self {
        Self {
            seq: b.seq(),
            first_seq: b.seq(),
            batches: 1,
            ts_ns: b.ts_ns(),
            arena: b.arena_range(),
            owner: Arc::new(Guarded::new(b.into_record_batch())),
        }
    }

    /// The batches one `Reader.read_many` took, as one.
    pub(crate) fn coalesced(d: crate::coalesce::Drained) -> Self {
        Self {
            seq: d.last_seq,
            first_seq: d.first_seq,
            batches: d.count,
            ts_ns: d.ts_ns,
            arena: d.arena,
            owner: Arc::new(Guarded::new(d.batch)),
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

/// The callable that makes a `polars.DataFrame` of a PyCapsule-interface
/// object, looked up once per process: polars' own capsule importer, which
/// `pl.DataFrame(obj)` reaches after a dozen type checks (~10 µs per call for
/// a one-row batch), or `pl.DataFrame` itself if that importer moved.
fn polars_from_capsules(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static TO_FRAME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    TO_FRAME
        .get_or_try_init(py, || {
            let direct = py
                .import("polars._utils.pycapsule")
                .and_then(|m| m.getattr("pycapsule_to_frame"));
            match direct {
                Ok(f) if f.is_callable() => Ok::<_, PyErr>(f.unbind()),
                _ => Ok(py.import("polars")?.getattr("DataFrame")?.unbind()),
            }
        })
        .map(|f| f.bind(py))
}

#[pymethods]
impl Batch {
    /// Sequence number in the ring (1-based, gap-free per ring).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// Seq of the first ring batch in this one (`seq` for a single batch;
    /// less for one `Reader.read_many` coalesced).
    #[getter]
    fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// How many ring batches this one holds: 1, or more from `Reader.read_many`.
    #[getter]
    fn batches(&self) -> u64 {
        self.batches
    }

    /// Publish time, nanoseconds since the Unix epoch (of the last ring
    /// batch, for one `Reader.read_many` coalesced).
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
            first_seq: self.first_seq,
            batches: self.batches,
            ts_ns: self.ts_ns,
            arena: self.arena.clone(),
        })
    }

    /// As a `pyarrow.RecordBatch` (zero-copy; needs pyarrow).
    fn to_arrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check_fork()?;
        static RECORD_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        RECORD_BATCH
            .import(slf.py(), "pyarrow", "record_batch")?
            .call1((slf,))
    }

    /// As a `polars.DataFrame` (zero-copy for numeric, temporal, boolean,
    /// string-view and dictionary columns; needs polars).
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check_fork()?;
        polars_from_capsules(slf.py())?.call1((slf,))
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
