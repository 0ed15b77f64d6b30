//! The service's error: a kind every face maps the same way, and a message
//! that says what to do.

pub use ringfeed_client::ErrorKind;

/// Why a service operation failed. The kind is what faces map (a socket
/// error answer, a Flight status, an HTTP status); the message is for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened and what to do.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A malformed request or invalid argument.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// A bug: a broken invariant or a caught panic.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A store failure.
    pub fn store(e: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Store, e.to_string())
    }

    /// A ring failure.
    pub fn ring(e: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Ring, e.to_string())
    }

    /// `dataset` is not in the store.
    pub fn unknown_dataset<'a>(dataset: &str, known: impl IntoIterator<Item = &'a String>) -> Self {
        let known: Vec<&String> = known.into_iter().collect();
        Self::new(
            ErrorKind::UnknownDataset,
            format!("unknown dataset {dataset:?}; known: {known:?}"),
        )
    }
}

impl From<ringfeed_client::TimeError> for ServiceError {
    fn from(e: ringfeed_client::TimeError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<ringfeed_store::store::QueryError> for ServiceError {
    fn from(e: ringfeed_store::store::QueryError) -> Self {
        use ringfeed_store::store::QueryError as Q;
        let kind = match e {
            Q::UnknownDataset { .. } => ErrorKind::UnknownDataset,
            Q::UnknownSymbol { .. } => ErrorKind::UnknownSymbol,
            Q::Timeframe { .. } => ErrorKind::BadTimeframe,
            // The caller's mistake (the message names the known fields), not the store's.
            Q::UnknownField { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<ringfeed_store::store::WriteDownError> for ServiceError {
    fn from(e: ringfeed_store::store::WriteDownError) -> Self {
        use ringfeed_store::store::WriteDownError as W;
        let kind = match e {
            W::UnknownDataset { .. } => ErrorKind::UnknownDataset,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<ringfeed_store::store::AppendError> for ServiceError {
    fn from(e: ringfeed_store::store::AppendError) -> Self {
        use ringfeed_store::store::AppendError as A;
        match e {
            // The store's words are for its own API; say it in the protocol's.
            A::Strict { row } => Self::bad_request(format!(
                "{row}: nothing of this append was stored; fix the row, or append with invalid rows skipped (invalid=\"skip\") or kept flagged (\"keep\")"
            )),
            A::UnknownDataset { .. } => Self::new(ErrorKind::UnknownDataset, e.to_string()),
            A::Input { .. } => Self::bad_request(e.to_string()),
            _ => Self::store(e),
        }
    }
}
