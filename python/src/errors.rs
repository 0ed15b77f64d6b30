//! Python exceptions, one per thing a caller can act on, all under
//! `RingfeedError`. Each carries the Rust error's message, which says what to do.
//! Argument errors also subclass the builtin a caller would catch
//! (`InvalidArgumentError` is a `ValueError`, `ArgumentTypeError` a `TypeError`).

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{create_exception, PyErr, PyTypeInfo};
use ringfeed_arrow::{CreateError, ErrorKind, OpenError, ReadError, WriteError};
use ringfeed_client::ClientError;

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
    "The ring is full: on_full='block' and the slowest reader did not make room within the timeout, every buffer is leased, or every reader row is taken."
);
create_exception!(
    ringfeed,
    CorruptBatchError,
    RingfeedError,
    "A batch in the arena failed its structural checks and was skipped."
);

create_exception!(
    ringfeed,
    DaemonError,
    RingfeedError,
    "ringfeedd refused a request. `.kind` is the wire name of the reason: bad_request, unknown_dataset, unknown_symbol, bad_timeframe, too_large, too_many_pending, busy, store, ring, internal or followed."
);
create_exception!(
    ringfeed,
    ConnectError,
    RingfeedError,
    "No ringfeedd listens on the socket: start it with `ringfeed serve` (or set RINGFEED_SOCKET)."
);
create_exception!(
    ringfeed,
    ConnectionLostError,
    RingfeedError,
    "The connection to ringfeedd broke or timed out during a request; the next call reconnects."
);

static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_NAME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ARGUMENT_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `class <name>(RingfeedError, <builtin>)`, made once: `create_exception!`
/// takes one base only.
fn with_builtin_base<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    doc: &str,
    builtin: Bound<'py, PyType>,
) -> PyResult<&'static Py<PyType>> {
    cell.get_or_try_init(py, || {
        let attrs = PyDict::new(py);
        attrs.set_item("__module__", "ringfeed")?;
        attrs.set_item("__doc__", doc)?;
        let bases = PyTuple::new(py, [py.get_type::<RingfeedError>(), builtin])?;
        let t = PyType::type_object(py).call1((name, bases, attrs))?;
        Ok(t.cast_into::<PyType>()?.unbind())
    })
}

fn invalid_argument_type(py: Python<'_>) -> PyResult<&'static Py<PyType>> {
    with_builtin_base(
        py,
        &INVALID_ARGUMENT,
        "InvalidArgumentError",
        "An argument has the right type but a value ringfeed cannot use.",
        py.get_type::<PyValueError>(),
    )
}

/// `class InvalidNameError(InvalidArgumentError)`: a `RingfeedError` and a
/// `ValueError`, so `except rf.RingfeedError` and `except ValueError` both
/// catch a bad ring name.
fn invalid_name_type(py: Python<'_>) -> PyResult<&'static Py<PyType>> {
    let base = invalid_argument_type(py)?.bind(py).clone();
    INVALID_NAME.get_or_try_init(py, || {
        let attrs = PyDict::new(py);
        attrs.set_item("__module__", "ringfeed")?;
        attrs.set_item(
            "__doc__",
            "A ring (arena) name ringfeed refuses: 1-200 characters of [A-Za-z0-9._-], not starting with '.' or '-', without '.tmp-'.",
        )?;
        let bases = PyTuple::new(py, [base])?;
        let t = PyType::type_object(py).call1(("InvalidNameError", bases, attrs))?;
        Ok(t.cast_into::<PyType>()?.unbind())
    })
}

/// An `InvalidNameError` (a `RingfeedError`, `InvalidArgumentError` and `ValueError`).
pub(crate) fn invalid_name(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match invalid_name_type(py) {
        Ok(t) => PyErr::from_type(t.bind(py).clone(), msg),
        Err(e) => e,
    })
}

fn argument_type_type(py: Python<'_>) -> PyResult<&'static Py<PyType>> {
    with_builtin_base(
        py,
        &ARGUMENT_TYPE,
        "ArgumentTypeError",
        "An argument has a type ringfeed does not take.",
        py.get_type::<PyTypeError>(),
    )
}

/// An `InvalidArgumentError` (a `RingfeedError` and a `ValueError`).
pub(crate) fn invalid_argument(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match invalid_argument_type(py) {
        Ok(t) => PyErr::from_type(t.bind(py).clone(), msg),
        Err(e) => e,
    })
}

/// An `ArgumentTypeError` (a `RingfeedError` and a `TypeError`).
pub(crate) fn argument_type(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match argument_type_type(py) {
        Ok(t) => PyErr::from_type(t.bind(py).clone(), msg),
        Err(e) => e,
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DaemonError", py.get_type::<DaemonError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("ConnectionLostError", py.get_type::<ConnectionLostError>())?;
    m.add("InvalidArgumentError", invalid_argument_type(py)?.bind(py))?;
    m.add("InvalidNameError", invalid_name_type(py)?.bind(py))?;
    m.add("ArgumentTypeError", argument_type_type(py)?.bind(py))?;
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
fn with_attrs<T: Copy + for<'py> IntoPyObject<'py>>(err: PyErr, attrs: &[(&str, T)]) -> PyErr {
    Python::attach(|py| {
        let v = err.value(py);
        for (k, x) in attrs {
            // An exception instance always accepts new attributes.
            let _ = v.setattr(*k, *x);
        }
    });
    err
}

/// The exception for a ring error of `kind`: one mapping for every ring
/// operation (create, open, write, read, foreign import).
fn by_kind(kind: ErrorKind, msg: String) -> PyErr {
    match kind {
        ErrorKind::InvalidArgument => invalid_argument(msg),
        ErrorKind::NotFound => ArenaNotFoundError::new_err(msg),
        ErrorKind::AlreadyExists => ArenaExistsError::new_err(msg),
        ErrorKind::SchemaMismatch => SchemaMismatchError::new_err(msg),
        ErrorKind::TooLarge => BatchTooLargeError::new_err(msg),
        ErrorKind::Timeout | ErrorKind::Full => RingFullError::new_err(msg),
        ErrorKind::Lagged => LaggedError::new_err(msg),
        ErrorKind::WriterGone => WriterGoneError::new_err(msg),
        ErrorKind::Closed => ClosedError::new_err(msg),
        ErrorKind::TooManyLeases => TooManyLeasesError::new_err(msg),
        ErrorKind::Corrupt => CorruptBatchError::new_err(msg),
        _ => RingfeedError::new_err(msg),
    }
}

pub(crate) fn create_error(e: CreateError) -> PyErr {
    if let CreateError::Ring(ringfeed_shm::CreateError::InvalidName { .. }) = &e {
        return invalid_name(e.to_string());
    }
    by_kind(e.kind(), e.to_string())
}

pub(crate) fn open_error(e: OpenError) -> PyErr {
    if let OpenError::Ring(ringfeed_shm::OpenError::InvalidName { .. }) = &e {
        return invalid_name(e.to_string());
    }
    by_kind(e.kind(), e.to_string())
}

pub(crate) fn write_error(e: WriteError) -> PyErr {
    let err = by_kind(e.kind(), e.to_string());
    // The numbers a caller acts on, as attributes.
    match e {
        WriteError::BatchTooLarge { size, slot_bytes } => {
            with_attrs(err, &[("size", size), ("slot_bytes", slot_bytes)])
        }
        _ => err,
    }
}

pub(crate) fn read_error(e: ReadError) -> PyErr {
    let err = by_kind(e.kind(), e.to_string());
    match e {
        ReadError::Lagged { missed } => with_attrs(err, &[("missed", missed)]),
        ReadError::TooManyLeases { held, max } => {
            with_attrs(err, &[("held", u64::from(held)), ("max", u64::from(max))])
        }
        _ => err,
    }
}

pub(crate) fn schema_mismatch(detail: String) -> PyErr {
    write_error(WriteError::SchemaMismatch { detail })
}

/// A daemon client's error: `DaemonError` (with `.kind`) for a refusal,
/// `ConnectError` / `ConnectionLostError` for the socket, the ring's
/// exceptions for a replay's reads.
pub(crate) fn client_error(e: ClientError) -> PyErr {
    let msg = e.to_string();
    match e {
        ClientError::Server { kind, .. } => {
            with_attrs(DaemonError::new_err(msg), &[("kind", kind.as_str())])
        }
        ClientError::Connect { .. } | ClientError::Peer(_) => ConnectError::new_err(msg),
        ClientError::Io(_) => ConnectionLostError::new_err(msg),
        ClientError::Read { source, .. } => read_error(source),
        _ => RingfeedError::new_err(msg),
    }
}

/// Argument converters for `#[pyo3(from_py_with = ...)]`: a value of the
/// wrong type raises `ArgumentTypeError` and an out-of-range number
/// `InvalidArgumentError`, both `RingfeedError`s, where pyo3's own extraction
/// would raise a bare `TypeError` or `OverflowError`.
pub(crate) mod arg {
    use super::{argument_type, invalid_argument};
    use pyo3::prelude::*;
    use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

    fn wrong_type(obj: &Bound<'_, PyAny>, want: &str) -> PyErr {
        let got = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        argument_type(format!("expected {want}, got {got}"))
    }

    /// A `str`.
    pub(crate) fn string(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        match obj.cast::<PyString>() {
            Ok(s) => Ok(s.to_cow()?.into_owned()),
            Err(_) => Err(wrong_type(obj, "a str")),
        }
    }

    fn int<T: TryFrom<i128>>(obj: &Bound<'_, PyAny>, range: &str) -> PyResult<T> {
        if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
            return Err(wrong_type(obj, "an int"));
        }
        obj.extract::<i128>()
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| invalid_argument(format!("{obj} is out of range ({range})")))
    }

    /// An `int` in `0..2**64`.
    pub(crate) fn u64(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
        int(obj, "0 to 2**64-1")
    }

    /// An `int` in `0..2**32`.
    pub(crate) fn u32(obj: &Bound<'_, PyAny>) -> PyResult<u32> {
        int(obj, "0 to 2**32-1")
    }

    /// A `float` (or an `int`).
    pub(crate) fn f64(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
        if obj.is_instance_of::<PyBool>()
            || !(obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>())
        {
            return Err(wrong_type(obj, "a number"));
        }
        obj.extract::<f64>()
            .map_err(|_| invalid_argument(format!("{obj} is out of range for a float")))
    }

    /// A `bool`.
    pub(crate) fn boolean(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
        match obj.cast::<PyBool>() {
            Ok(b) => Ok(b.is_true()),
            Err(_) => Err(wrong_type(obj, "a bool")),
        }
    }
}
