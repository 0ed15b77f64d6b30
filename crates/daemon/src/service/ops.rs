//! The operational snapshot (the web page's operations view, `GET /api/ops`): what
//! the parts of the service hold right now, each read from the part that owns it:
//! the topics ([`super::topics::Topics::views`]), the result cache
//! ([`super::cache::ResultCache::usage`]), the store's hot days and state, and the
//! counters of [`crate::metrics::Metrics`].
//!
//! Counters are totals since start, never rates: a viewer takes two snapshots and
//! divides the change by `now_ms`'s (as Prometheus does), so the service keeps no
//! sampling state and any number of viewers see the same figures.

use super::open::Service;
use super::topics::TopicView;
use ringfeed_client::time::now_ns;
use ringfeed_store::timeframe::NANOS_PER_DAY;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything the operations view shows.
#[derive(Clone, Debug, Serialize)]
pub struct OpsSnapshot {
    /// When it was taken, ms since the epoch (the base of every rate).
    pub now_ms: i64,
    /// The daemon's pid (readers inside the daemon, such as web page streams and
    /// Flight subscriptions, carry it).
    pub pid: u32,
    /// Live topics, by dataset and timeframe.
    pub topics: Vec<TopicView>,
    /// The result cache.
    pub cache: CacheOps,
    /// Appends.
    pub ingest: IngestOps,
    /// End-of-day write-down.
    pub write_down: WriteDownOps,
    /// The store's own state.
    pub store: StoreOps,
    /// Queries.
    pub queries: QueryOps,
}

/// The result cache's figures.
#[derive(Clone, Debug, Serialize)]
pub struct CacheOps {
    /// Results held in shared memory.
    pub entries: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The most results kept at once.
    pub max_entries: usize,
    /// The memory budget, bytes.
    pub budget_bytes: u64,
    /// Queries answered from the cache (total).
    pub hits: u64,
    /// Results evicted (total).
    pub evictions: u64,
    /// Queries refused because every result was in use (total).
    pub refusals: u64,
}

/// Appends (totals since start).
#[derive(Clone, Debug, Serialize)]
pub struct IngestOps {
    /// Rows appended.
    pub rows: u64,
    /// Time spent appending, seconds.
    pub seconds: f64,
    /// Batches published to topic rings.
    pub published_batches: u64,
    /// Publications that failed after their rows were stored (retried).
    pub publish_failures: u64,
}

/// Queries (totals since start).
#[derive(Clone, Debug, Serialize)]
pub struct QueryOps {
    /// Queries answered.
    pub total: u64,
    /// Queries that failed.
    pub errors: u64,
    /// The slowest, seconds.
    pub max_seconds: f64,
}

/// End-of-day write-down: how it went and what waits for it.
#[derive(Clone, Debug, Serialize)]
pub struct WriteDownOps {
    /// `write_down_delay` in seconds; `None`: write-down is off (every day stays hot).
    pub delay_seconds: Option<u64>,
    /// When the next pass is due, ms since the epoch (`None` when off).
    pub next_due_ms: Option<i64>,
    /// Passes completed (total).
    pub passes: u64,
    /// Passes that failed (retried later; total).
    pub errors: u64,
    /// (dataset, timeframe, day) partitions written to Parquet (total).
    pub partitions: u64,
    /// Time spent writing down, seconds.
    pub seconds: f64,
    /// Per dataset: its hot days at its base timeframe, and how many are already due.
    pub hot: Vec<HotDays>,
}

/// One dataset's hot tier.
#[derive(Clone, Debug, Serialize)]
pub struct HotDays {
    /// The dataset.
    pub dataset: String,
    /// Days with a hot WAL at its base timeframe.
    pub days: usize,
    /// Of those, days the write-down should have moved already (over for the delay).
    pub due: usize,
    /// The oldest hot day, "YYYY-MM-DD".
    pub oldest: Option<String>,
}

/// The store's state.
#[derive(Clone, Debug, Serialize)]
pub struct StoreOps {
    /// Why appends are refused, if they are.
    pub read_only: Option<String>,
    /// Damaged WAL regions set aside at open.
    pub wal_corruptions: usize,
}

impl Service {
    /// The operational snapshot of every dataset `may_see` admits (topics and hot days;
    /// the daemon-wide counters are shown to every caller: they name no dataset).
    pub fn ops(&self, may_see: impl Fn(&str) -> bool) -> OpsSnapshot {
        let now = now_ns();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = |a: &AtomicU64| g(a) as f64 / 1e9;
        let m = &self.metrics;
        let delay = self.cfg.write_down_delay;
        // Days before this one are due (as the write-down loop computes it).
        let boundary = delay.map(|d| super::write_down_boundary(now, d));
        let (hot, store) = {
            let store = self.store();
            let hot = store
                .catalog()
                .datasets
                .iter()
                .filter(|(name, _)| may_see(name))
                .map(|(name, e)| {
                    let days = store.hot_days(name, e.config.base);
                    HotDays {
                        dataset: name.clone(),
                        days: days.len(),
                        due: boundary.map_or(0, |b| days.iter().filter(|&&d| d < b).count()),
                        oldest: days.first().map(|&d| ringfeed_store::store::day_string(d)),
                    }
                })
                .collect();
            let st = StoreOps {
                read_only: store.read_only_reason().map(str::to_string),
                wal_corruptions: store.corruption_count(),
            };
            (hot, st)
        };
        let (entries, bytes) = self.cache.usage();
        OpsSnapshot {
            now_ms: now / 1_000_000,
            pid: std::process::id(),
            topics: self
                .topics
                .views()
                .into_iter()
                .filter(|t| may_see(&t.dataset))
                .collect(),
            cache: CacheOps {
                entries,
                bytes,
                max_entries: self.cache.entry_cap(),
                budget_bytes: self.cache.limits().memory_budget,
                hits: g(&m.cache_hits),
                evictions: g(&m.evictions),
                refusals: g(&m.cache_refusals),
            },
            ingest: IngestOps {
                rows: g(&m.ingest_rows),
                seconds: secs(&m.ingest_ns),
                published_batches: g(&m.published),
                publish_failures: g(&m.publish_failures),
            },
            write_down: WriteDownOps {
                delay_seconds: delay.map(|d| d.as_secs()),
                // The day after the boundary is over, plus the delay.
                next_due_ms: boundary.zip(delay).map(|(b, d)| {
                    (b + 1) * NANOS_PER_DAY / 1_000_000 + d.as_nanos() as i64 / 1_000_000
                }),
                passes: g(&m.write_downs),
                errors: g(&m.write_down_errors),
                partitions: g(&m.written_down_partitions),
                seconds: secs(&m.write_down_ns),
                hot,
            },
            store,
            queries: QueryOps {
                total: g(&m.queries),
                errors: g(&m.query_errors),
                max_seconds: secs(&m.query_ns_max),
            },
        }
    }
}

/// A ring on the host that is not this daemon's (a feed's, a strategy's): the
/// operations view's "rings on the host", for admins.
#[derive(Clone, Debug, Serialize)]
pub struct HostRing {
    /// Its arena name.
    pub name: String,
    /// "ready", "closed" or "init"; "unreadable" when its header cannot be read.
    pub state: String,
    /// Highest published seq.
    pub write_seq: u64,
    /// The last writer's pid.
    pub writer_pid: u32,
    /// Whether a live process holds its writer lock.
    pub writer_alive: bool,
    /// Attached readers.
    pub readers: usize,
    /// Batches its slowest reader is behind.
    pub lag: u64,
    /// Batches its readers hold leased.
    pub leases: u32,
}

/// Host rings listed at most (a snapshot must stay small and quick).
pub const MAX_HOST_RINGS: usize = 200;

impl Service {
    /// The rings on the host outside this daemon's arena prefix (its topics and
    /// results are in [`Service::ops`]), by name, at most [`MAX_HOST_RINGS`].
    pub fn host_rings(&self) -> Vec<HostRing> {
        let ours = format!("{}.", self.cfg.arena_prefix);
        ringfeed_shm::list_arenas()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.starts_with(&ours))
            .take(MAX_HOST_RINGS)
            .map(|name| match ringfeed_shm::inspect(&name) {
                Ok(i) => HostRing {
                    state: i.state.to_string(),
                    write_seq: i.write_seq,
                    writer_pid: i.writer_pid,
                    writer_alive: i.writer_alive,
                    readers: i.readers.iter().filter(|r| r.problem.is_none()).count(),
                    lag: i.max_lag(),
                    leases: i
                        .readers
                        .iter()
                        .fold(0u32, |a, r| a.saturating_add(r.leases)),
                    name,
                },
                Err(_) => HostRing {
                    name,
                    state: "unreadable".into(),
                    write_seq: 0,
                    writer_pid: 0,
                    writer_alive: false,
                    readers: 0,
                    lag: 0,
                    leases: 0,
                },
            })
            .collect()
    }
}
