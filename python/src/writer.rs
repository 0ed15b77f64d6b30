//! `ringfeed.Writer`.

use crate::errors::{self, arg, ClosedError, RingFullError};
use crate::fork::{forked_error, Guarded};
use crate::{export, import, secs, WAIT_SLICE};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use pyo3::prelude::*;
use ringfeed_arrow::foreign;
use ringfeed_arrow::ClaimError;
use ringfeed_arrow::{OnFull, RingOptions, WriteError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

enum State {
    /// Created without a schema: the arena is made on the first write.
    Pending,
    Open(Box<ringfeed_arrow::Writer>),
    Closed,
}

/// Publishes frames into a shared-memory ring (one writer per ring).
#[pyclass(frozen, module = "ringfeed._ringfeed")]
pub struct Writer {
    state: Guarded<Mutex<State>>,
    name: String,
    opts: RingOptions,
    /// `on_full="block"`: how long one frame may wait for room in total.
    block_timeout: Option<Duration>,
    /// The schema of the frames written last, so that the next frame of the
    /// same schema is imported without parsing its ArrowSchema again.
    imports: Mutex<foreign::SchemaCache>,
    /// The last frame schema found to be the ring's own layout (no conform
    /// needed); held, so pointer equality means "this very schema".
    conformed: Mutex<Option<SchemaRef>>,
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.get().lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.state.is_current() {
            Ok(())
        } else {
            Err(forked_error("Writer"))
        }
    }

    fn closed_error(&self) -> PyErr {
        ClosedError::new_err(format!("writer of {:?} is closed", self.name))
    }

    /// Makes the arena if it is still pending; returns the ring's schema.
    fn ensure_open(&self, py: Python<'_>, schema: &Schema) -> PyResult<SchemaRef> {
        py.detach(|| {
            let mut g = self.lock();
            match &*g {
                State::Open(w) => Ok(w.schema().clone()),
                State::Closed => Err(WriterStep::Closed),
                State::Pending => {
                    let w = ringfeed_arrow::Writer::create(&self.name, schema, self.opts.clone())
                        .map_err(WriterStep::Create)?;
                    let s = w.schema().clone();
                    *g = State::Open(Box::new(w));
                    Ok(s)
                }
            }
        })
        .map_err(|e| self.step_error(e))
    }

    fn step_error(&self, e: WriterStep) -> PyErr {
        match e {
            WriterStep::Closed => self.closed_error(),
            WriterStep::Create(e) => errors::create_error(e),
            WriterStep::Mismatch(d) => errors::schema_mismatch(d),
            WriterStep::Write(e) => errors::write_error(e),
        }
    }

    /// Whether `batch` has the ring's own fields (so needs no conform),
    /// compared field by field once per frame schema.
    fn in_ring_layout(&self, batch: &RecordBatch, target: &SchemaRef) -> bool {
        let theirs = batch.schema_ref();
        let mut known = self.conformed.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::ptr_eq(theirs, target) || known.as_ref().is_some_and(|k| Arc::ptr_eq(k, theirs)) {
            return true;
        }
        if theirs.fields() == target.fields() {
            *known = Some(theirs.clone());
            return true;
        }
        false
    }

    /// Conforms and publishes one batch, waiting in slices (for Ctrl-C) while
    /// an `on_full="block"` ring is full.
    fn publish(&self, py: Python<'_>, batch: &RecordBatch, target: &SchemaRef) -> PyResult<u64> {
        let start = Instant::now();
        let mut conformed: Option<RecordBatch> = None;
        if self.in_ring_layout(batch, target) {
            conformed = Some(batch.clone());
        }
        loop {
            let res = py.detach(|| {
                if conformed.is_none() {
                    conformed = Some(ringfeed_arrow::foreign::conform(batch, target).map_err(
                        |e| {
                            WriterStep::Mismatch(match e {
                                ringfeed_arrow::foreign::ForeignError::SchemaMismatch {
                                    detail,
                                    ..
                                } => detail,
                                other => other.to_string(),
                            })
                        },
                    )?);
                }
                let b = conformed.as_ref().expect("set above");
                match &mut *self.lock() {
                    State::Open(w) => w.write(b).map_err(WriterStep::Write),
                    _ => Err(WriterStep::Closed),
                }
            });
            match res {
                Ok(seq) => return Ok(seq),
                Err(WriterStep::Write(WriteError::Full(e))) => {
                    let total = self.block_timeout.unwrap_or(Duration::ZERO);
                    if start.elapsed() >= total {
                        let msg = match e {
                            ClaimError::Timeout {
                                pid,
                                cursor,
                                needed,
                                ..
                            } => ClaimError::Timeout {
                                waited: start.elapsed(),
                                pid,
                                cursor,
                                needed,
                            }
                            .to_string(),
                            other => other.to_string(),
                        };
                        return Err(RingFullError::new_err(msg));
                    }
                    py.check_signals()?;
                }
                Err(e) => return Err(self.step_error(e)),
            }
        }
    }
}

enum WriterStep {
    Closed,
    Create(ringfeed_arrow::CreateError),
    Mismatch(String),
    Write(WriteError),
}

#[pymethods]
impl Writer {
    /// Creates ring `name` and becomes its only writer.
    ///
    /// `schema`: a `pyarrow.Schema` (or anything with `__arrow_c_schema__`, or
    /// a frame whose schema to use); `None` makes the arena on the first
    /// `write`, with that frame's schema. `slots`: batches the ring keeps.
    /// `slot_bytes`: largest encoded batch. `on_full`: "overwrite" (never
    /// block; slow readers get `LaggedError`) or "block" (wait up to `timeout`
    /// seconds for the slowest reader, then raise `RingFullError`).
    /// `max_readers`, `leases_per_reader`: reader table size and how many
    /// batches one reader may hold at once. `force`: replace an existing arena.
    /// `strings`: "view" (default) stores string and binary columns as views,
    /// whatever layout the frames bring, so that polars reads them without a
    /// copy; "as_given" keeps the schema's layouts.
    #[staticmethod]
    #[pyo3(signature = (name, schema=None, *, slots=8, slot_bytes=1048576, on_full="overwrite", timeout=5.0, max_readers=8, leases_per_reader=4, force=false, strings="view"))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        #[pyo3(from_py_with = arg::string)] name: String,
        schema: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::u32)] slots: u32,
        #[pyo3(from_py_with = arg::u64)] slot_bytes: u64,
        on_full: &str,
        #[pyo3(from_py_with = arg::f64)] timeout: f64,
        #[pyo3(from_py_with = arg::u32)] max_readers: u32,
        #[pyo3(from_py_with = arg::u32)] leases_per_reader: u32,
        #[pyo3(from_py_with = arg::boolean)] force: bool,
        strings: &str,
    ) -> PyResult<Self> {
        let name = name.as_str();
        let strings = match strings {
            "view" => ringfeed_arrow::StringLayout::View,
            "as_given" => ringfeed_arrow::StringLayout::AsGiven,
            other => {
                return Err(errors::invalid_argument(format!(
                    "strings must be \"view\" or \"as_given\", not {other:?}"
                )))
            }
        };
        ringfeed_arrow::arena::check_name(name).map_err(|reason| {
            errors::invalid_name(format!("invalid arena name {name:?}: {reason}"))
        })?;
        let (policy, block_timeout) = match on_full {
            "overwrite" | "overwrite_oldest" => (OnFull::OverwriteOldest, None),
            // The ring waits one slice at a time; `publish` loops up to the
            // caller's timeout, checking for Ctrl-C in between.
            "block" => (
                OnFull::Block(secs(timeout).min(WAIT_SLICE)),
                Some(secs(timeout)),
            ),
            _ => {
                return Err(errors::invalid_argument(format!(
                    "on_full must be \"overwrite\" or \"block\", not {on_full:?}"
                )))
            }
        };
        let opts = RingOptions {
            slots,
            slot_bytes,
            max_readers,
            leases_per_reader,
            on_full: policy,
            force,
            strings,
            ..Default::default()
        };
        let schema = schema.map(import::schema).transpose()?;
        let w = Self {
            state: Guarded::new(Mutex::new(State::Pending)),
            name: name.to_string(),
            opts,
            block_timeout,
            imports: Mutex::new(foreign::SchemaCache::default()),
            conformed: Mutex::new(None),
        };
        if let Some(s) = schema {
            w.ensure_open(py, &s)?;
        }
        Ok(w)
    }

    /// Publishes `frame`: a polars DataFrame, a pyarrow Table or RecordBatch,
    /// or any object with `__arrow_c_stream__` / `__arrow_c_array__`. Each
    /// chunk becomes one ring batch (a one-chunk frame is one batch; empty
    /// chunks are skipped unless all are). Columns are matched by position
    /// and name; see the docs for the casts allowed. Returns the seq of the
    /// last batch published. The GIL is released while copying and waiting.
    fn write(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.check_fork()?;
        let f = {
            let mut cache = self.imports.lock().unwrap_or_else(|e| e.into_inner());
            import::frame_cached(frame, &mut cache)?
        };
        let target = self.ensure_open(py, &f.schema)?;
        let mut batches: Vec<RecordBatch> =
            f.batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(f.schema.clone()));
        }
        let mut last = 0;
        for b in &batches {
            last = self.publish(py, b, &target)?;
        }
        Ok(last)
    }

    /// Waits up to `timeout` seconds until at least `n` readers are attached.
    #[pyo3(signature = (n, timeout=5.0))]
    fn wait_for_readers(&self, py: Python<'_>, n: usize, timeout: f64) -> PyResult<bool> {
        self.check_fork()?;
        let deadline = Instant::now() + secs(timeout);
        loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(WAIT_SLICE);
            let got = py.detach(|| match &mut *self.lock() {
                State::Open(w) => Ok(w.ring_mut().wait_for_readers(n, slice)),
                State::Pending => {
                    std::thread::sleep(slice);
                    Ok(n == 0)
                }
                State::Closed => Err(()),
            });
            match got {
                Ok(true) => return Ok(true),
                Ok(false) if Instant::now() >= deadline => return Ok(false),
                Ok(false) => py.check_signals()?,
                Err(()) => return Err(self.closed_error()),
            }
        }
    }

    /// Closes the ring: readers drain what is left, then stop. The arena's
    /// name is removed; idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.check_fork()?;
        let old = py.detach(|| std::mem::replace(&mut *self.lock(), State::Closed));
        if let State::Open(w) = old {
            py.detach(|| w.close());
        }
        Ok(())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        if self.state.is_current() {
            self.close(py)?;
        }
        Ok(false)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !self.state.is_current() || py.detach(|| matches!(*self.lock(), State::Closed))
    }

    /// The ring's schema as a `pyarrow.Schema`, or `None` before the first
    /// write of a writer created without one.
    #[getter]
    fn schema<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let s = py.detach(|| match &*self.lock() {
            State::Open(w) => Some(w.schema().clone()),
            _ => None,
        });
        s.map(|s| export::pyarrow_schema(py, &s)).transpose()
    }

    /// Bytes one slot holds (the largest encoded batch).
    #[getter]
    fn slot_bytes(&self) -> PyResult<u64> {
        Ok(self
            .opts
            .geometry()
            .map_err(|e| errors::create_error(e.into()))?
            .buffer_bytes)
    }

    fn __repr__(&self) -> String {
        format!("ringfeed.Writer({:?})", self.name)
    }
}
