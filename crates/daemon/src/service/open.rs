//! The service: what it owns, and opening it over a data directory.

use super::cache::{CacheLimits, ResultCache, Session};
use super::error::{ErrorKind, ServiceError};
use super::topics::Topics;
use crate::config::Config;
use crate::metrics::Metrics;
use arrow_schema::SchemaRef;
use ringfeed_store::{BarStore, Timeframe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Another live process writes arenas under this daemon's prefix.
    #[error("arena prefix {prefix:?} is in use by the live process {pid} ({arena}): another ringfeedd runs with the same arena_prefix. Stop it, or give this daemon another arena_prefix (--arena-prefix)")]
    PrefixInUse {
        /// The prefix.
        prefix: String,
        /// One of its arenas with a live writer.
        arena: String,
        /// That writer's pid.
        pid: u32,
    },
}

/// The daemon's operations over one store, its result cache and its topics.
///
/// **Locks and panics.** The store and ingest locks are `std` locks, taken
/// only through [`Service::store`], [`Service::store_mut`] and
/// [`Service::ingest`]. Payloads are bounded and checked before either lock
/// is taken, so no known input panics under them; if a panic still happens
/// under the store's write lock, the store may be half-updated in memory, so
/// the next caller does not use it: it reopens the store from disk (the same
/// crash recovery as after a kill: the WAL holds every acknowledged row) and
/// clears the poison ([`Service::recover_store`]). The ingest lock guards no
/// data (`()`): its poison is cleared. `parking_lot` locks (no poisoning)
/// would hide exactly the case that needs the reopen.
pub struct Service {
    pub(super) cfg: Config,
    /// Queries read concurrently; writes take it for writing.
    pub(super) store: RwLock<BarStore>,
    /// Held across a write (store change + every publish and invalidation) and
    /// while a replay reads its seam: a snapshot sees exactly the
    /// publications before its seam.
    pub(super) ingest: Mutex<()>,
    pub(super) cache: Arc<ResultCache>,
    pub(super) topics: Topics,
    pub(super) metrics: Arc<Metrics>,
    /// Why the last reopen of the store after a panic failed (health reports it).
    pub(super) store_fault: Mutex<Option<String>>,
    pub(super) replay_hook: Mutex<Option<super::health::ReplayHook>>,
    /// Datasets followed from a primary, and their followers' state.
    pub(super) followed: super::followed::Followed,
    /// `<shm dir>/ringfeed.<prefix>@daemon`, flock'ed for the daemon's life:
    /// a second daemon with the same arena prefix is refused at start.
    prefix_lock: (std::fs::File, std::path::PathBuf),
}

/// Takes the arena prefix's lock file, or says who holds it.
fn lock_prefix(prefix: &str) -> Result<(std::fs::File, std::path::PathBuf), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = ringfeed_shm::shm_dir().join(format!("ringfeed.{prefix}@daemon"));
    let io_err = |e: std::io::Error| OpenError::Store {
        path: path.clone(),
        message: format!("cannot take the arena prefix's lock file: {e}"),
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            // Who holds it, for the next daemon's message.
            let _ = f.set_len(0);
            let _ = std::io::Write::write_all(&mut &f, std::process::id().to_string().as_bytes());
            Ok((f, path))
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Err(OpenError::PrefixInUse {
            prefix: prefix.to_string(),
            arena: path.display().to_string(),
            pid: std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
        }),
        Err(e) => Err(io_err(e.into())),
    }
}

impl Service {
    /// Opens the store (creating configured datasets) and reclaims arenas a
    /// previous run with the same prefix left behind.
    pub fn open(cfg: Config) -> Result<Arc<Self>, OpenError> {
        let limits = CacheLimits::from_config(&cfg);
        Self::open_with(cfg, limits)
    }

    /// [`Service::open`] with these cache limits instead of the config's
    /// (tests lower them).
    pub fn open_with(cfg: Config, limits: CacheLimits) -> Result<Arc<Self>, OpenError> {
        let store_err = |m: String| OpenError::Store {
            path: cfg.data_dir.clone(),
            message: m,
        };
        // Two daemons with one prefix would replace each other's topics:
        // refuse before touching anything (a dead writer's arenas are
        // leftovers, removed below). The lock file says so for daemons of this
        // version; a live writer of one of the prefix's arenas for any other.
        let prefix_lock = lock_prefix(&cfg.arena_prefix)?;
        let prefix = format!("{}.", cfg.arena_prefix);
        for n in ringfeed_shm::list_arenas().unwrap_or_default() {
            if !n.starts_with(&prefix) {
                continue;
            }
            if let Ok(i) = ringfeed_shm::inspect(&n) {
                if i.writer_alive {
                    return Err(OpenError::PrefixInUse {
                        prefix: cfg.arena_prefix.clone(),
                        arena: n,
                        pid: i.writer_pid,
                    });
                }
            }
        }
        let opts = if cfg.data_group_readable {
            ringfeed_store::StoreOptions::default().group_readable()
        } else {
            ringfeed_store::StoreOptions::default()
        };
        let mut store =
            BarStore::open_with(&cfg.data_dir, opts).map_err(|e| store_err(e.to_string()))?;
        for line in store.recovery_notes() {
            tracing::warn!("store: {line}");
        }
        for (name, d) in &cfg.datasets {
            let spec = ringfeed_client::DatasetSpec {
                dataset: name.clone(),
                base: d.base.clone(),
                rollups: d.rollups.clone(),
                fsync: d.fsync.clone(),
                week_start: d.week_start.clone(),
                retention: d.retention.clone(),
                rollup_retention: d.rollup_retention.clone(),
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
            } else if store.read_only_reason().is_none()
                && (d.retention.is_some() || d.rollup_retention.is_some())
                && store.dataset(name).is_some_and(|e| {
                    (e.config.retention, e.config.rollup_retention)
                        != (dc.retention, dc.rollup_retention)
                })
            {
                // The config's retention wins over the stored one (a config edit applies).
                store
                    .set_retention(name, dc.retention, dc.rollup_retention)
                    .map_err(|e| store_err(format!("datasets.{name}: {e}")))?;
            }
        }
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
        Ok(Arc::new(Self {
            cache: Arc::new(ResultCache::new(&cfg.arena_prefix, limits, metrics.clone())),
            topics: Topics::new(&cfg.arena_prefix, cfg.topics.clone(), metrics.clone()),
            store: RwLock::new(store),
            ingest: Mutex::new(()),
            metrics,
            store_fault: Mutex::new(None),
            replay_hook: Mutex::new(None),
            followed: Default::default(),
            prefix_lock,
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

    /// The store, for reading. Recovers it first if a panic left it poisoned.
    pub(super) fn store(&self) -> RwLockReadGuard<'_, BarStore> {
        loop {
            match self.store.read() {
                Ok(g) => return g,
                // The poisoned guard is dropped before recovering (which
                // takes the write lock).
                Err(p) => drop(p),
            }
            self.recover_store();
        }
    }

    /// The store, for writing. Recovers it first if a panic left it poisoned.
    pub(super) fn store_mut(&self) -> RwLockWriteGuard<'_, BarStore> {
        loop {
            match self.store.write() {
                Ok(g) => return g,
                Err(p) => drop(p),
            }
            self.recover_store();
        }
    }

    /// The ingest lock. It guards no data, so a panic that poisoned it left
    /// nothing half-done behind it: the poison is cleared.
    pub(super) fn ingest(&self) -> MutexGuard<'_, ()> {
        self.ingest.lock().unwrap_or_else(|p| {
            self.ingest.clear_poison();
            p.into_inner()
        })
    }

    /// A panic under the store's write lock may have left the store
    /// half-updated in memory: drop it and reopen it from disk (WAL replay,
    /// as after a crash), then clear the poison. If the reopen fails, the
    /// store is served read-only from disk and health says why.
    pub(super) fn recover_store(&self) {
        let mut g = match self.store.write() {
            Ok(_) => return, // another thread recovered it
            Err(p) => p.into_inner(),
        };
        self.metrics
            .store_recoveries
            .fetch_add(1, Ordering::Relaxed);
        let dir = &self.cfg.data_dir;
        tracing::error!(data_dir = %dir.display(), "a request panicked while it held the store; reopening the store from disk");
        // The writer's flock is released only when the old store is dropped,
        // so a read-only store (no lock) stands in while the new one opens.
        let fault = match BarStore::open_read_only(dir)
            .map(ringfeed_store::store::ReadOnlyStore::into_inner)
        {
            Ok(ro) => {
                drop(std::mem::replace(&mut *g, ro));
                match BarStore::open(dir) {
                    Ok(s) => {
                        *g = s;
                        None
                    }
                    Err(e) => Some(format!("the store was reopened read-only after a failed request; reopening it for writes failed: {e}; restart the daemon")),
                }
            }
            Err(e) => Some(format!(
                "the store could not be reopened after a failed request: {e}; restart the daemon"
            )),
        };
        if let Some(f) = &fault {
            tracing::error!("{f}");
        }
        *self.store_fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
        self.store.clear_poison();
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
        // Last: the prefix is free once its arenas are gone. (A crash leaves
        // the file; the next daemon takes its lock, as the flock died with us.)
        let _ = std::fs::remove_file(&self.prefix_lock.1);
    }
}
