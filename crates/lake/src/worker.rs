//! The daemon's lake thread: a pass at start, after every catalog commit (a write-down,
//! a compaction, retention), and again after a failure with backoff.
//!
//! It watches `_catalog/CURRENT` (a few bytes read once a second) instead of being told
//! by the write path, so the daemon's write-down code does not know the lake exists, and
//! a write-down run by hand (`ringfeed write-down` on a store without a daemon, then a
//! daemon start) is picked up the same way.

use crate::Lake;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// First wait after a failed pass; doubled per failure up to the configured maximum.
const FIRST_RETRY: Duration = Duration::from_secs(2);

fn catalog_version(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("_catalog").join("CURRENT")).ok()
}

/// Run passes until `stop` (see the module doc); `[lake] retry_max` caps the backoff.
pub fn run(lake: Lake, stop: Arc<AtomicBool>) {
    let retry_max = lake.cfg.retry_max().unwrap_or(Duration::from_secs(300));
    let mut synced: Option<Option<String>> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff = FIRST_RETRY.min(retry_max);
    while !stop.load(Ordering::Relaxed) {
        let version = catalog_version(&lake.data_dir);
        let changed = synced.as_ref() != Some(&version);
        let due = match retry_at {
            Some(t) => Instant::now() >= t,
            None => changed,
        };
        if due {
            match lake.sync() {
                Ok(r) => {
                    synced = Some(version);
                    retry_at = None;
                    backoff = FIRST_RETRY.min(retry_max);
                    if r.uploaded_objects > 0 || r.deleted_objects > 0 || r.partitions_expired > 0 {
                        tracing::info!(
                            url = lake.url(),
                            partitions = r.partitions_uploaded,
                            objects = r.uploaded_objects,
                            bytes = r.uploaded_bytes,
                            expired = r.partitions_expired,
                            deleted = r.deleted_objects,
                            ms = r.elapsed_ms,
                            "lake sync"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(
                        url = lake.url(),
                        error = %e,
                        retry_in_s = backoff.as_secs_f64(),
                        "lake sync failed; the partitions stay pending and are retried"
                    );
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(retry_max);
                }
            }
        }
        for _ in 0..5 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
