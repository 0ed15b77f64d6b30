//! Live topics: one ring per (dataset, timeframe), created once on first use
//! and written by every append and rollup update.
//!
//! A publication that fails (the ring cannot be created, /dev/shm is full)
//! comes after its rows were stored, so it is not dropped: it stays in the
//! topic's backlog and goes out, in order, before the topic's next
//! publication, at the next maintenance pass, or before a replay reads the
//! topic's seam (so a replay's history and its live part never overlap).

use super::error::ServiceError;
use crate::config::TopicConfig;
use crate::metrics::{Metrics, TopicStat};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use ringfeed_arrow::{RingOptions, Writer};
use ringfeed_store::Timeframe;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

type Key = (String, String);

/// The rings, and what could not be published yet.
#[derive(Default)]
pub(super) struct Rings {
    rings: HashMap<Key, Writer>,
    /// Per topic, batches stored but not yet published, oldest first.
    backlog: HashMap<Key, VecDeque<RecordBatch>>,
}

/// Rows a topic's backlog keeps at most; past that the oldest are dropped
/// (logged): a subscriber that missed them sees them in a replay or query.
const MAX_BACKLOG_ROWS: usize = 1 << 20;

/// One live topic, for the operations view ([`Topics::views`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicView {
    /// The dataset.
    pub dataset: String,
    /// The timeframe ("1m").
    pub timeframe: String,
    /// The ring's arena name.
    pub arena: String,
    /// Last published seq (0: none yet); a rate is its change over time.
    pub write_seq: u64,
    /// Whether a live process (this daemon) holds the ring's writer lock.
    pub writer_alive: bool,
    /// Attached readers (and rows that break an invariant, `problem` set).
    pub readers: Vec<TopicReader>,
    /// Rows stored but not yet published (the ring could not take them yet).
    pub backlog_rows: usize,
}

/// One reader of a live topic.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopicReader {
    /// Its process (diagnostic: a reader inside this daemon, e.g. a web page's live
    /// stream or a Flight subscription, has the daemon's pid).
    pub pid: u32,
    /// The next seq it will read.
    pub cursor: u64,
    /// Batches it is behind the writer.
    pub lag: u64,
    /// Batches it holds leased.
    pub leases: u32,
    /// While it holds leases: ns since its oldest one was taken, or more (`None`
    /// without leases, or from a reader built against layout minor 0).
    pub lease_age_ns: Option<u64>,
    /// Batches it lost to lag.
    pub missed: u64,
    /// Why the writer does not trust its row, if it breaks an invariant.
    pub problem: Option<&'static str>,
}

/// The topic rings of one daemon.
pub struct Topics {
    /// Prefix of topic arena names.
    prefix: String,
    cfg: TopicConfig,
    rings: Mutex<Rings>,
    metrics: Arc<Metrics>,
}

impl Topics {
    /// No topics yet; arenas are named `<prefix>.t.<dataset>.<timeframe>`.
    pub fn new(prefix: &str, cfg: TopicConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            prefix: prefix.to_string(),
            cfg,
            rings: Mutex::new(Rings::default()),
            metrics,
        }
    }

    /// The rings. A panic under this lock (inside a ring write) leaves the
    /// maps consistent (each insert or removal is one step), so the poison
    /// is cleared.
    fn rings(&self) -> MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|p| {
            self.rings.clear_poison();
            p.into_inner()
        })
    }

    fn key(dataset: &str, tf: Timeframe) -> Key {
        (dataset.to_string(), tf.to_string())
    }

    /// The arena name of (dataset, tf).
    pub fn name(&self, dataset: &str, tf: Timeframe) -> String {
        format!("{}.t.{dataset}.{tf}", self.prefix)
    }

    /// The topic's ring, created with `schema()` on first use. Created under
    /// the lock, so concurrent first subscribers share one ring (a second
    /// create would replace, then unlink, the first one's file).
    fn ensure(
        &self,
        rings: &mut Rings,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<(), ServiceError> {
        let key = Self::key(dataset, tf);
        if rings.rings.contains_key(&key) {
            return Ok(());
        }
        let opts = RingOptions {
            slots: self.cfg.slots,
            slot_bytes: self.cfg.slot_bytes,
            max_readers: self.cfg.max_readers,
            force: true,
            ..Default::default()
        };
        let schema = schema()?;
        let w =
            Writer::create(&self.name(dataset, tf), &schema, opts).map_err(ServiceError::ring)?;
        rings.rings.insert(key, w);
        Ok(())
    }

    /// The arena name of (dataset, tf), creating its ring on first use.
    pub fn subscribe(
        &self,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<String, ServiceError> {
        let mut rings = self.rings();
        self.ensure(&mut rings, dataset, tf, schema)?;
        Ok(self.name(dataset, tf))
    }

    /// The seq the next publication to (dataset, tf) will get, creating the
    /// ring on first use.
    pub fn next_seq(
        &self,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<u64, ServiceError> {
        let mut rings = self.rings();
        self.ensure(&mut rings, dataset, tf, schema)?;
        Ok(rings.rings[&Self::key(dataset, tf)].ring().next_seq())
    }

    /// Writes `batch` to the topic, after anything still in its backlog; a
    /// batch larger than a slot is split in halves until each part fits. On
    /// failure, what was not written stays in the backlog, in order.
    pub fn publish(
        &self,
        dataset: &str,
        tf: Timeframe,
        batch: &RecordBatch,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<(), ServiceError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut rings = self.rings();
        let key = Self::key(dataset, tf);
        let backlog = rings.backlog.entry(key.clone()).or_default();
        backlog.push_back(batch.clone());
        let mut rows: usize = backlog.iter().map(RecordBatch::num_rows).sum();
        while rows > MAX_BACKLOG_ROWS && backlog.len() > 1 {
            let dropped = backlog.pop_front().expect("longer than 1");
            rows -= dropped.num_rows();
            tracing::error!(dataset, timeframe = %tf, rows = dropped.num_rows(), "topic backlog full: dropped its oldest unpublished rows (they are stored; subscribers see them by replay or query)");
        }
        self.flush_locked(&mut rings, dataset, tf, schema)
    }

    /// Publishes the topic's backlog. `Ok` when it is empty afterwards.
    pub fn flush(
        &self,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<(), ServiceError> {
        self.flush_locked(&mut self.rings(), dataset, tf, schema)
    }

    /// Topics with unpublished batches: (dataset, timeframe text).
    pub fn backlogged(&self) -> Vec<(String, String)> {
        self.rings()
            .backlog
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn flush_locked(
        &self,
        rings: &mut Rings,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<(), ServiceError> {
        let key = Self::key(dataset, tf);
        if rings.backlog.get(&key).is_none_or(VecDeque::is_empty) {
            return Ok(());
        }
        self.ensure(rings, dataset, tf, schema)?;
        let Rings { rings, backlog } = rings;
        let w = rings.get_mut(&key).expect("ensured above");
        let queue = backlog.get_mut(&key).expect("not empty");
        while let Some(batch) = queue.pop_front() {
            // The store's batches have the topic's schema (`BarStore::stored_schema`).
            let mut pending = vec![batch];
            while let Some(b) = pending.pop() {
                match w.write(&b) {
                    Ok(_) => {
                        self.metrics.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ringfeed_arrow::WriteError::BatchTooLarge { .. }) if b.num_rows() > 1 => {
                        let h = b.num_rows() / 2;
                        pending.push(b.slice(h, b.num_rows() - h));
                        pending.push(b.slice(0, h));
                    }
                    Err(e) => {
                        // Put back what was not written, in order: `b`, then
                        // the parts still pending (popped last-first).
                        pending.push(b);
                        for part in pending {
                            queue.push_front(part);
                        }
                        return Err(ServiceError::ring(e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Per-topic figures for metrics.
    pub fn stats(&self) -> Vec<TopicStat> {
        self.rings()
            .rings
            .iter()
            .map(|((d, tf), w)| {
                let readers = w.ring().readers();
                let seq = w.ring().next_seq() - 1;
                TopicStat {
                    topic: format!("{d}/{tf}"),
                    arena: w.ring().name().to_string(),
                    bytes: w.ring().bytes_published(),
                    oldest_lease_ns: readers
                        .iter()
                        .filter(|r| r.problem.is_none())
                        .filter_map(|r| r.lease_age_ns)
                        .max()
                        .unwrap_or(0),
                    write_seq: seq,
                    readers: readers.len(),
                    lag: readers.iter().map(|r| r.lag(seq)).max().unwrap_or(0),
                    leases: readers.iter().map(|r| r.leases).sum(),
                }
            })
            .collect()
    }

    /// Every topic as the operations view shows it: its readers one by one, its
    /// unpublished backlog, and whether its writer lives (the writer lock of its arena
    /// file, tested from a descriptor of its own: a ring whose writer was lost shows it).
    pub fn views(&self) -> Vec<TopicView> {
        let mut views: Vec<TopicView> = {
            let rings = self.rings();
            rings
                .rings
                .iter()
                .map(|((d, tf), w)| {
                    let seq = w.ring().next_seq() - 1;
                    let readers = w
                        .ring()
                        .readers()
                        .into_iter()
                        .map(|r| TopicReader {
                            pid: r.pid,
                            cursor: r.cursor,
                            lag: r.lag(seq),
                            leases: r.leases,
                            lease_age_ns: r.lease_age_ns,
                            missed: r.missed,
                            problem: r.problem,
                        })
                        .collect();
                    let backlog_rows = rings
                        .backlog
                        .get(&(d.clone(), tf.clone()))
                        .map_or(0, |q| q.iter().map(RecordBatch::num_rows).sum());
                    TopicView {
                        dataset: d.clone(),
                        timeframe: tf.clone(),
                        arena: w.ring().name().to_string(),
                        write_seq: seq,
                        writer_alive: true,
                        readers,
                        backlog_rows,
                    }
                })
                .collect()
        };
        // Outside the lock: each test maps the arena's header.
        for v in &mut views {
            v.writer_alive = ringfeed_shm::inspect(&v.arena).is_ok_and(|i| i.writer_alive);
        }
        views.sort_by(|a, b| (&a.dataset, &a.timeframe).cmp(&(&b.dataset, &b.timeframe)));
        views
    }

    /// Closes the topic rings of a dropped dataset and forgets them and their backlog:
    /// readers see `Closed` once drained, and a dataset created again under the name gets
    /// new rings on first use.
    pub fn close_dataset(&self, dataset: &str) {
        let mut rings = self.rings();
        let keys: Vec<Key> = rings
            .rings
            .keys()
            .filter(|(d, _)| d == dataset)
            .cloned()
            .collect();
        for k in keys {
            if let Some(w) = rings.rings.remove(&k) {
                w.close();
            }
        }
        rings.backlog.retain(|(d, _), _| d != dataset);
    }

    /// Closes every topic ring (shutdown): readers see `Closed` once drained.
    pub fn close_all(&self) {
        for (_, w) in self.rings().rings.drain() {
            w.close();
        }
    }
}
