//! Counters for `ringfeed stat` and the Prometheus text endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Daemon-wide counters. All Relaxed: they are statistics, not synchronisation.
#[derive(Default, Debug)]
pub struct Metrics {
    /// Queries answered.
    pub queries: AtomicU64,
    /// Queries that failed.
    pub query_errors: AtomicU64,
    /// Queries answered from the cache.
    pub cache_hits: AtomicU64,
    /// Sum of query latencies, ns.
    pub query_ns: AtomicU64,
    /// Slowest query, ns.
    pub query_ns_max: AtomicU64,
    /// Cached results.
    pub cache_entries: AtomicU64,
    /// Bytes of cached results.
    pub cache_bytes: AtomicU64,
    /// Results evicted.
    pub evictions: AtomicU64,
    /// Rows appended.
    pub ingest_rows: AtomicU64,
    /// Time spent appending, ns.
    pub ingest_ns: AtomicU64,
    /// Batches published to topic rings.
    pub published: AtomicU64,
    /// Malformed or refused frames.
    pub bad_requests: AtomicU64,
    /// End-of-day write-down passes that completed.
    pub write_downs: AtomicU64,
    /// Write-down passes that failed (retried later).
    pub write_down_errors: AtomicU64,
    /// (dataset, timeframe, day) partitions written to Parquet.
    pub written_down_partitions: AtomicU64,
    /// Time spent writing down, ns.
    pub write_down_ns: AtomicU64,
    /// Connections refused (over a client's share, or every slot busy).
    pub refused_connections: AtomicU64,
    /// Idle connections closed to make room for new ones.
    pub evicted_connections: AtomicU64,
    /// Connections closed for missing a deadline mid-request.
    pub timed_out_connections: AtomicU64,
    /// Queries refused because every cached result was in use (entry cap).
    pub cache_refusals: AtomicU64,
    /// Reader rows of dead processes freed in result arenas.
    pub dead_readers_swept: AtomicU64,
    /// Store reopens after a request panicked while holding it.
    pub store_recoveries: AtomicU64,
    /// Publications to topic rings that failed after their rows were stored
    /// (retried on the next append to the topic).
    pub publish_failures: AtomicU64,
    /// Websocket clients connected (`/ws`, every HTTP face).
    pub ws_clients: AtomicU64,
    /// Websocket clients closed for answering no ping within the pong timeout, or
    /// reading nothing sent to them for as long (a vanished peer).
    pub ws_keepalive_closes: AtomicU64,
    /// Websocket clients cut for sending more than the per-second message or byte bound.
    pub ws_flood_closes: AtomicU64,
    /// Live batches the websocket hub's topic readers lost to their rings (a burst faster
    /// than they read); the clients of the topic are told.
    pub ws_lost_batches: AtomicU64,
}

impl Metrics {
    /// Records one query.
    pub fn observe_query(&self, took: Duration, ok: bool, hit: bool) {
        let ns = took.as_nanos() as u64;
        self.queries.fetch_add(1, Ordering::Relaxed);
        self.query_ns.fetch_add(ns, Ordering::Relaxed);
        self.query_ns_max.fetch_max(ns, Ordering::Relaxed);
        if !ok {
            self.query_errors.fetch_add(1, Ordering::Relaxed);
        }
        if hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one append.
    pub fn observe_ingest(&self, rows: u64, took: Duration) {
        self.ingest_rows.fetch_add(rows, Ordering::Relaxed);
        self.ingest_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records one write-down pass.
    pub fn observe_write_down(&self, partitions: Option<u64>, took: Duration) {
        match partitions {
            Some(p) => {
                self.write_downs.fetch_add(1, Ordering::Relaxed);
                self.written_down_partitions.fetch_add(p, Ordering::Relaxed);
            }
            None => {
                self.write_down_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.write_down_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Updates the cache gauges.
    pub fn set_cache(&self, entries: u64, bytes: u64) {
        self.cache_entries.store(entries, Ordering::Relaxed);
        self.cache_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, topics: &[TopicStat], connections: u32, store: StoreStat) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut line = |name: &str, help: &str, kind: &str, v: String| {
            s.push_str(&format!("# HELP ringfeed_{name} {help}\n# TYPE ringfeed_{name} {kind}\nringfeed_{name} {v}\n"));
        };
        line(
            "queries_total",
            "Queries answered.",
            "counter",
            g(&self.queries).to_string(),
        );
        line(
            "query_errors_total",
            "Queries that failed.",
            "counter",
            g(&self.query_errors).to_string(),
        );
        line(
            "cache_hits_total",
            "Queries answered from the cache.",
            "counter",
            g(&self.cache_hits).to_string(),
        );
        line(
            "query_seconds_sum",
            "Total query latency, seconds.",
            "counter",
            secs(g(&self.query_ns)),
        );
        line(
            "query_seconds_max",
            "Slowest query, seconds.",
            "gauge",
            secs(g(&self.query_ns_max)),
        );
        line(
            "cache_entries",
            "Query results held in shared memory.",
            "gauge",
            g(&self.cache_entries).to_string(),
        );
        line(
            "cache_bytes",
            "Bytes of query results held in shared memory.",
            "gauge",
            g(&self.cache_bytes).to_string(),
        );
        line(
            "cache_evictions_total",
            "Query results evicted.",
            "counter",
            g(&self.evictions).to_string(),
        );
        line(
            "ingest_rows_total",
            "Rows appended.",
            "counter",
            g(&self.ingest_rows).to_string(),
        );
        line(
            "ingest_seconds_total",
            "Time spent appending, seconds.",
            "counter",
            secs(g(&self.ingest_ns)),
        );
        line(
            "published_batches_total",
            "Batches published to topic rings.",
            "counter",
            g(&self.published).to_string(),
        );
        line(
            "bad_requests_total",
            "Malformed or refused frames.",
            "counter",
            g(&self.bad_requests).to_string(),
        );
        line(
            "write_downs_total",
            "End-of-day write-down passes completed.",
            "counter",
            g(&self.write_downs).to_string(),
        );
        line(
            "write_down_errors_total",
            "End-of-day write-down passes that failed (retried).",
            "counter",
            g(&self.write_down_errors).to_string(),
        );
        line(
            "written_down_partitions_total",
            "Dataset/timeframe/day partitions moved to Parquet.",
            "counter",
            g(&self.written_down_partitions).to_string(),
        );
        line(
            "write_down_seconds_total",
            "Time spent writing down, seconds.",
            "counter",
            secs(g(&self.write_down_ns)),
        );
        for (name, help, v) in [
            (
                "cache_refusals_total",
                "Queries refused busy: every cached result was in use.",
                &self.cache_refusals,
            ),
            (
                "dead_readers_swept_total",
                "Reader rows of dead processes freed in result arenas.",
                &self.dead_readers_swept,
            ),
            (
                "store_recoveries_total",
                "Store reopens after a request panicked while holding it.",
                &self.store_recoveries,
            ),
            (
                "publish_failures_total",
                "Topic publications that failed after their rows were stored (retried).",
                &self.publish_failures,
            ),
            (
                "ws_keepalive_closes_total",
                "Websocket clients closed: no pong (or nothing read) within the pong timeout.",
                &self.ws_keepalive_closes,
            ),
            (
                "ws_flood_closes_total",
                "Websocket clients cut for sending over the per-second message or byte bound.",
                &self.ws_flood_closes,
            ),
            (
                "ws_lost_batches_total",
                "Live batches the websocket hub lost to a topic ring that lapped it (its clients are told).",
                &self.ws_lost_batches,
            ),
        ] {
            line(name, help, "counter", g(v).to_string());
        }
        line(
            "refused_connections_total",
            "Connections refused: over a client's share, or every slot busy.",
            "counter",
            g(&self.refused_connections).to_string(),
        );
        line(
            "evicted_connections_total",
            "Idle connections closed to make room for new ones.",
            "counter",
            g(&self.evicted_connections).to_string(),
        );
        line(
            "timed_out_connections_total",
            "Connections closed for missing a deadline mid-request.",
            "counter",
            g(&self.timed_out_connections).to_string(),
        );
        line(
            "connections",
            "Open client connections.",
            "gauge",
            connections.to_string(),
        );
        line(
            "ws_clients",
            "Websocket clients connected to /ws.",
            "gauge",
            g(&self.ws_clients).to_string(),
        );
        line(
            "store_read_only",
            "1 while appends are refused (full disk, failed recovery): see health.",
            "gauge",
            u8::from(store.read_only).to_string(),
        );
        line(
            "wal_corruptions",
            "Damaged WAL regions set aside in _quarantine at open (ringfeed fsck lists them).",
            "gauge",
            store.wal_corruptions.to_string(),
        );
        s.push_str("# HELP ringfeed_topic_info The ring (arena) of each topic.\n# TYPE ringfeed_topic_info gauge\n");
        for t in topics {
            s.push_str(&format!(
                "ringfeed_topic_info{{topic=\"{}\",arena=\"{}\"}} 1\n",
                t.topic, t.arena
            ));
        }
        let per_topic: [TopicMetric; 6] = [
            (
                "published_bytes_total",
                "Payload bytes published per topic.",
                "counter",
                |t| t.bytes.to_string(),
            ),
            (
                "oldest_lease_seconds",
                "Age of the oldest batch a reader holds per topic (0: none held).",
                "gauge",
                |t| secs(t.oldest_lease_ns),
            ),
            ("write_seq", "Last published seq per topic.", "gauge", |t| {
                t.write_seq.to_string()
            }),
            ("readers", "Attached readers per topic.", "gauge", |t| {
                t.readers.to_string()
            }),
            (
                "lag",
                "Batches the slowest reader is behind.",
                "gauge",
                |t| t.lag.to_string(),
            ),
            ("leases", "Batches leased by readers.", "gauge", |t| {
                t.leases.to_string()
            }),
        ];
        for (name, help, kind, value) in per_topic {
            s.push_str(&format!(
                "# HELP ringfeed_topic_{name} {help}\n# TYPE ringfeed_topic_{name} {kind}\n"
            ));
            for t in topics {
                s.push_str(&format!(
                    "ringfeed_topic_{name}{{topic=\"{}\"}} {}\n",
                    t.topic,
                    value(t)
                ));
            }
        }
        s
    }
}

/// Nanoseconds as Prometheus seconds.
fn secs(ns: u64) -> String {
    format!("{:.9}", ns as f64 / 1e9)
}

/// A per-topic metric: name suffix, help, Prometheus type, and its value.
type TopicMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TopicStat) -> String,
);

/// What the store says of itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStat {
    /// Appends are refused.
    pub read_only: bool,
    /// Damaged WAL regions found at open.
    pub wal_corruptions: usize,
}

/// Figures of one live topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicStat {
    /// "dataset/timeframe".
    pub topic: String,
    /// Name of the topic's ring (arena), as `ringfeed inspect` and `ringfeed top` list it.
    pub arena: String,
    /// Payload bytes published to the ring.
    pub bytes: u64,
    /// Age of the oldest lease a reader holds, ns (0 when nothing is leased).
    pub oldest_lease_ns: u64,
    /// Last published seq.
    pub write_seq: u64,
    /// Attached readers.
    pub readers: usize,
    /// Batches the slowest reader is behind.
    pub lag: u64,
    /// Batches leased by readers.
    pub leases: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_arena_and_report_bytes_and_lease_age() {
        let m = Metrics::default();
        let t = TopicStat {
            topic: "fx/1m".into(),
            arena: "rfd1.t.fx.1m".into(),
            bytes: 4096,
            oldest_lease_ns: 1_500_000_000,
            write_seq: 7,
            readers: 2,
            lag: 1,
            leases: 3,
        };
        let text = m.render(&[t], 0, StoreStat::default());
        for want in [
            "ringfeed_topic_info{topic=\"fx/1m\",arena=\"rfd1.t.fx.1m\"} 1\n",
            "ringfeed_topic_published_bytes_total{topic=\"fx/1m\"} 4096\n",
            "ringfeed_topic_oldest_lease_seconds{topic=\"fx/1m\"} 1.500000000\n",
            "ringfeed_topic_readers{topic=\"fx/1m\"} 2\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
