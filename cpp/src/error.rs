//! Errors on their way to C++, and the guard every bridge function runs in.
//!
//! `cxx` turns an `Err` into a C++ exception carrying only the message; the
//! category (and the daemon's kind, the lag count) goes through a
//! thread-local that the header reads right after catching.

use crate::ffi::ErrorKind;
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

impl From<ringfeed_shm::CreateError> for Error {
    fn from(e: ringfeed_shm::CreateError) -> Self {
        use ringfeed_shm::CreateError as E;
        let kind = match &e {
            E::InvalidName { .. } | E::InvalidOptions(_) => ErrorKind::InvalidArgument,
            E::MetaTooLarge { .. } => ErrorKind::TooLarge,
            E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            E::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ringfeed_arrow::CreateError> for Error {
    fn from(e: ringfeed_arrow::CreateError) -> Self {
        match e {
            ringfeed_arrow::CreateError::Ring(r) => r.into(),
            other => Error::new(ErrorKind::InvalidArgument, other.to_string()),
        }
    }
}

impl From<ringfeed_shm::OpenError> for Error {
    fn from(e: ringfeed_shm::OpenError) -> Self {
        use ringfeed_shm::OpenError as E;
        let kind = match &e {
            E::InvalidName { .. } => ErrorKind::InvalidArgument,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::PermissionDenied { .. } | E::ForeignOwner { .. } => ErrorKind::PermissionDenied,
            E::Truncated { .. }
            | E::BadMagic { .. }
            | E::UnsupportedVersion { .. }
            | E::ForeignEndianness { .. }
            | E::UnknownFeatures { .. }
            | E::CorruptHeader { .. } => ErrorKind::Corrupt,
            E::ReaderTableFull { .. } => ErrorKind::Full,
            E::WriterAlive { .. } => ErrorKind::AlreadyExists,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ringfeed_arrow::OpenError> for Error {
    fn from(e: ringfeed_arrow::OpenError) -> Self {
        match e {
            ringfeed_arrow::OpenError::Ring(r) => r.into(),
            other => Error::new(ErrorKind::Corrupt, other.to_string()),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        let kind = match &e {
            WriteError::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
            WriteError::BatchTooLarge { .. } => ErrorKind::TooLarge,
            WriteError::Full(ringfeed_shm::ClaimError::Timeout { .. }) => ErrorKind::Timeout,
            WriteError::Full(_) => ErrorKind::Full,
            WriteError::Encode(_) => ErrorKind::InvalidArgument,
            WriteError::Closed => ErrorKind::Closed,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        let (kind, detail) = match &e {
            ReadError::Lagged { missed } => (ErrorKind::Lagged, *missed),
            ReadError::WriterGone { .. } => (ErrorKind::WriterGone, 0),
            ReadError::Closed { .. } => (ErrorKind::Closed, 0),
            ReadError::TooManyLeases { .. } => (ErrorKind::TooManyLeases, 0),
            ReadError::Corrupt { .. } => (ErrorKind::Corrupt, 0),
            _ => (ErrorKind::Other, 0),
        };
        Error {
            kind,
            detail,
            daemon_kind: String::new(),
            message: e.to_string(),
        }
    }
}

pub(crate) fn panic_for_test(message: &str) -> Result<(), Error> {
    guard(|| panic!("{message}"))
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Connect { .. } | ClientError::Io(_) => {
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
