//! `ringfeed-lake`: the store's finished cold partitions on object storage, as plain
//! Hive-partitioned Parquet that Spark, DuckDB and polars read, with manifests.
//!
//! A **sync pass** ([`Lake::sync`]) reads the store's catalog, picks every finished
//! partition (a compacted month of a dataset and timeframe), and uploads the ones the lake's
//! index does not hold as they are now: data objects first (content-addressed names), then
//! an immutable partition manifest (files, rows, min/max ts, SHA-256 of each object), then
//! the index, which flips the partition to its new generation in one PUT. Objects no
//! manifest of the index names any more (an older generation, a pass cut short) are
//! deleted after that. A pass is idempotent and resumable: kill it anywhere and the next
//! one uploads what is missing, and never different bytes under a name already used.
//! [`Lake::verify`] checks the index and manifests against the objects. See
//! `docs/scale-out.md`.
//!
//! ```
//! use ringfeed_lake::{Lake, LakeConfig};
//! let data = tempfile::tempdir().unwrap();
//! let lake_dir = tempfile::tempdir().unwrap();
//! let url = format!("file://{}", lake_dir.path().display());
//! let lake = Lake::open(&LakeConfig::new(url), data.path()).unwrap();
//! let report = lake.sync().unwrap(); // an empty store: nothing to upload
//! assert_eq!(report.uploaded_objects, 0);
//! assert!(lake.verify(false).unwrap().ok());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
pub mod manifest;
mod metrics;
mod objects;
mod sync;
mod verify;
pub mod worker;

pub use config::LakeConfig;
pub use error::{CorruptError, OpenError, SyncError};
pub use metrics::LakeMetrics;
pub use sync::{LocalPartition, SyncReport};
pub use verify::{Problem, VerifyError, VerifyReport};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A lake opened for one store's data directory.
pub struct Lake {
    loc: config::Location,
    cfg: LakeConfig,
    data_dir: PathBuf,
    rt: tokio::runtime::Runtime,
    metrics: Arc<LakeMetrics>,
}

impl Lake {
    /// Open the lake at `cfg.url` for the store at `data_dir`. Nothing is read or written
    /// yet: an unreachable S3 endpoint shows at the first pass, not here.
    pub fn open(cfg: &LakeConfig, data_dir: &Path) -> Result<Lake, OpenError> {
        let loc = cfg.open()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OpenError::Runtime)?;
        Ok(Lake {
            loc,
            cfg: cfg.clone(),
            data_dir: data_dir.to_path_buf(),
            rt,
            metrics: Arc::default(),
        })
    }

    /// Count into `metrics` (the daemon's) instead of the lake's own.
    pub fn with_metrics(mut self, metrics: Arc<LakeMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The counters this lake updates.
    pub fn metrics(&self) -> &Arc<LakeMetrics> {
        &self.metrics
    }

    /// The lake's URL.
    pub fn url(&self) -> &str {
        &self.loc.url
    }

    /// Run one sync pass (see the crate doc). Holds `<data_dir>/_lake/sync.lock` while it
    /// runs, so the daemon's passes and `ringfeed lake sync` never overlap.
    pub fn sync(&self) -> Result<SyncReport, SyncError> {
        let r = self.sync_pass(false);
        self.metrics.record_pass(&r);
        r
    }

    /// Rebuild the index from the partition manifests (the highest valid generation of
    /// each partition), then run a pass. For an index that was lost or damaged.
    pub fn rebuild_index(&self) -> Result<SyncReport, SyncError> {
        let r = self.sync_pass(true);
        self.metrics.record_pass(&r);
        r
    }

    /// The finished partitions of the store and whether the lake holds each as it is now
    /// (`true`: up to date), without uploading anything.
    pub fn status(&self) -> Result<Vec<(LocalPartition, bool)>, SyncError> {
        self.rt.block_on(sync::status(self))
    }

    /// Check the index, every manifest and every object it names: presence, size, and
    /// (unless `quick`) SHA-256. A corrupt index is an error; everything else is listed
    /// in the report.
    pub fn verify(&self, quick: bool) -> Result<VerifyReport, VerifyError> {
        self.rt.block_on(verify::verify(self, quick))
    }

    fn sync_pass(&self, rebuild: bool) -> Result<SyncReport, SyncError> {
        let _lock = sync::lock(&self.data_dir)?;
        self.rt.block_on(sync::pass(self, rebuild))
    }
}
