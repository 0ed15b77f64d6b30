//! `ringfeed_lake_*` counters, rendered as Prometheus text by the daemon.
//!
//! Every atomic here is a standalone counter or gauge read for display: `Relaxed`
//! throughout, nothing is published through them.

use crate::{SyncError, SyncReport};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The lake's counters.
#[derive(Debug, Default)]
pub struct LakeMetrics {
    uploaded_bytes: AtomicU64,
    uploaded_objects: AtomicU64,
    deleted_objects: AtomicU64,
    passes: AtomicU64,
    failures: AtomicU64,
    pending: AtomicU64,
    partitions: AtomicU64,
    last_success_unix: AtomicU64,
    last_pass_ms: AtomicU64,
}

impl LakeMetrics {
    pub(crate) fn add_uploaded(&self, bytes: u64) {
        self.uploaded_bytes.fetch_add(bytes, Relaxed);
        self.uploaded_objects.fetch_add(1, Relaxed);
    }

    pub(crate) fn add_deleted(&self, n: u64) {
        self.deleted_objects.fetch_add(n, Relaxed);
    }

    pub(crate) fn set_pending(&self, n: usize) {
        self.pending.store(n as u64, Relaxed);
    }

    pub(crate) fn record_pass(&self, r: &Result<SyncReport, SyncError>) {
        self.passes.fetch_add(1, Relaxed);
        match r {
            Ok(rep) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.last_success_unix.store(now, Relaxed);
                self.last_pass_ms.store(rep.elapsed_ms, Relaxed);
                self.partitions.store(rep.lake_partitions as u64, Relaxed);
                self.pending.store(0, Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// Failed passes so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Partitions waiting for upload, as the last pass counted them.
    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    /// Prometheus text of every counter.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP ringfeed_lake_{name} {help}");
            let _ = writeln!(s, "# TYPE ringfeed_lake_{name} {kind}");
            let _ = writeln!(s, "ringfeed_lake_{name} {v}");
        };
        one(
            "uploaded_bytes_total",
            "counter",
            "Bytes of Parquet uploaded to the lake.",
            self.uploaded_bytes.load(Relaxed),
        );
        one(
            "uploaded_objects_total",
            "counter",
            "Parquet objects uploaded to the lake.",
            self.uploaded_objects.load(Relaxed),
        );
        one(
            "deleted_objects_total",
            "counter",
            "Objects deleted from the lake (older generations, expired partitions, leftovers).",
            self.deleted_objects.load(Relaxed),
        );
        one(
            "passes_total",
            "counter",
            "Sync passes run.",
            self.passes.load(Relaxed),
        );
        one(
            "failures_total",
            "counter",
            "Sync passes that failed (retried later).",
            self.failures.load(Relaxed),
        );
        one(
            "pending_partitions",
            "gauge",
            "Finished partitions not yet in the lake as they are now.",
            self.pending.load(Relaxed),
        );
        one(
            "partitions",
            "gauge",
            "Partitions the lake's index holds.",
            self.partitions.load(Relaxed),
        );
        one(
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful pass (0: none yet).",
            self.last_success_unix.load(Relaxed),
        );
        one(
            "last_pass_milliseconds",
            "gauge",
            "Duration of the last successful pass.",
            self.last_pass_ms.load(Relaxed),
        );
        s
    }
}
