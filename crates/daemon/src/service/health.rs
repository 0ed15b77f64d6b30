//! Health and maintenance: whether queries and appends work right now, and
//! the periodic pass that frees what dead clients left behind.

use super::open::Service;
use ringfeed_client::protocol::{HealthCheck, HealthReport};
use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

/// How long a health check waits for each lock before it reports it stuck.
pub const HEALTH_LOCK_WAIT: Duration = Duration::from_secs(2);

/// How often the daemon should run [`Service::maintain`].
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);

/// A hook a test runs inside a replay, after the store read and before the
/// history is converted and copied into shared memory (no lock held).
pub type ReplayHook = Arc<dyn Fn() + Send + Sync>;

/// `f` until it answers `Some`, or `None` after `wait`.
fn within<T>(wait: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

impl Service {
    /// Whether queries and appends work right now: the store's lock is
    /// readable and the ingest lock free within [`HEALTH_LOCK_WAIT`] (a
    /// poisoned store is recovered first), the store is writable and so is its
    /// data directory, the result cache has room or something to evict, and
    /// every stored row has been published. `ping` only says the daemon answers.
    pub fn health(&self) -> HealthReport {
        let mut checks = Vec::new();
        let wait = HEALTH_LOCK_WAIT;
        let store = within(wait, || {
            let poisoned = match self.store.try_read() {
                Ok(g) => {
                    return Some(Ok((
                        g.catalog().datasets.len(),
                        g.read_only_reason().map(str::to_string),
                        g.corruption_count(),
                    )))
                }
                Err(TryLockError::Poisoned(p)) => {
                    drop(p); // before recovering, which takes the write lock
                    true
                }
                Err(TryLockError::WouldBlock) => false,
            };
            if poisoned {
                self.recover_store();
            }
            None
        });
        let fault = self
            .store_fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // What the store says of itself, read under the same bounded wait.
        let (read_only, damaged) = match &store {
            Some(Ok((_, r, d))) => (Some(r.clone()), Some(*d)),
            _ => (None, None),
        };
        checks.push(match (store, fault) {
            (_, Some(f)) => check("store", false, f),
            (Some(Ok::<_, ()>((n, _, _))), None) => check("store", true, format!("{n} datasets")),
            _ => check(
                "store",
                false,
                format!("the store lock was not readable within {wait:?}: a long write or a stuck request; see the daemon's log"),
            ),
        });
        let ingest = within(wait, || match self.ingest.try_lock() {
            Ok(_) => Some(()),
            Err(TryLockError::Poisoned(p)) => {
                drop(p.into_inner());
                self.ingest.clear_poison();
                Some(())
            }
            Err(TryLockError::WouldBlock) => None,
        });
        checks.push(match ingest {
            Some(()) => check("ingest", true, "appends are not blocked"),
            None => check(
                "ingest",
                false,
                format!("the ingest lock was not free within {wait:?}: appends are stalled; see the daemon's log"),
            ),
        });
        checks.push(self.data_dir_check());
        checks.push(match read_only {
            Some(Some(why)) => check(
                "writable",
                false,
                format!("the store is read-only: {why}; appends are refused until it recovers (retried every {MAINTENANCE_EVERY:?})"),
            ),
            Some(None) => check("writable", true, "appends are accepted"),
            None => check("writable", false, "unknown: the store lock was not readable"),
        });
        checks.push(match damaged {
            Some(0) => check("integrity", true, "no damaged WAL region found at open"),
            Some(n) => check(
                "integrity",
                true,
                format!("{n} damaged WAL region(s) were set aside in _quarantine at open (every valid frame kept); run `ringfeed fsck` to see them"),
            ),
            None => check("integrity", false, "unknown: the store lock was not readable"),
        });
        let (entries, bytes) = self.cache.usage();
        let limits = self.cache.limits();
        checks.push(check(
            "cache",
            true,
            format!(
                "{entries} of at most {} results, {bytes} bytes of a {}-byte budget",
                self.cache.entry_cap(),
                limits.memory_budget
            ),
        ));
        let behind = self.topics.backlogged();
        checks.push(if behind.is_empty() {
            check("topics", true, "every stored row is published")
        } else {
            check(
                "topics",
                false,
                format!("stored rows wait to be published to {behind:?}: /dev/shm may be full; they go out on the next append or maintenance pass"),
            )
        });
        // A follower whose primary is down serves what it has and retries (ok, said so);
        // one the primary refuses needs an operator (not ok).
        for (dataset, f) in self.follow_states() {
            let name = format!("follow {dataset}");
            checks.push(match (&f.refused, f.connected, &f.last_error) {
                (Some(why), _, _) => check(&name, false, why.clone()),
                (None, true, _) => check(
                    &name,
                    true,
                    format!(
                        "following {}, {:.3} s of bar time behind",
                        f.primary,
                        f.lag_seconds()
                    ),
                ),
                (None, false, e) => check(
                    &name,
                    true,
                    format!(
                        "not connected to {} ({}); serving what is stored and retrying",
                        f.primary,
                        e.as_deref().unwrap_or("starting")
                    ),
                ),
            });
        }
        HealthReport {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// The data directory accepts a new file (not full, not read-only).
    fn data_dir_check(&self) -> HealthCheck {
        let dir = &self.cfg.data_dir;
        let probe = dir.join(format!(".health-{}", std::process::id()));
        match std::fs::write(&probe, b"ok") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                check("data_dir", true, format!("{} is writable", dir.display()))
            }
            Err(e) => check(
                "data_dir",
                false,
                format!(
                    "cannot write to {}: {e}; free space or fix its permissions",
                    dir.display()
                ),
            ),
        }
    }

    /// The periodic maintenance pass; the daemon runs it every
    /// [`MAINTENANCE_EVERY`]: frees the reader rows of dead clients in result
    /// arenas (a killed reader pins nothing for long) and evicts what that
    /// made unused, publishes rows whose publication failed earlier, and
    /// retries making a read-only store (full disk) writable.
    /// Returns the dead reader rows freed.
    pub fn maintain(&self) -> u32 {
        let freed = self.cache.maintain();
        if self.store().read_only_reason().is_some() {
            let mut store = self.store_mut();
            if store.retry_writable() {
                tracing::info!("the store is writable again: appends are accepted");
            }
        }
        let behind = self.topics.backlogged();
        if !behind.is_empty() {
            let _ingest = self.ingest();
            for (dataset, tf) in behind {
                let Ok(tf) = tf.parse() else { continue };
                if let Err(e) = self
                    .topics
                    .flush(&dataset, tf, || self.topic_schema(&dataset, tf))
                {
                    self.metrics
                        .publish_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(dataset, timeframe = %tf, error = %e, "stored rows still not published; retrying at the next pass");
                }
            }
        }
        freed
    }

    /// Fault injection for tests: panics while holding the store's write
    /// lock, as a bug in a write would (the lock is left poisoned).
    #[doc(hidden)]
    pub fn panic_while_holding_the_store(&self) {
        let _store = self.store_mut();
        panic!("injected fault: a panic while the store's write lock is held");
    }

    /// Sets (or clears) the hook a replay runs between its store read and
    /// the copy of its history into shared memory. For tests.
    #[doc(hidden)]
    pub fn set_replay_hook(&self, hook: Option<ReplayHook>) {
        *self.replay_hook.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    pub(super) fn replay_hook(&self) -> Option<ReplayHook> {
        self.replay_hook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
