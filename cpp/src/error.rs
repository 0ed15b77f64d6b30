//! Errors on their way to C++, and the guard every bridge function runs in.
//!
//! `cxx` turns an `Err` into a C++ exception carrying only the message; the
//! category (and the daemon's kind, the lag count) goes through a
//! thread-local that the header reads right after catching.

use crate::ffi::ErrorKind;
use ringfeed_arrow::foreign::ForeignError;
use ringfeed_arrow::{ReadError, WriteError};
use ringfeed_client::ClientError;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An error on its way to C++: a category and the Rust message.
#[derive(Debug)]
pub struct Error {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: u64,
    /// The daemon's machine-readable kind (`unknown_dataset`, ...), for `ErrorKind::Daemon`.
    pub(crate) daemon_kind: String,
    pub(crate) message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            detail: 0,
            daemon_kind: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

thread_local! {
    static LAST_ERROR: Cell<(ErrorKind, u64)> = const { Cell::new((ErrorKind::Other, 0)) };
    static LAST_DAEMON_KIND: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn last_error_kind() -> ErrorKind {
    LAST_ERROR.with(|c| c.get().0)
}

pub(crate) fn last_error_detail() -> u64 {
    LAST_ERROR.with(|c| c.get().1)
}

pub(crate) fn last_error_daemon_kind() -> String {
    LAST_DAEMON_KIND.with(|k| k.borrow().clone())
}

/// Runs `f`, turning a panic into an `Error` of kind `Panic`, and records the
/// kind of any error for the header to pick up after `cxx` throws it.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(Error::new(
                ErrorKind::Panic,
                format!("internal error (a Rust panic, caught at the C++ bridge): {what}"),
            ))
        }
    };
    if let Err(e) = &result {
        LAST_ERROR.with(|c| c.set((e.kind, e.detail)));
        LAST_DAEMON_KIND.with(|k| k.borrow_mut().clone_from(&e.daemon_kind));
    }
    result
}

/// The one mapping from `ringfeed-arrow`'s error kinds to the bridge's.
impl From<ringfeed_arrow::ErrorKind> for ErrorKind {
    fn from(k: ringfeed_arrow::ErrorKind) -> Self {
        use ringfeed_arrow::ErrorKind as K;
        match k {
            K::InvalidArgument => Self::InvalidArgument,
            K::NotFound => Self::NotFound,
            K::AlreadyExists => Self::AlreadyExists,
            K::PermissionDenied => Self::PermissionDenied,
            K::SchemaMismatch => Self::SchemaMismatch,
            K::TooLarge => Self::TooLarge,
            K::Timeout => Self::Timeout,
            K::Full => Self::Full,
            K::Lagged => Self::Lagged,
            K::WriterGone => Self::WriterGone,
            K::Closed => Self::Closed,
            K::TooManyLeases => Self::TooManyLeases,
            K::Corrupt => Self::Corrupt,
            K::Forked => Self::Forked,
            _ => Self::Other,
        }
    }
}

/// An error of `ringfeed-arrow`: it says what kind of failure it is.
pub(crate) trait RingError: fmt::Display {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind;
    /// What the header's typed exception carries besides the message.
    fn detail(&self) -> u64 {
        0
    }
}

impl RingError for ringfeed_arrow::CreateError {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind {
        self.kind()
    }
}

impl RingError for ringfeed_arrow::OpenError {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind {
        self.kind()
    }
}

impl RingError for WriteError {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind {
        self.kind()
    }
}

impl RingError for ForeignError {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind {
        self.kind()
    }
}

impl RingError for ReadError {
    fn ring_kind(&self) -> ringfeed_arrow::ErrorKind {
        self.kind()
    }
    /// `Lagged`: the batches missed (`ringfeed::Lagged::missed()`).
    fn detail(&self) -> u64 {
        match self {
            ReadError::Lagged { missed } => *missed,
            _ => 0,
        }
    }
}

impl<E: RingError> From<E> for Error {
    fn from(e: E) -> Self {
        Error {
            kind: e.ring_kind().into(),
            detail: e.detail(),
            daemon_kind: String::new(),
            message: e.to_string(),
        }
    }
}

/// Test hook (`ringfeed::detail::panic_for_test`): panics inside the guard.
pub(crate) fn panic_for_test(message: &str) -> Result<(), Error> {
    guard(|| panic!("{message}"))
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Peer(_) => {
                Error::new(ErrorKind::Connect, message)
            }
            ClientError::Server { kind, .. } => Error {
                kind: ErrorKind::Daemon,
                detail: 0,
                daemon_kind: kind.to_string(),
                message,
            },
            // A replay's ring error: Closed, Lagged (with the count), ...
            ClientError::Read { source, .. } => Error {
                message,
                ..Error::from(source)
            },
            _ => Error::new(ErrorKind::Other, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::client_connect;

    #[test]
    fn panics_become_errors_with_a_kind() {
        let e = panic_for_test("boom").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic);
        assert!(e.message.contains("boom"), "{e}");
        assert_eq!(last_error_kind(), ErrorKind::Panic);
    }

    #[test]
    fn client_errors_keep_their_category() {
        let e = Error::from(ClientError::Server {
            kind: ringfeed_client::ErrorKind::UnknownDataset,
            message: "unknown dataset \"x\"".into(),
        });
        assert_eq!(
            (e.kind, e.daemon_kind.as_str()),
            (ErrorKind::Daemon, "unknown_dataset")
        );
        assert!(e.message.contains("unknown dataset"), "{e}");
        let e = client_connect("/nonexistent/ringfeed.sock").err().unwrap();
        assert_eq!(e.kind, ErrorKind::Connect);
        assert!(e.message.contains("/nonexistent/ringfeed.sock"), "{e}");
        assert_eq!(last_error_kind(), ErrorKind::Connect);
        assert_eq!(last_error_daemon_kind(), "");
    }

    #[test]
    fn ring_errors_map_through_their_kind() {
        std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
        let e = Error::from(ringfeed_arrow::arena::remove("rf-cpp-unit-no-such").unwrap_err());
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(e.message.contains("rf-cpp-unit-no-such"), "{e}");
        let e = Error::from(ringfeed_arrow::arena::remove("../x").unwrap_err());
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(Error::from(WriteError::Forked).kind, ErrorKind::Forked);
        assert_eq!(Error::from(WriteError::Closed).kind, ErrorKind::Closed);
        let e = Error::from(ReadError::Lagged { missed: 5 });
        assert_eq!((e.kind, e.detail), (ErrorKind::Lagged, 5));
        let e = Error::from(ForeignError::SchemaMismatch {
            columns: vec!["close".into()],
            detail: "column \"close\" differs".into(),
        });
        assert_eq!(e.kind, ErrorKind::SchemaMismatch);
        assert!(e.message.contains("close"), "{e}");
    }

    #[test]
    fn replay_ring_errors_keep_their_kind() {
        let e = Error::from(ClientError::Read {
            arena: "a.t.x.1m".into(),
            source: ReadError::Lagged { missed: 17 },
        });
        assert_eq!((e.kind, e.detail), (ErrorKind::Lagged, 17));
        assert!(e.message.contains("a.t.x.1m"), "{e}");
        let e = Error::from(ClientError::Read {
            arena: "a.t.x.1m".into(),
            source: ReadError::Closed {
                name: "a.t.x.1m".into(),
            },
        });
        assert_eq!(e.kind, ErrorKind::Closed);
    }
}
