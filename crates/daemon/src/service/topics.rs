//! Live topics: one ring per (dataset, timeframe), created once on first use
//! and written by every append and rollup update.

use super::error::ServiceError;
use crate::config::TopicConfig;
use crate::metrics::{Metrics, TopicStat};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use ringfeed_arrow::{RingOptions, Writer};
use ringfeed_store::Timeframe;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// The topic rings of one daemon.
pub struct Topics {
    /// Prefix of topic arena names.
    prefix: String,
    cfg: TopicConfig,
    rings: Mutex<HashMap<(String, String), Writer>>,
    metrics: Arc<Metrics>,
}

impl Topics {
    /// No topics yet; arenas are named `<prefix>.t.<dataset>.<timeframe>`.
    pub fn new(prefix: &str, cfg: TopicConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            prefix: prefix.to_string(),
            cfg,
            rings: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn rings(&self) -> MutexGuard<'_, HashMap<(String, String), Writer>> {
        self.rings.lock().expect("topics lock")
    }

    fn key(dataset: &str, tf: Timeframe) -> (String, String) {
        (dataset.to_string(), tf.to_string())
    }

    /// The arena name of (dataset, tf).
    pub fn name(&self, dataset: &str, tf: Timeframe) -> String {
        format!("{}.t.{dataset}.{tf}", self.prefix)
    }

    /// The topic's ring, created with `schema()` on first use. Created under
    /// the lock, so concurrent first subscribers share one ring (a second
    /// create would replace, then unlink, the first one's file).
    fn ensure<'a>(
        &'a self,
        rings: &mut MutexGuard<'a, HashMap<(String, String), Writer>>,
        dataset: &str,
        tf: Timeframe,
        schema: impl FnOnce() -> Result<SchemaRef, ServiceError>,
    ) -> Result<(), ServiceError> {
        let key = Self::key(dataset, tf);
        if rings.contains_key(&key) {
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
        rings.insert(key, w);
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
        Ok(rings[&Self::key(dataset, tf)].ring().next_seq())
    }

    /// Writes `batch` to the topic, conformed to its schema; a batch larger
    /// than a slot is split in halves until each part fits.
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
        self.ensure(&mut rings, dataset, tf, schema)?;
        let w = rings
            .get_mut(&Self::key(dataset, tf))
            .expect("ensured above");
        // The store's batches have the topic's schema (`BarStore::stored_schema`).
        let mut pending = vec![batch.clone()];
        while let Some(b) = pending.pop() {
            match w.write(&b) {
                Ok(_) => self.metrics.published.fetch_add(1, Ordering::Relaxed),
                Err(ringfeed_arrow::WriteError::BatchTooLarge { .. }) if b.num_rows() > 1 => {
                    let h = b.num_rows() / 2;
                    pending.push(b.slice(h, b.num_rows() - h));
                    pending.push(b.slice(0, h));
                    continue;
                }
                Err(e) => return Err(ServiceError::ring(e)),
            };
        }
        Ok(())
    }

    /// Per-topic figures for metrics.
    pub fn stats(&self) -> Vec<TopicStat> {
        self.rings()
            .iter()
            .map(|((d, tf), w)| {
                let readers = w.ring().readers();
                let seq = w.ring().next_seq() - 1;
                TopicStat {
                    topic: format!("{d}/{tf}"),
                    write_seq: seq,
                    readers: readers.len(),
                    lag: readers
                        .iter()
                        .map(|r| (seq + 1).saturating_sub(r.cursor))
                        .max()
                        .unwrap_or(0),
                    leases: readers.iter().map(|r| r.leases).sum(),
                }
            })
            .collect()
    }

    /// Closes every topic ring (shutdown): readers see `Closed` once drained.
    pub fn close_all(&self) {
        for (_, w) in self.rings().drain() {
            w.close();
        }
    }
}
