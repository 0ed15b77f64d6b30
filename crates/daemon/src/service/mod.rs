//! The service core: every operation of the daemon, once, with typed inputs,
//! outputs and errors, knowing nothing of sockets, frames or JSON. Faces
//! (the Unix socket in [`crate::transport`], later Flight and HTTP) parse
//! their input, call one method here, and encode the answer.
//!
//! State is owned by the parts it belongs to:
//! - [`cache::ResultCache`]: query results in shared memory (get-or-build,
//!   release, evict, invalidate, budget), held per client by a [`Session`];
//! - [`topics::Topics`]: the live topic rings (create once, publish, split);
//! - [`writes`]: appends, deletes and write-downs, serialised by the ingest lock.

pub mod cache;
mod error;
pub mod topics;
mod writes;

pub use cache::{ResultArena, Session};
pub use error::{ErrorKind, ServiceError};
pub use writes::{
    write_down_boundary, write_down_loop, AppendOutcome, DeleteOutcome, WriteDownOutcome,
};

use crate::config::Config;
use crate::metrics::Metrics;
use arrow_schema::SchemaRef;
use cache::{CacheLimits, ResultCache, Scope};
use ringfeed_client::protocol::{
    symbol_list, DatasetReady, QuerySpec, ReadyReport, ReplaySpec, TimeframeReady,
};
use ringfeed_store::{BarStore, DatasetConfig, Query, Symbols, Timeframe};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use topics::Topics;

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

/// A replay's history and its seam.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayAnswer {
    /// The history, as a result arena.
    pub history: ResultArena,
    /// The first live topic seq the history does not contain.
    pub seam: u64,
}

/// The daemon's operations over one store, its result cache and its topics.
pub struct Service {
    cfg: Config,
    /// Queries read concurrently; writes take it for writing.
    store: RwLock<BarStore>,
    /// Held across a write (store change + every publish and invalidation) and
    /// across a replay snapshot (topic seq + store read): a snapshot sees
    /// exactly the publications before its seam.
    ingest: Mutex<()>,
    cache: Arc<ResultCache>,
    topics: Topics,
    metrics: Arc<Metrics>,
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
            let base: Timeframe = d
                .base
                .parse()
                .map_err(|e: ringfeed_store::timeframe::TimeframeError| store_err(e.to_string()))?;
            let mut dc = DatasetConfig::new(base);
            if let Some(r) = &d.rollups {
                dc.rollups = r
                    .iter()
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e: ringfeed_store::timeframe::TimeframeError| {
                        store_err(e.to_string())
                    })?;
            }
            if let Some(f) = &d.fsync {
                dc.fsync = f
                    .parse()
                    .map_err(|e| store_err(format!("datasets.{name}.fsync: {e}")))?;
            }
            if store.dataset(name).is_none() {
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

    fn store(&self) -> std::sync::RwLockReadGuard<'_, BarStore> {
        self.store.read().expect("store lock")
    }

    /// The metrics as Prometheus text (what `ringfeed stat` prints).
    /// `connections`: open client connections, counted by the faces.
    pub fn stat(&self, connections: u32) -> String {
        self.metrics.render(&self.topics.stats(), connections)
    }

    /// Datasets, their base and stored timeframes, and symbols.
    pub fn datasets(&self) -> serde_json::Value {
        let store = self.store();
        let mut out = serde_json::Map::new();
        for (name, e) in &store.catalog().datasets {
            let tfs: Vec<String> = store
                .stored_timeframes(name)
                .iter()
                .map(|t| t.to_string())
                .collect();
            out.insert(
                name.clone(),
                serde_json::json!({"base": e.config.base.to_string(), "timeframes": tfs, "symbols": e.symbols}),
            );
        }
        serde_json::Value::Object(out)
    }

    /// Whether queries and appends work, and how far each dataset goes.
    pub fn ready(&self, dataset: Option<&str>) -> Result<ReadyReport, ServiceError> {
        let store = self.store();
        let names: Vec<String> = match dataset {
            Some(d) if store.dataset(d).is_none() => {
                return Err(ServiceError::unknown_dataset(
                    d,
                    store.catalog().datasets.keys(),
                ))
            }
            Some(d) => vec![d.to_string()],
            None => store.catalog().datasets.keys().cloned().collect(),
        };
        let mut datasets = Vec::new();
        for name in names {
            let entry = store.dataset(&name).expect("listed above");
            let extent = store
                .extent(&name)
                .map_err(ServiceError::store)?
                .unwrap_or_default();
            datasets.push(DatasetReady {
                dataset: name.clone(),
                base: entry.config.base.to_string(),
                symbols: entry.symbols.iter().cloned().collect(),
                timeframes: extent
                    .into_iter()
                    .map(|e| TimeframeReady {
                        timeframe: e.timeframe,
                        first_ts: e.first_ts,
                        last_ts: e.last_ts,
                        hot_days: e.hot_days,
                        cold_days: e.cold_days,
                    })
                    .collect(),
            });
        }
        Ok(ReadyReport {
            ready: true,
            reason: None,
            datasets,
        })
    }

    /// A protocol query as a store query; every argument checked.
    fn store_query(&self, q: &QuerySpec) -> Result<Query, ServiceError> {
        let tf: Timeframe = q.timeframe.parse().map_err(|e| {
            ServiceError::new(
                ErrorKind::BadTimeframe,
                format!("timeframe {:?}: {e}", q.timeframe),
            )
        })?;
        let mut sq = Query::new(&q.dataset, tf);
        let symbols = symbol_list(&q.symbols);
        if !symbols.is_empty() {
            sq.symbols = Symbols::List(symbols);
        }
        if let Some(o) = &q.offset {
            sq.offset = Some(
                ringfeed_store::timeframe::parse_duration(o)
                    .map_err(|e| ServiceError::bad_request(format!("offset {o:?}: {e}")))?,
            );
        }
        (sq.start, sq.end) = ringfeed_client::time::range(q.start.as_ref(), q.end.as_ref())?;
        sq.fields = q.fields.clone();
        sq.limit = q.limit;
        sq.from_end = q.from_end;
        Ok(sq)
    }

    /// Bars into a shared result arena (from the cache when an identical query
    /// was answered before and nothing it depends on changed since).
    pub fn query(&self, q: &QuerySpec, session: &mut Session) -> Result<ResultArena, ServiceError> {
        let t = Instant::now();
        let r = (|| {
            let sq = self.store_query(q)?;
            let key = serde_json::to_string(&sq_key(q)).expect("serialisable");
            self.cache.get_or_build(key, Scope::of(&sq), session, || {
                self.store().query(&sq).map_err(ServiceError::from)
            })
        })();
        self.metrics
            .observe_query(t.elapsed(), r.is_ok(), r.as_ref().is_ok_and(|a| a.cached));
        r
    }

    /// The schema of the live topic of (dataset, tf): the base timeframe or a rollup.
    fn topic_schema(&self, dataset: &str, tf: Timeframe) -> Result<SchemaRef, ServiceError> {
        let store = self.store();
        let e = store.dataset(dataset).ok_or_else(|| {
            ServiceError::unknown_dataset(dataset, store.catalog().datasets.keys())
        })?;
        let cfg = &e.config;
        if tf == cfg.base {
            Ok(if tf.is_tick() {
                ringfeed_store::schema::tick_schema()
            } else {
                ringfeed_store::schema::bar_schema()
            })
        } else if cfg.rollups.contains(&tf) {
            Ok(ringfeed_store::schema::rollup_schema())
        } else {
            let stored: Vec<String> = store
                .stored_timeframes(dataset)
                .iter()
                .map(|t| t.to_string())
                .collect();
            Err(ServiceError::new(
                ErrorKind::BadTimeframe,
                format!("dataset {dataset:?} has no live topic for {tf}; topics: {stored:?} (other timeframes: query with resampling)"),
            ))
        }
    }

    fn parse_timeframe(timeframe: &str) -> Result<Timeframe, ServiceError> {
        timeframe.parse().map_err(|e| {
            ServiceError::new(
                ErrorKind::BadTimeframe,
                format!("timeframe {timeframe:?}: {e}"),
            )
        })
    }

    /// The arena name of the live topic of (dataset, timeframe).
    pub fn subscribe(&self, dataset: &str, timeframe: &str) -> Result<String, ServiceError> {
        let tf = Self::parse_timeframe(timeframe)?;
        self.topics
            .subscribe(dataset, tf, || self.topic_schema(dataset, tf))
    }

    /// History for a replaying subscriber: the bars of (dataset, timeframe)
    /// from `start`, as a result arena, and the seam: the first topic seq the
    /// snapshot does not contain. The client opened its topic reader before
    /// asking, so it holds every publication from the seam on: no gap, no
    /// duplicate.
    pub fn replay(
        &self,
        r: &ReplaySpec,
        session: &mut Session,
    ) -> Result<ReplayAnswer, ServiceError> {
        let t = Instant::now();
        let result = (|| {
            let q = QuerySpec {
                dataset: r.dataset.clone(),
                symbols: r.symbols.clone(),
                timeframe: r.timeframe.clone(),
                start: Some(r.start.clone()),
                ..Default::default()
            };
            let sq = self.store_query(&q)?;
            let tf = sq.timeframe;
            let schema = self.topic_schema(&r.dataset, tf)?;
            // No write runs between reading the seam and reading the store.
            let _ingest = self.ingest.lock().expect("ingest lock");
            let seam = self
                .topics
                .next_seq(&r.dataset, tf, || Ok(schema.clone()))?;
            let key = format!(
                "{}@{}#{seam}",
                serde_json::to_string(&sq_key(&q)).expect("serialisable"),
                self.topics.name(&r.dataset, tf)
            );
            let history = self.cache.get_or_build(key, Scope::of(&sq), session, || {
                let b = self.store().query(&sq)?;
                // The topic's columns, so history and live batches concatenate.
                ringfeed_store::schema::conform(&b, &schema)
                    .map_err(|e| ServiceError::internal(e.to_string()))
            })?;
            Ok(ReplayAnswer { history, seam })
        })();
        self.metrics.observe_query(
            t.elapsed(),
            result.is_ok(),
            result.as_ref().is_ok_and(|a| a.history.cached),
        );
        result
    }

    /// Closes every arena this daemon owns (topics and cached results).
    pub fn shutdown(&self) {
        self.topics.close_all();
        self.cache.close_all();
    }
}

/// A query's cache key: the spec with its symbol list normalised, so that
/// `"A,B"` and `["A", "B"]` share one result.
fn sq_key(q: &QuerySpec) -> QuerySpec {
    QuerySpec {
        symbols: symbol_list(&q.symbols),
        ..q.clone()
    }
}
