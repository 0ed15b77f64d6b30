//! Python exceptions, one per thing a caller can act on, all under
//! `RingfeedError`. Each carries the Rust error's message, which says what to do.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};
use ringfeed_arrow::{CreateError, OpenError, ReadError, WriteError};

create_exception!(
    ringfeed,
    RingfeedError,
    PyException,
    "Base class of every ringfeed error."
);
create_exception!(
    ringfeed,
    ArenaNotFoundError,
    RingfeedError,
    "No arena with this name exists (start its writer first)."
);
create_exception!(
    ringfeed,
    ArenaExistsError,
    RingfeedError,
    "An arena with this name exists already (remove it, or pass force=True)."
);
create_exception!(
    ringfeed,
    SchemaMismatchError,
    RingfeedError,
    "A frame's schema does not match the ring's."
);
create_exception!(ringfeed, LaggedError, RingfeedError, "The reader fell behind; `.missed` batches were overwritten. The reader goes on with the oldest batch still present.");
create_exception!(
    ringfeed,
    WriterGoneError,
    RingfeedError,
    "The writer process died without closing the ring; batches already read stay valid."
);
create_exception!(ringfeed, ClosedError, RingfeedError, "The ring, reader or writer is closed (for a reader: the writer closed it and every batch was read).");
create_exception!(ringfeed, BatchTooLargeError, RingfeedError, "An encoded batch is larger than a slot (`.size` > `.slot_bytes`): raise slot_bytes or split the frame.");
create_exception!(ringfeed, TooManyLeasesError, RingfeedError, "This reader holds as many batches as the ring allows: drop old Batches/DataFrames/arrays, or create the ring with more leases_per_reader.");
create_exception!(
    ringfeed,
    RingFullError,
    RingfeedError,
    "on_full='block': the slowest reader did not make room within the timeout."
);
create_exception!(
    ringfeed,
    CorruptBatchError,
    RingfeedError,
    "A batch in the arena failed its structural checks and was skipped."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RingfeedError", py.get_type::<RingfeedError>())?;
    m.add("ArenaNotFoundError", py.get_type::<ArenaNotFoundError>())?;
    m.add("ArenaExistsError", py.get_type::<ArenaExistsError>())?;
    m.add("SchemaMismatchError", py.get_type::<SchemaMismatchError>())?;
    m.add("LaggedError", py.get_type::<LaggedError>())?;
    m.add("WriterGoneError", py.get_type::<WriterGoneError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("BatchTooLargeError", py.get_type::<BatchTooLargeError>())?;
    m.add("TooManyLeasesError", py.get_type::<TooManyLeasesError>())?;
    m.add("RingFullError", py.get_type::<RingFullError>())?;
    m.add("CorruptBatchError", py.get_type::<CorruptBatchError>())?;
    Ok(())
}

/// Sets attributes on a freshly made exception (e.g. `LaggedError.missed`).
fn with_attrs(err: PyErr, attrs: &[(&str, u64)]) -> PyErr {
    Python::attach(|py| {
        let v = err.value(py);
        for (k, x) in attrs {
            // An exception instance always accepts new attributes.
            let _ = v.setattr(*k, *x);
        }
    });
    err
}

pub(crate) fn create_error(e: CreateError) -> PyErr {
    let msg = e.to_string();
    match e {
        CreateError::Ring(ringfeed_shm::CreateError::AlreadyExists { .. }) => {
            ArenaExistsError::new_err(msg)
        }
        CreateError::Ring(
            ringfeed_shm::CreateError::InvalidName { .. }
            | ringfeed_shm::CreateError::InvalidOptions(_),
        ) => pyo3::exceptions::PyValueError::new_err(msg),
        _ => RingfeedError::new_err(msg),
    }
}

pub(crate) fn open_error(e: OpenError) -> PyErr {
    let msg = e.to_string();
    match e {
        OpenError::Ring(ringfeed_shm::OpenError::NotFound { .. }) => {
            ArenaNotFoundError::new_err(msg)
        }
        OpenError::Ring(ringfeed_shm::OpenError::InvalidName { .. }) => {
            pyo3::exceptions::PyValueError::new_err(msg)
        }
        _ => RingfeedError::new_err(msg),
    }
}

pub(crate) fn write_error(e: WriteError) -> PyErr {
    let msg = e.to_string();
    match e {
        WriteError::SchemaMismatch { .. } => SchemaMismatchError::new_err(msg),
        WriteError::BatchTooLarge { size, slot_bytes } => with_attrs(
            BatchTooLargeError::new_err(msg),
            &[("size", size), ("slot_bytes", slot_bytes)],
        ),
        WriteError::Full(_) => RingFullError::new_err(msg),
        WriteError::Closed => ClosedError::new_err(msg),
        _ => RingfeedError::new_err(msg),
    }
}

pub(crate) fn read_error(e: ReadError) -> PyErr {
    let msg = e.to_string();
    match e {
        ReadError::Lagged { missed } => {
            with_attrs(LaggedError::new_err(msg), &[("missed", missed)])
        }
        ReadError::WriterGone { .. } => WriterGoneError::new_err(msg),
        ReadError::Closed { .. } => ClosedError::new_err(msg),
        ReadError::TooManyLeases { held, max } => with_attrs(
            TooManyLeasesError::new_err(msg),
            &[("held", held.into()), ("max", max.into())],
        ),
        ReadError::Corrupt { .. } => CorruptBatchError::new_err(msg),
        _ => RingfeedError::new_err(msg),
    }
}

pub(crate) fn schema_mismatch(detail: String) -> PyErr {
    write_error(WriteError::SchemaMismatch { detail })
}

pub(crate) fn create_error_shm(e: ringfeed_shm::CreateError) -> PyErr {
    create_error(CreateError::Ring(e))
}
