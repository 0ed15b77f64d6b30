//! One error type per operation: opening the lake, a sync pass, a verify run.

use std::path::PathBuf;

/// Why the lake could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is not `s3://bucket/prefix` or `file:///path`.
    #[error("lake url {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory of a `file://` lake could not be created.
    #[error("cannot create the lake directory {dir}: {source}; check its permissions")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The credentials file could not be used.
    #[error("lake credentials file {file}: {reason}; fix the file, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    Credentials {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The object store client refused the settings.
    #[error("lake {url}: {reason}; check [lake] endpoint, region and allow_http")]
    Store {
        /// The URL.
        url: String,
        /// What object_store said.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid [lake] setting {key}: {message}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The async runtime could not start (out of threads or descriptors).
    #[error("cannot start the lake's I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// Why a sync pass stopped. Everything uploaded before the error stays recorded or is
/// found again by the next pass; nothing is skipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The store's catalog could not be read.
    #[error("cannot read the store's catalog: {0}")]
    Catalog(#[from] ringfeed_store::catalog::CatalogError),
    /// Another pass holds the data directory's lake lock.
    #[error("another lake sync is running on {dir} ({holder}); wait for it to finish")]
    Busy {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// A local file (a part, the lock) could not be read.
    #[error("{path}: {source}; the partition is retried by the next pass")]
    Local {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The object store failed (an outage, refused credentials, a full bucket).
    #[error(
        "lake {url}: {op} failed: {reason}; nothing is lost: the next pass uploads what is missing"
    )]
    Remote {
        /// The lake URL.
        url: String,
        /// What was being done (`put dataset=…/part-0-….parquet`).
        op: String,
        /// What object_store said.
        reason: String,
    },
    /// The lake's index (or a manifest it names) is corrupt: syncing over it could lose
    /// track of uploaded partitions, so the pass refuses.
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
}

/// A manifest or index that fails to parse or whose checksum does not match.
#[derive(Debug, thiserror::Error)]
#[error("lake object {object} is corrupt ({detail}); refusing to use it: restore it from a backup or versioned bucket, or run `ringfeed lake sync --rebuild-index` to rebuild the index from the partition manifests")]
pub struct CorruptError {
    /// The object's key.
    pub object: String,
    /// What is wrong.
    pub detail: String,
}
