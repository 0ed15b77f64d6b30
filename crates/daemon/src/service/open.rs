//! The service: what it owns, and opening it over a data directory.

use super::cache::{CacheLimits, ResultCache, Session};
use super::error::{ErrorKind, ServiceError};
use super::topics::Topics;
use crate::config::Config;
use crate::metrics::Metrics;
use arrow_schema::SchemaRef;
use ringfeed_store::{BarStore, Timeframe};
use std::sync::{Arc, Mutex, RwLock};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The store could not be opened or a configured dataset created.
    #[error("cannot open the store at {path:?}: {message}")]
    Store {
        /// Data dir.
        path: std::path::PathBuf,
        /// Store error.
        message: String,
    },
}

/// The daemon's operations over one store, its result cache and its topics.
pub struct Service {
    pub(super) cfg: Config,
    /// Queries read concurrently; writes take it for writing.
    pub(super) store: RwLock<BarStore>,
    /// Held across a write (store change + every publish and invalidation) and
    /// across a replay snapshot (topic seq + store read): a snapshot sees
    /// exactly the publications before its seam.
    pub(super) ingest: Mutex<()>,
    pub(super) cache: Arc<ResultCache>,
    pub(super) topics: Topics,
    pub(super) metrics: Arc<Metrics>,
}

impl Service {
    /// Opens the store (creating configured datasets) and reclaims arenas a
    /// previous run with the same prefix left behind.
    pub fn open(cfg: Config) -> Result<Arc<Self>, OpenError> {
        let store_err = |m: String| OpenError::Store {
            path: cfg.data_dir.clone(),
            message: m,
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| store_err(e.to_string()))?;
        let mut store = BarStore::open(&cfg.data_dir).map_err(|e| store_err(e.to_string()))?;
        for line in store.recovery_notes() {
            tracing::warn!("store: {line}");
        }
        for (name, d) in &cfg.datasets {
            let spec = ringfeed_client::DatasetSpec {
                dataset: name.clone(),
                base: d.base.clone(),
                rollups: d.rollups.clone(),
                fsync: d.fsync.clone(),
            };
            let dc = super::spec::dataset_config(&spec)
                .map_err(|e| store_err(format!("datasets.{name}: {e}")))?;
            if store.dataset(name).is_none() && store.read_only_reason().is_some() {
                tracing::warn!(
                    "store: dataset {name:?} is not created while the store is read-only"
                );
            } else if store.dataset(name).is_none() {
                store
                    .create_dataset(name, dc)
                    .map_err(|e| store_err(e.to_string()))?;
            }
        }
        let prefix = format!("{}.", cfg.arena_prefix);
        for n in ringfeed_shm::list_arenas().unwrap_or_default() {
            if n.starts_with(&prefix)
                && ringfeed_shm::inspect(&n)
                    .map(|i| !i.writer_alive)
                    .unwrap_or(true)
            {
                tracing::info!(arena = %n, "removing arena left by a previous run");
                let _ = ringfeed_shm::remove(&n);
            }
        }
        let metrics = Arc::new(Metrics::default());
        let limits = CacheLimits {
            memory_budget: cfg.memory_budget,
            max_result_bytes: cfg.max_result_bytes,
            chunk_rows: cfg.chunk_rows,
            result_readers: cfg.result_readers,
            max_pending_per_client: cfg.max_pending_per_client,
        };
        Ok(Arc::new(Self {
            cache: Arc::new(ResultCache::new(&cfg.arena_prefix, limits, metrics.clone())),
            topics: Topics::new(&cfg.arena_prefix, cfg.topics.clone(), metrics.clone()),
            store: RwLock::new(store),
            ingest: Mutex::new(()),
            metrics,
            cfg,
        }))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// A new client session (what a connection holds).
    pub fn session(&self) -> Session {
        Session::new(self.cache.clone())
    }

    pub(super) fn store(&self) -> std::sync::RwLockReadGuard<'_, BarStore> {
        self.store.read().expect("store lock")
    }

    /// The schema of the live topic of (dataset, tf): the base timeframe or a rollup.
    pub(super) fn topic_schema(
        &self,
        dataset: &str,
        tf: Timeframe,
    ) -> Result<SchemaRef, ServiceError> {
        use ringfeed_store::store::StoredSchemaError as E;
        self.store().stored_schema(dataset, tf).map_err(|e| {
            let kind = match e {
                E::UnknownDataset { .. } => ErrorKind::UnknownDataset,
                _ => ErrorKind::BadTimeframe,
            };
            ServiceError::new(
                kind,
                format!("{e} (a timeframe that is not stored has no live topic: query it, resampled on read)"),
            )
        })
    }

    /// Closes every arena this daemon owns (topics and cached results).
    pub fn shutdown(&self) {
        self.topics.close_all();
        self.cache.close_all();
    }
}
