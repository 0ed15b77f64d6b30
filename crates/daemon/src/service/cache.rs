//! The shared result cache: query results materialised into shared-memory
//! arenas, shared by identical queries, refcounted per client session, and
//! evicted LRU under a memory budget and an entry cap that never evict memory
//! a reader still maps.
//!
//! Every cached result is an arena file in /dev/shm and an open descriptor
//! (its writer keeps the file for the readers' liveness locks). So the cache
//! bounds both: the budget counts each arena's real file length (header,
//! reader table, metadata and pool, from `fstat`), and at most
//! [`CacheLimits::max_entries`] results exist at once. When the cap is reached
//! and every result is in use, a new query is refused with `busy` (it says
//! what to release) instead of running the daemon out of descriptors; the
//! cache recovers by itself as clients release results, end their sessions,
//! or die (their reader rows are swept by [`ResultCache::maintain`] and
//! before each eviction).

use super::error::{ErrorKind, ServiceError};
use crate::metrics::Metrics;
use arrow_array::RecordBatch;
use ringfeed_arrow::{EncodedBatches, RingOptions, StringLayout, Writer};
use ringfeed_store::{Query, Symbols};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Sizing and limits of the cache (from the daemon's config).
#[derive(Clone, Debug)]
pub struct CacheLimits {
    /// Bytes of results kept before LRU eviction.
    pub memory_budget: u64,
    /// Largest result one request may materialise.
    pub max_result_bytes: u64,
    /// Rows per batch of a result.
    pub chunk_rows: usize,
    /// Readers that may attach to one result at once.
    pub result_readers: u32,
    /// Results one session may hold unreleased.
    pub max_pending_per_client: u32,
    /// Results (arena files and descriptors) kept at once, held or not.
    pub max_entries: usize,
}

/// Descriptors one cached result keeps open: its arena and its reader
/// table (the writer holds both for the readers' liveness locks).
pub const FDS_PER_RESULT: u64 = 2;

impl Default for CacheLimits {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default())
    }
}

impl CacheLimits {
    /// The limits of a daemon's config.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            memory_budget: cfg.memory_budget,
            max_result_bytes: cfg.max_result_bytes,
            chunk_rows: cfg.chunk_rows,
            result_readers: cfg.result_readers,
            max_pending_per_client: cfg.max_pending_per_client,
            max_entries: cfg.max_cached_results,
        }
    }
}

/// What a query (or replay history) answer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultArena {
    /// Arena to map.
    pub arena: String,
    /// Batches in it.
    pub batches: u64,
    /// Rows in it.
    pub rows: u64,
    /// Encoded bytes of the result.
    pub bytes: u64,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// The part of a dataset a cached result depends on.
#[derive(Clone, Debug)]
pub struct Scope {
    dataset: String,
    /// Empty: every symbol.
    symbols: Vec<String>,
    /// End of the range asked (exclusive), if any.
    end: Option<i64>,
}

/// Resampled buckets reach at most this far before a row that changes them.
const STALE_MARGIN_NS: i64 = 32 * 86_400_000_000_000;

impl Scope {
    /// What a store query depends on.
    pub fn of(q: &Query) -> Self {
        Scope {
            dataset: q.dataset.clone(),
            symbols: match &q.symbols {
                Symbols::List(v) => v.clone(),
                _ => vec![],
            },
            end: q.end,
        }
    }

    /// Whether rows of `symbols` at or after `from` can change this result.
    fn touched_by(&self, dataset: &str, symbols: &BTreeSet<String>, from: i64) -> bool {
        self.dataset == dataset
            && (self.symbols.is_empty() || self.symbols.iter().any(|s| symbols.contains(s)))
            && self
                .end
                .is_none_or(|e| e > from.saturating_sub(STALE_MARGIN_NS))
    }
}

/// A materialised result.
struct Entry {
    writer: Writer,
    batches: u64,
    rows: u64,
    /// Encoded bytes of the result (what the answer reports).
    bytes: u64,
    /// Length of its arena file in /dev/shm (what the budget counts).
    arena_bytes: u64,
    last_used: Instant,
    /// Answers handed out and not yet released (or whose session is still open).
    pending: u32,
    scope: Scope,
    /// An append changed its data: no new answers; closed once unused.
    stale: bool,
}

#[derive(Default)]
struct State {
    by_key: HashMap<String, String>,
    entries: HashMap<String, Entry>,
    /// Shared-memory bytes of every entry.
    bytes: u64,
    /// Per dataset, bumped by every write: a build that saw an older one may
    /// hold stale data and is not cached.
    generation: HashMap<String, u64>,
}

/// The result cache. Shared by every session.
pub struct ResultCache {
    limits: CacheLimits,
    /// Prefix of result arena names.
    prefix: String,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// One lock per result being built, so identical queries wait for the first
    /// build while different queries build in parallel (without the state lock).
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    metrics: Arc<Metrics>,
}

/// One client's hold on results: every result answered to it stays pending
/// (never evicted) until released or until the session ends, whichever comes
/// first; dropping the session releases all, however the client left.
pub struct Session {
    held: Vec<String>,
    cache: Arc<ResultCache>,
}

impl Session {
    /// A session with nothing held.
    pub fn new(cache: Arc<ResultCache>) -> Self {
        Self {
            held: Vec::new(),
            cache,
        }
    }

    /// The client mapped `arena` and is done with the answer.
    pub fn release(&mut self, arena: &str) -> Result<(), ServiceError> {
        let i = self.held.iter().position(|a| a == arena).ok_or_else(|| {
            ServiceError::bad_request(format!("this connection holds no query arena {arena:?}"))
        })?;
        self.held.swap_remove(i);
        self.cache.release(arena);
        Ok(())
    }

    /// Results held and not yet released.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for a in std::mem::take(&mut self.held) {
            self.cache.release(&a);
        }
    }
}

impl ResultCache {
    /// An empty cache whose arenas are named `<prefix>.q.<pid>-<n>`.
    pub fn new(prefix: &str, limits: CacheLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            limits,
            prefix: prefix.to_string(),
            next_id: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            building: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The cache state. Its updates are each complete before anything can
    /// panic (map inserts and removes, counters), so a poisoned lock holds a
    /// consistent state: the poison is cleared.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| {
            self.state.clear_poison();
            p.into_inner()
        })
    }

    fn building(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<()>>>> {
        self.building.lock().unwrap_or_else(|p| {
            self.building.clear_poison();
            p.into_inner()
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// Results cached now, and the bytes of their arena files.
    pub fn usage(&self) -> (usize, u64) {
        let st = self.state();
        (st.entries.len(), st.bytes)
    }

    /// The most results kept at once: [`CacheLimits::max_entries`], and no
    /// more than a quarter of the process's descriptor limit
    /// (`RLIMIT_NOFILE`, read each time, so a limit lowered while the daemon
    /// runs is honoured) at [`FDS_PER_RESULT`] each: the rest stay free for
    /// connections, topics and the store's files.
    pub fn entry_cap(&self) -> usize {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let by_fds = usize::try_from(nofile / 4 / FDS_PER_RESULT).unwrap_or(usize::MAX);
        self.limits.max_entries.min(by_fds).max(1)
    }

    /// Evicts until one more result fits the entry cap; `busy` if every
    /// result is in use.
    fn make_room(&self, st: &mut State) -> Result<(), ServiceError> {
        self.evict(st, 1);
        if st.entries.len() < self.entry_cap() {
            return Ok(());
        }
        self.metrics.cache_refusals.fetch_add(1, Ordering::Relaxed);
        Err(ServiceError::new(
            ErrorKind::Busy,
            format!(
                "the daemon holds {} query results, its limit, and clients still use every one: release results you have read (Client::release, or close idle connections) and retry",
                st.entries.len()
            ),
        ))
    }

    /// Periodic maintenance (the daemon calls it every few seconds through
    /// `Service::maintain`): frees the reader rows of dead processes in
    /// every result arena, then evicts what that made unused. Returns the
    /// reader rows freed.
    pub fn maintain(&self) -> u32 {
        let mut st = self.state();
        let freed = st
            .entries
            .values_mut()
            .map(|e| e.writer.ring_mut().sweep_dead_readers(true))
            .sum();
        self.metrics
            .dead_readers_swept
            .fetch_add(u64::from(freed), Ordering::Relaxed);
        self.evict(&mut st, 0);
        self.metrics.set_cache(st.entries.len() as u64, st.bytes);
        freed
    }

    /// Answers `key` from the cache, or builds it with `build`, materialises
    /// it and caches it. Identical keys built concurrently wait for the first
    /// build; different keys build in parallel, outside the cache lock.
    pub fn get_or_build(
        &self,
        key: String,
        scope: Scope,
        session: &mut Session,
        build: impl FnOnce() -> Result<Vec<RecordBatch>, ServiceError>,
    ) -> Result<ResultArena, ServiceError> {
        if session.held.len() as u32 >= self.limits.max_pending_per_client {
            return Err(ServiceError::new(
                ErrorKind::TooManyPending,
                format!(
                    "this client holds {} unreleased query results (limit {}): release some first",
                    session.held.len(),
                    self.limits.max_pending_per_client
                ),
            ));
        }
        if let Some(r) = self.hit(&key, session) {
            return Ok(r);
        }
        self.make_room(&mut self.state())?;
        let gate = self.building().entry(key.clone()).or_default().clone();
        let result = {
            let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
            // A build of the same key may have finished while this one waited.
            match self.hit(&key, session) {
                Some(r) => Ok(r),
                None => self.build(&key, scope, session, build),
            }
        };
        let mut b = self.building();
        if b.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            b.remove(&key);
        }
        result
    }

    /// The cached arena for `key`, counted as pending for this session.
    fn hit(&self, key: &str, session: &mut Session) -> Option<ResultArena> {
        let mut st = self.state();
        let name = st.by_key.get(key)?.clone();
        let e = st.entries.get_mut(&name)?;
        e.pending += 1;
        e.last_used = Instant::now();
        session.held.push(name.clone());
        Some(ResultArena {
            arena: name,
            batches: e.batches,
            rows: e.rows,
            bytes: e.bytes,
            cached: true,
        })
    }

    fn build(
        &self,
        key: &str,
        scope: Scope,
        session: &mut Session,
        build: impl FnOnce() -> Result<Vec<RecordBatch>, ServiceError>,
    ) -> Result<ResultArena, ServiceError> {
        let generation = self
            .state()
            .generation
            .get(&scope.dataset)
            .copied()
            .unwrap_or(0);
        let t = Instant::now();
        let pieces = build()?;
        let read = t.elapsed();
        let rows = pieces.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.q.{}-{id}", self.prefix, std::process::id());
        let (writer, batches, bytes) = self.materialise(&name, &pieces)?;
        tracing::debug!(
            arena = %name,
            rows,
            bytes,
            store_ms = read.as_secs_f64() * 1e3,
            materialise_ms = (t.elapsed() - read).as_secs_f64() * 1e3,
            "query built"
        );
        // What the arena really occupies in /dev/shm: its file's length and
        // its reader table's.
        let file_len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let arena_bytes = file_len(writer.ring().path()).unwrap_or_else(|| {
            let geo = writer.ring().geometry();
            geo.buffer_bytes * u64::from(geo.buffers)
        }) + file_len(&ringfeed_shm::table_path(&name)).unwrap_or(0);
        let mut st = self.state();
        // Other builds may have filled the cache meanwhile.
        if let Err(e) = self.make_room(&mut st) {
            drop(st);
            writer.close();
            return Err(e);
        }
        // A write landed while this was built: answer with it, but do not cache it.
        let stale = st.generation.get(&scope.dataset).copied().unwrap_or(0) != generation;
        st.bytes += arena_bytes;
        if !stale {
            st.by_key.insert(key.to_string(), name.clone());
        }
        st.entries.insert(
            name.clone(),
            Entry {
                writer,
                batches,
                rows,
                bytes,
                arena_bytes,
                last_used: Instant::now(),
                pending: 1,
                scope,
                stale,
            },
        );
        session.held.push(name.clone());
        self.evict(&mut st, 0);
        self.metrics.set_cache(st.entries.len() as u64, st.bytes);
        Ok(ResultArena {
            arena: name,
            batches,
            rows,
            bytes,
            cached: false,
        })
    }

    /// Writes `pieces` (the store's answer: batches whose rows, in order, are the
    /// result; at least one) as chunks into a new arena sized exactly for them, each
    /// chunk encoded once (measured against the limit, then copied in).
    fn materialise(
        &self,
        name: &str,
        pieces: &[RecordBatch],
    ) -> Result<(Writer, u64, u64), ServiceError> {
        let schema = pieces
            .first()
            .ok_or_else(|| ServiceError::internal("a query answered with no batch"))?
            .schema();
        // Each piece in equal chunks of at most `chunk_rows` (every buffer is sized for
        // the largest chunk); runs of small pieces (hot days) joined first, so a reader
        // gets chunks near `chunk_rows`, not one per day; an empty answer is one empty
        // chunk.
        let mut chunks: Vec<RecordBatch> = Vec::new();
        for batch in coalesce(pieces, self.limits.chunk_rows)? {
            let n = batch.num_rows().div_ceil(self.limits.chunk_rows).max(1);
            let chunk = batch.num_rows().div_ceil(n).max(1);
            chunks.extend((0..n).map(|i| {
                let off = i * chunk;
                batch.slice(off, chunk.min(batch.num_rows().saturating_sub(off)))
            }));
        }
        if chunks.is_empty() {
            chunks.push(RecordBatch::new_empty(schema.clone()));
        }
        let enc = EncodedBatches::new(&schema, &chunks, StringLayout::View)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        let total = enc.bytes();
        if total > self.limits.max_result_bytes {
            return Err(ServiceError::new(
                ErrorKind::TooLarge,
                format!(
                    "result is {total} bytes, over this daemon's max_result_bytes ({}): narrow the time range, symbols or fields, or use limit",
                    self.limits.max_result_bytes
                ),
            ));
        }
        let opts = RingOptions {
            max_readers: self.limits.result_readers,
            force: true,
            ..Default::default()
        };
        let (w, written) = enc.write(name, &opts).map_err(ServiceError::ring)?;
        Ok((w, written.batches, written.bytes))
    }

    fn release(&self, arena: &str) {
        let mut st = self.state();
        if let Some(e) = st.entries.get_mut(arena) {
            e.pending = e.pending.saturating_sub(1);
        }
        self.evict(&mut st, 0);
    }

    /// The current write generation of `dataset` (bumped by [`Self::invalidate`]).
    pub fn generation(&self, dataset: &str) -> u64 {
        self.state().generation.get(dataset).copied().unwrap_or(0)
    }

    /// After a write: cached results that may include changed rows get no new
    /// answers, and are closed as soon as no client uses them.
    pub fn invalidate(&self, dataset: &str, symbols: &BTreeSet<String>, from: i64) {
        let mut st = self.state();
        *st.generation.entry(dataset.to_string()).or_default() += 1;
        let stale: Vec<String> = st
            .entries
            .iter_mut()
            .filter(|(_, e)| !e.stale && e.scope.touched_by(dataset, symbols, from))
            .map(|(name, e)| {
                e.stale = true;
                name.clone()
            })
            .collect();
        if !stale.is_empty() {
            st.by_key.retain(|_, v| !stale.contains(v));
            self.evict(&mut st, 0);
            self.metrics.set_cache(st.entries.len() as u64, st.bytes);
        }
    }

    /// LRU eviction under the memory budget and the entry cap, leaving
    /// room for `room` more entries. Never evicts a result that is pending or
    /// still mapped by a live reader (its leases are live memory); the rows
    /// of dead readers are swept first, so a killed client pins nothing.
    fn evict(&self, st: &mut State, room: usize) {
        let cap = self.entry_cap();
        let over =
            |st: &State| st.bytes > self.limits.memory_budget || st.entries.len() + room > cap;
        if over(st) || st.entries.values().any(|e| e.stale) {
            let mut freed = 0;
            for e in st.entries.values_mut() {
                if e.pending == 0 && !e.writer.ring().readers().is_empty() {
                    freed += e.writer.ring_mut().sweep_dead_readers(true);
                }
            }
            self.metrics
                .dead_readers_swept
                .fetch_add(u64::from(freed), Ordering::Relaxed);
        }
        let unused = |e: &Entry| e.pending == 0 && e.writer.ring().readers().is_empty();
        let dead: Vec<String> = st
            .entries
            .iter()
            .filter(|(_, e)| e.stale && unused(e))
            .map(|(k, _)| k.clone())
            .collect();
        for name in dead {
            let e = st.entries.remove(&name).expect("present");
            st.bytes -= e.arena_bytes;
            e.writer.close();
            tracing::debug!(arena = %name, "closed a stale query result");
        }
        while over(st) {
            let victim = st
                .entries
                .iter()
                .filter(|(_, e)| unused(e))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(name) = victim else { break };
            let e = st.entries.remove(&name).expect("present");
            st.bytes -= e.arena_bytes;
            st.by_key.retain(|_, v| *v != name);
            e.writer.close();
            self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(arena = %name, "evicted query result");
        }
    }

    /// Closes every result arena (shutdown).
    pub fn close_all(&self) {
        let mut st = self.state();
        for (_, e) in st.entries.drain() {
            e.writer.close();
        }
        st.by_key.clear();
        st.bytes = 0;
    }
}

/// `pieces` with each run of consecutive pieces smaller than `chunk_rows / 8` joined into
/// batches of up to `chunk_rows` rows (a copy of small pieces only); larger pieces as they
/// are; empty pieces dropped.
fn coalesce(pieces: &[RecordBatch], chunk_rows: usize) -> Result<Vec<RecordBatch>, ServiceError> {
    let small = (chunk_rows / 8).max(1);
    let mut out = Vec::new();
    let mut run: Vec<RecordBatch> = Vec::new();
    let mut run_rows = 0;
    let flush =
        |run: &mut Vec<RecordBatch>, out: &mut Vec<RecordBatch>| -> Result<(), ServiceError> {
            match run.len() {
                0 => Ok(()),
                1 => {
                    out.append(run);
                    Ok(())
                }
                _ => {
                    let b = arrow_select::concat::concat_batches(&run[0].schema(), run.iter())
                        .map_err(|e| ServiceError::internal(e.to_string()))?;
                    run.clear();
                    out.push(b);
                    Ok(())
                }
            }
        };
    for p in pieces.iter().filter(|b| b.num_rows() > 0) {
        if p.num_rows() >= small || run_rows + p.num_rows() > chunk_rows {
            flush(&mut run, &mut out)?;
            run_rows = 0;
        }
        if p.num_rows() >= small {
            out.push(p.clone());
        } else {
            run_rows += p.num_rows();
            run.push(p.clone());
        }
    }
    flush(&mut run, &mut out)?;
    Ok(out)
}
