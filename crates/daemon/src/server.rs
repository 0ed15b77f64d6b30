//! The daemon: a Unix-socket control channel in front of the bar store, query
//! results materialised into shared-memory arenas, and live topic rings.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::{
    read_frame, write_frame, FrameError, QuerySpec, ReplaySpec, Request, Response,
};
use arrow_array::RecordBatch;
use ringfeed_arrow::{codec, OnFull, RingOptions, Writer};
use ringfeed_store::store::day_string;
use ringfeed_store::{BarStore, DatasetConfig, Query, Symbols, Timeframe};
use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Another daemon answers on the socket.
    #[error("another ringfeedd is already serving on {0:?}: stop it, or pass a different socket")]
    AlreadyRunning(std::path::PathBuf),
    /// The socket could not be bound.
    #[error("cannot listen on {path:?}: {source}")]
    Bind {
        /// Socket path.
        path: std::path::PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store at {path:?}: {message}")]
    Store {
        /// Data dir.
        path: std::path::PathBuf,
        /// Store error.
        message: String,
    },
    /// The metrics endpoint could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// A materialised query result.
struct CachedResult {
    writer: Writer,
    batches: u64,
    rows: u64,
    /// Encoded bytes of the result (what the answer reports).
    bytes: u64,
    /// Bytes of its buffers in shared memory (what the budget counts).
    arena_bytes: u64,
    last_used: Instant,
    /// Answers handed out and not yet released (or whose client is still connected).
    pending: u32,
    /// What an append must match to make it stale.
    scope: Scope,
    /// An append changed its data: no new answers; closed once unused.
    stale: bool,
}

/// The part of a dataset a cached result depends on.
#[derive(Clone, Debug)]
struct Scope {
    dataset: String,
    /// Empty: every symbol.
    symbols: Vec<String>,
    /// End of the range asked (exclusive), if any.
    end: Option<i64>,
}

/// Resampled buckets reach at most this far before a row that changes them.
const STALE_MARGIN_NS: i64 = 32 * 86_400_000_000_000;

impl Scope {
    fn of(q: &Query) -> Self {
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
    fn touched_by(
        &self,
        dataset: &str,
        symbols: &std::collections::BTreeSet<String>,
        from: i64,
    ) -> bool {
        self.dataset == dataset
            && (self.symbols.is_empty() || self.symbols.iter().any(|s| symbols.contains(s)))
            && self
                .end
                .is_none_or(|e| e > from.saturating_sub(STALE_MARGIN_NS))
    }
}

#[derive(Default)]
struct Cache {
    by_key: HashMap<String, String>,
    entries: HashMap<String, CachedResult>,
    /// Shared-memory bytes of every entry.
    bytes: u64,
    /// Per dataset, bumped by every append: a build that saw an older one may
    /// hold stale data and is not cached.
    generation: HashMap<String, u64>,
}

/// State shared by every connection.
pub struct Daemon {
    cfg: Config,
    /// Queries read concurrently; appends write.
    store: RwLock<BarStore>,
    /// Held across an append (store write + every publish) and across a replay
    /// snapshot (topic seq + store read): a snapshot sees exactly the
    /// publications before its seam.
    ingest: Mutex<()>,
    cache: Mutex<Cache>,
    /// One lock per query being built, so identical queries wait for the first
    /// build while different queries build in parallel (without the cache lock).
    building: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    topics: Mutex<HashMap<(String, String), Writer>>,
    metrics: Arc<Metrics>,
    connections: AtomicU32,
    next_id: std::sync::atomic::AtomicU64,
}

/// An error on its way to becoming an error response (small, unlike `Response`).
pub(crate) struct Fail {
    kind: &'static str,
    message: String,
}

fn fail(kind: &'static str, message: impl Into<String>) -> Fail {
    Fail {
        kind,
        message: message.into(),
    }
}

impl From<Fail> for Response {
    fn from(f: Fail) -> Self {
        Response::err(f.kind, f.message)
    }
}

fn query_fail(e: ringfeed_store::store::QueryError) -> Fail {
    let kind = match e {
        ringfeed_store::store::QueryError::UnknownDataset { .. } => "unknown_dataset",
        ringfeed_store::store::QueryError::UnknownSymbol { .. } => "unknown_symbol",
        ringfeed_store::store::QueryError::Timeframe { .. } => "bad_timeframe",
        _ => "store",
    };
    fail(kind, e.to_string())
}

fn wire_err<E: std::fmt::Display>(kind: &'static str) -> impl Fn(E) -> Fail {
    move |e| fail(kind, e.to_string())
}

impl Daemon {
    /// Opens the store (creating configured datasets) and reclaims arenas a
    /// previous run of this daemon left behind.
    pub fn open(cfg: Config) -> Result<Arc<Self>, ServeError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| ServeError::Store {
            path: cfg.data_dir.clone(),
            message: e.to_string(),
        })?;
        let store_err = |m: String| ServeError::Store {
            path: cfg.data_dir.clone(),
            message: m,
        };
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
        Ok(Arc::new(Self {
            cfg,
            store: RwLock::new(store),
            ingest: Mutex::new(()),
            cache: Mutex::new(Cache::default()),
            building: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            connections: AtomicU32::new(0),
            next_id: Default::default(),
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

    fn arena_name(&self, kind: &str, rest: &str) -> String {
        format!("{}.{kind}.{rest}", self.cfg.arena_prefix)
    }

    /// Handles one request. `held` tracks this connection's unreleased query arenas.
    pub fn handle(&self, req: Request, payload: &[u8], held: &mut Vec<String>) -> Response {
        match req {
            Request::Ping => Response::ok(),
            Request::Stat => Response {
                text: Some(self.stat_text()),
                ..Response::ok()
            },
            Request::Datasets => self.datasets(),
            Request::WriteDown {
                dataset,
                before,
                all,
            } => self.write_down_request(dataset.as_deref(), before.as_deref(), all),
            Request::Delete {
                dataset,
                symbol,
                start,
                end,
            } => self.delete(&dataset, symbol, &start, &end),
            Request::Query(q) => {
                let t = Instant::now();
                let r = self.query(&q, held);
                self.metrics
                    .observe_query(t.elapsed(), r.ok, r.cached == Some(true));
                r
            }
            Request::Release { arena } => {
                if let Some(i) = held.iter().position(|a| *a == arena) {
                    held.swap_remove(i);
                    self.release(&arena);
                    Response::ok()
                } else {
                    Response::err(
                        "bad_request",
                        format!("this connection holds no query arena {arena:?}"),
                    )
                }
            }
            Request::Subscribe { dataset, timeframe } => self.subscribe(&dataset, &timeframe),
            Request::Append { dataset } => self.append(&dataset, payload),
            Request::Replay(r) => {
                let t = Instant::now();
                let resp = self.replay(&r, held);
                self.metrics
                    .observe_query(t.elapsed(), resp.ok, resp.cached == Some(true));
                resp
            }
        }
    }

    fn datasets(&self) -> Response {
        let store = self.store.read().expect("store lock");
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
        Response {
            data: Some(serde_json::Value::Object(out)),
            ..Response::ok()
        }
    }

    fn to_store_query(&self, q: &QuerySpec) -> Result<Query, Fail> {
        let tf: Timeframe = q
            .timeframe
            .parse()
            .map_err(|e| fail("bad_timeframe", format!("timeframe {:?}: {e}", q.timeframe)))?;
        let mut sq = Query::new(&q.dataset, tf);
        if !(q.symbols.is_empty() || q.symbols.iter().any(|s| s == "*")) {
            sq.symbols = Symbols::List(q.symbols.clone());
        }
        if let Some(o) = &q.offset {
            sq.offset = Some(
                ringfeed_store::timeframe::parse_duration(o)
                    .map_err(|e| fail("bad_request", format!("offset {o:?}: {e}")))?,
            );
        }
        let t = |s: &Option<crate::protocol::TimeSpec>, what| {
            s.as_ref()
                .map(|t| {
                    t.to_nanos()
                        .map_err(|e| fail("bad_request", format!("{what}: {e}")))
                })
                .transpose()
        };
        sq.start = t(&q.start, "start")?;
        sq.end = t(&q.end, "end")?;
        if let (Some(a), Some(b)) = (sq.start, sq.end) {
            if a >= b {
                return Err(fail(
                    "bad_request",
                    "start must be before end (the range is [start, end))",
                ));
            }
        }
        sq.fields = q.fields.clone();
        sq.limit = q.limit;
        sq.from_end = q.from_end;
        Ok(sq)
    }

    fn query(&self, q: &QuerySpec, held: &mut Vec<String>) -> Response {
        if let Err(f) = self.check_pending(held) {
            return f.into();
        }
        let sq = match self.to_store_query(q) {
            Ok(s) => s,
            Err(f) => return f.into(),
        };
        let key = serde_json::to_string(q).expect("serialisable");
        let scope = Scope::of(&sq);
        match self.cached_or_build(key, scope, held, || {
            let store = self.store.read().expect("store lock");
            store.query(&sq).map_err(query_fail)
        }) {
            Ok(r) => r,
            Err(f) => f.into(),
        }
    }

    fn check_pending(&self, held: &[String]) -> Result<(), Fail> {
        if held.len() as u32 >= self.cfg.max_pending_per_client {
            return Err(fail(
                "too_many_pending",
                format!(
                    "this client holds {} unreleased query results (limit {}): release some first",
                    held.len(),
                    self.cfg.max_pending_per_client
                ),
            ));
        }
        Ok(())
    }

    /// The cached arena for `key`, counted as pending for this client.
    fn hit(&self, key: &str, held: &mut Vec<String>) -> Option<Response> {
        let mut cache = self.cache.lock().expect("cache lock");
        let name = cache.by_key.get(key)?.clone();
        let e = cache.entries.get_mut(&name)?;
        e.pending += 1;
        e.last_used = Instant::now();
        held.push(name.clone());
        Some(Response {
            arena: Some(name),
            batches: Some(e.batches),
            rows: Some(e.rows),
            bytes: Some(e.bytes),
            cached: Some(true),
            ..Response::ok()
        })
    }

    /// Answers `key` from the cache, or builds it with `build`, materialises it
    /// and caches it. Identical keys built concurrently wait for the first
    /// build; different keys build in parallel, outside the cache lock.
    fn cached_or_build(
        &self,
        key: String,
        scope: Scope,
        held: &mut Vec<String>,
        build: impl FnOnce() -> Result<RecordBatch, Fail>,
    ) -> Result<Response, Fail> {
        if let Some(r) = self.hit(&key, held) {
            return Ok(r);
        }
        let gate = self
            .building
            .lock()
            .expect("building lock")
            .entry(key.clone())
            .or_default()
            .clone();
        let result = {
            let _g = gate.lock().expect("build gate");
            // A build of the same key may have finished while this one waited.
            match self.hit(&key, held) {
                Some(r) => Ok(r),
                None => self.build(&key, scope, held, build),
            }
        };
        let mut b = self.building.lock().expect("building lock");
        if b.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
            b.remove(&key);
        }
        result
    }

    fn build(
        &self,
        key: &str,
        scope: Scope,
        held: &mut Vec<String>,
        build: impl FnOnce() -> Result<RecordBatch, Fail>,
    ) -> Result<Response, Fail> {
        let generation = self.generation(&scope.dataset);
        let t = Instant::now();
        let batch = build()?;
        let read = t.elapsed();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = self.arena_name("q", &format!("{}-{id}", std::process::id()));
        let (writer, batches, bytes) = self.materialise(&name, &batch)?;
        tracing::debug!(
            arena = %name,
            rows = batch.num_rows(),
            bytes,
            store_ms = read.as_secs_f64() * 1e3,
            materialise_ms = (t.elapsed() - read).as_secs_f64() * 1e3,
            "query built"
        );
        let geo = writer.ring().geometry();
        let arena_bytes = geo.buffer_bytes * geo.buffers as u64;
        let rows = batch.num_rows() as u64;
        let mut cache = self.cache.lock().expect("cache lock");
        // An append landed while this was built: answer with it, but do not cache it.
        let stale = cache.generation.get(&scope.dataset).copied().unwrap_or(0) != generation;
        cache.bytes += arena_bytes;
        if !stale {
            cache.by_key.insert(key.to_string(), name.clone());
        }
        cache.entries.insert(
            name.clone(),
            CachedResult {
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
        held.push(name.clone());
        self.evict(&mut cache);
        self.metrics
            .set_cache(cache.entries.len() as u64, cache.bytes);
        Ok(Response {
            arena: Some(name),
            batches: Some(batches),
            rows: Some(rows),
            bytes: Some(bytes),
            cached: Some(false),
            ..Response::ok()
        })
    }

    fn generation(&self, dataset: &str) -> u64 {
        let cache = self.cache.lock().expect("cache lock");
        cache.generation.get(dataset).copied().unwrap_or(0)
    }

    /// After an append: cached results that may include changed rows get no
    /// new answers, and are closed as soon as no client uses them.
    fn invalidate(&self, dataset: &str, symbols: &std::collections::BTreeSet<String>, from: i64) {
        let mut cache = self.cache.lock().expect("cache lock");
        *cache.generation.entry(dataset.to_string()).or_default() += 1;
        let stale: Vec<String> = cache
            .entries
            .iter_mut()
            .filter(|(_, e)| !e.stale && e.scope.touched_by(dataset, symbols, from))
            .map(|(name, e)| {
                e.stale = true;
                name.clone()
            })
            .collect();
        if !stale.is_empty() {
            cache.by_key.retain(|_, v| !stale.contains(v));
            self.evict(&mut cache);
            self.metrics
                .set_cache(cache.entries.len() as u64, cache.bytes);
        }
    }

    /// History for a replaying subscriber: the bars of (dataset, timeframe) from
    /// `start`, as a query arena, and the seam: the first topic seq the snapshot
    /// does not contain. The client opened its topic reader before asking, so
    /// it holds every publication from the seam on: no gap, no duplicate.
    fn replay(&self, r: &ReplaySpec, held: &mut Vec<String>) -> Response {
        let mut go = || -> Result<Response, Fail> {
            self.check_pending(held)?;
            let q = QuerySpec {
                dataset: r.dataset.clone(),
                symbols: r.symbols.clone(),
                timeframe: r.timeframe.clone(),
                start: Some(r.start.clone()),
                ..Default::default()
            };
            let sq = self.to_store_query(&q)?;
            let topic = self.topic(&r.dataset, sq.timeframe)?;
            // No append runs between reading the seam and reading the store.
            let _ingest = self.ingest.lock().expect("ingest lock");
            let seam = {
                let topics = self.topics.lock().expect("topics");
                let key = (r.dataset.clone(), sq.timeframe.to_string());
                topics.get(&key).expect("created above").ring().next_seq()
            };
            let key = format!(
                "{}@{topic}#{seam}",
                serde_json::to_string(&q).expect("serialisable")
            );
            let schema = self.topic_schema(&r.dataset, sq.timeframe)?;
            let scope = Scope::of(&sq);
            let mut resp = self.cached_or_build(key, scope, held, || {
                let store = self.store.read().expect("store lock");
                let b = store.query(&sq).map_err(query_fail)?;
                // The topic's columns, so history and live batches concatenate.
                ringfeed_store::schema::conform(&b, &schema).map_err(wire_err("internal"))
            })?;
            resp.seq = Some(seam);
            Ok(resp)
        };
        go().unwrap_or_else(Response::from)
    }

    /// Writes `batch` as chunks into a new arena sized exactly for them.
    fn materialise(&self, name: &str, batch: &RecordBatch) -> Result<(Writer, u64, u64), Fail> {
        // Equal chunks (every buffer is sized for the largest one).
        let n = batch.num_rows().div_ceil(self.cfg.chunk_rows).max(1);
        let chunk = batch.num_rows().div_ceil(n).max(1);
        let chunks: Vec<RecordBatch> = (0..n)
            .map(|i| {
                let off = i * chunk;
                batch.slice(off, chunk.min(batch.num_rows().saturating_sub(off)))
            })
            .collect();
        let mut enc = codec::SlotEncoder::new(batch.schema_ref()).map_err(wire_err("internal"))?;
        let mut max = 0u64;
        let mut total = 0u64;
        for c in &chunks {
            let len = codec::encoded_len(&enc.encode(c).map_err(wire_err("internal"))?) as u64;
            max = max.max(len);
            total += len;
        }
        if total > self.cfg.max_result_bytes {
            return Err(fail(
                "too_large",
                format!(
                    "result is {total} bytes, over this daemon's max_result_bytes ({}): narrow the time range, symbols or fields, or use limit",
                    self.cfg.max_result_bytes
                ),
            ));
        }
        let opts = RingOptions {
            slots: n as u32,
            slot_bytes: max.max(1),
            max_readers: self.cfg.result_readers,
            // A client maps every chunk at once and keeps them as one table.
            leases_per_reader: n as u32,
            // Written once, never overwritten: no spare buffers needed.
            buffers: Some(n as u32),
            on_full: OnFull::OverwriteOldest,
            force: true,
            ..Default::default()
        };
        let mut w = Writer::create(name, batch.schema_ref(), opts).map_err(wire_err("ring"))?;
        for c in &chunks {
            w.write(c).map_err(wire_err("ring"))?;
        }
        Ok((w, n as u64, total))
    }

    fn release(&self, arena: &str) {
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(e) = cache.entries.get_mut(arena) {
            e.pending = e.pending.saturating_sub(1);
        }
        self.evict(&mut cache);
    }

    /// LRU eviction under the memory budget. Never evicts a result that is
    /// pending or still mapped by a reader (its leases are live memory).
    fn evict(&self, cache: &mut Cache) {
        let unused = |e: &CachedResult| e.pending == 0 && e.writer.ring().readers().is_empty();
        let dead: Vec<String> = cache
            .entries
            .iter()
            .filter(|(_, e)| e.stale && unused(e))
            .map(|(k, _)| k.clone())
            .collect();
        for name in dead {
            let e = cache.entries.remove(&name).expect("present");
            cache.bytes -= e.arena_bytes;
            e.writer.close();
            tracing::debug!(arena = %name, "closed a stale query result");
        }
        while cache.bytes > self.cfg.memory_budget {
            let victim = cache
                .entries
                .iter()
                .filter(|(_, e)| unused(e))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(name) = victim else { break };
            let e = cache.entries.remove(&name).expect("present");
            cache.bytes -= e.arena_bytes;
            cache.by_key.retain(|_, v| *v != name);
            e.writer.close();
            self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(arena = %name, "evicted query result");
        }
    }

    fn topic_schema(&self, dataset: &str, tf: Timeframe) -> Result<arrow_schema::SchemaRef, Fail> {
        let store = self.store.read().expect("store lock");
        let e = store.dataset(dataset).ok_or_else(|| {
            let known: Vec<&String> = store.catalog().datasets.keys().collect();
            fail(
                "unknown_dataset",
                format!("unknown dataset {dataset:?}; known: {known:?}"),
            )
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
            Err(fail(
                "bad_timeframe",
                format!("dataset {dataset:?} has no live topic for {tf}; topics: {stored:?} (other timeframes: query with resampling)"),
            ))
        }
    }

    /// Name of the topic ring for (dataset, tf), creating it on first use.
    fn topic(&self, dataset: &str, tf: Timeframe) -> Result<String, Fail> {
        let key = (dataset.to_string(), tf.to_string());
        let name = self.arena_name("t", &format!("{dataset}.{tf}"));
        if self.topics.lock().expect("topics").contains_key(&key) {
            return Ok(name);
        }
        let schema = self.topic_schema(dataset, tf)?;
        let t = &self.cfg.topics;
        let opts = RingOptions {
            slots: t.slots,
            slot_bytes: t.slot_bytes,
            max_readers: t.max_readers,
            force: true,
            ..Default::default()
        };
        let w = Writer::create(&name, &schema, opts).map_err(wire_err("ring"))?;
        self.topics.lock().expect("topics").entry(key).or_insert(w);
        Ok(name)
    }

    fn subscribe(&self, dataset: &str, timeframe: &str) -> Response {
        let tf: Timeframe = match timeframe.parse() {
            Ok(t) => t,
            Err(e) => {
                return Response::err("bad_timeframe", format!("timeframe {timeframe:?}: {e}"))
            }
        };
        match self.topic(dataset, tf) {
            Ok(name) => Response {
                arena: Some(name),
                ..Response::ok()
            },
            Err(f) => f.into(),
        }
    }

    fn publish(&self, dataset: &str, tf: Timeframe, batch: &RecordBatch) -> Result<(), Fail> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.topic(dataset, tf)?;
        let key = (dataset.to_string(), tf.to_string());
        let mut topics = self.topics.lock().expect("topics");
        let w = topics.get_mut(&key).expect("created above");
        let batch =
            ringfeed_store::schema::conform(batch, w.schema()).map_err(wire_err("internal"))?;
        // Split what does not fit one slot; halve until it does.
        let mut pending = vec![batch];
        while let Some(b) = pending.pop() {
            match w.write(&b) {
                Ok(_) => self.metrics.published.fetch_add(1, Ordering::Relaxed),
                Err(ringfeed_arrow::WriteError::BatchTooLarge { .. }) if b.num_rows() > 1 => {
                    let h = b.num_rows() / 2;
                    pending.push(b.slice(h, b.num_rows() - h));
                    pending.push(b.slice(0, h));
                    continue;
                }
                Err(e) => return Err(fail("ring", e.to_string())),
            };
        }
        Ok(())
    }

    fn append(&self, dataset: &str, payload: &[u8]) -> Response {
        let t = Instant::now();
        let batches = match decode_ipc_stream(payload) {
            Ok(b) => b,
            Err(e) => {
                return Response::err(
                    "bad_request",
                    format!("append payload is not an Arrow IPC stream: {e}"),
                )
            }
        };
        let mut rows = 0u64;
        // Store write and publications are one step for replay snapshots.
        let _ingest = self.ingest.lock().expect("ingest lock");
        for batch in &batches {
            let (base, summary, batch) = {
                let mut store = self.store.write().expect("store lock");
                let Some(e) = store.dataset(dataset) else {
                    let known: Vec<&String> = store.catalog().datasets.keys().collect();
                    return Response::err(
                        "unknown_dataset",
                        format!("unknown dataset {dataset:?}; known: {known:?}"),
                    );
                };
                let base = e.config.base;
                let schema = if base.is_tick() {
                    ringfeed_store::schema::tick_schema()
                } else {
                    ringfeed_store::schema::bar_schema()
                };
                let batch = match ringfeed_store::schema::conform(batch, &schema) {
                    Ok(b) => b,
                    Err(e) => {
                        return Response::err(
                            "bad_request",
                            format!("rows do not fit dataset {dataset:?}: {e}"),
                        )
                    }
                };
                match store.upsert(dataset, &batch) {
                    Ok(s) => (base, s, batch),
                    Err(e) => return Response::err("store", e.to_string()),
                }
            };
            let batch = &batch;
            rows += summary.rows as u64;
            let touched = match Touched::of(batch, &summary.rollups) {
                Ok(t) => t,
                Err(f) => return f.into(),
            };
            self.invalidate(dataset, &touched.symbols, touched.lo);
            if let Err(f) = self.publish(dataset, base, batch) {
                return f.into();
            }
            // Publish every rollup bar the store rewrote: the buckets the rows landed in
            // and the earlier bars they closed, each with its new complete flag.
            for (tf, bars) in &summary.rollups {
                if let Err(f) = self.publish(dataset, *tf, bars) {
                    return f.into();
                }
            }
        }
        self.metrics.observe_ingest(rows, t.elapsed());
        Response {
            rows: Some(rows),
            ..Response::ok()
        }
    }

    /// End-of-day write-down: move every hot day before `before_day` (days since the
    /// epoch, UTC) of every dataset into the Parquet cold tier, [`WRITE_DOWN_DAYS_PER_LOCK`]
    /// days per store lock, so that appends and uncached queries wait for a few days'
    /// write-down at most (catching up on a year at start would otherwise hold the store
    /// for seconds). Cached results stay valid: the bars do not change, only where they
    /// live.
    pub fn write_down_before(
        &self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<ringfeed_store::store::WriteDownSummary, ringfeed_store::store::WriteDownError>
    {
        let t = Instant::now();
        let days = self
            .store
            .read()
            .expect("store lock")
            .write_down_days(dataset, before_day)?;
        let mut total = ringfeed_store::store::WriteDownSummary::default();
        let mut result = Ok(());
        for (i, chunk) in days.chunks(WRITE_DOWN_DAYS_PER_LOCK).enumerate() {
            if i > 0 {
                // A short pause between chunks, so that appends and queries queued on
                // the lock get in before the next chunk.
                std::thread::sleep(Duration::from_millis(1));
            }
            let last = *chunk.last().expect("chunks are not empty");
            let held = Instant::now();
            let r = self
                .store
                .write()
                .expect("store lock")
                .write_down(dataset, last + 1);
            tracing::debug!(
                days = chunk.len(),
                last = %day_string(last),
                ms = held.elapsed().as_millis() as u64,
                "write-down chunk"
            );
            match r {
                Ok(s) => {
                    total.partitions += s.partitions;
                    total.rows += s.rows;
                    total.bytes += s.bytes;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.metrics.observe_write_down(
            result.is_ok().then_some(total.partitions as u64),
            t.elapsed(),
        );
        result.map(|()| total)
    }

    /// Deletes a range of bars (`ringfeed delete --daemon`): the store rewrites the
    /// rollups, cached results it can change are dropped. Live topics carry appends only,
    /// so subscribers are not told; they see the change in their next query.
    fn delete(
        &self,
        dataset: &str,
        symbol: Option<String>,
        start: &crate::protocol::TimeSpec,
        end: &crate::protocol::TimeSpec,
    ) -> Response {
        let (start, end) = match (start.to_nanos(), end.to_nanos()) {
            (Ok(s), Ok(e)) if s < e => (s, e),
            (Ok(s), Ok(e)) => {
                return Response::err(
                    "bad_request",
                    format!("empty or inverted range: start {s} is not before end {e}"),
                )
            }
            (Err(m), _) | (_, Err(m)) => return Response::err("bad_request", m),
        };
        // Store change and cache invalidation are one step for replay snapshots and
        // concurrent builds, as for appends.
        let _ingest = self.ingest.lock().expect("ingest lock");
        let mut store = self.store.write().expect("store lock");
        let symbols: std::collections::BTreeSet<String> = match (&symbol, store.dataset(dataset)) {
            (_, None) => {
                let known: Vec<&String> = store.catalog().datasets.keys().collect();
                return Response::err(
                    "unknown_dataset",
                    format!("no dataset {dataset:?} (known: {known:?})"),
                );
            }
            (Some(s), Some(_)) => [s.clone()].into(),
            (None, Some(e)) => e.symbols.clone(),
        };
        let range = ringfeed_store::DeleteRange { symbol, start, end };
        match store.delete(dataset, range) {
            Ok(days) => {
                drop(store);
                self.invalidate(dataset, &symbols, start);
                Response {
                    rows: Some(days as u64),
                    text: Some(format!("deleted from {days} days of {dataset}")),
                    ..Response::ok()
                }
            }
            Err(e) => Response::err("store", e.to_string()),
        }
    }

    /// A write-down asked for over the socket (`ringfeed write-down --socket`).
    fn write_down_request(
        &self,
        dataset: Option<&str>,
        before: Option<&str>,
        all: bool,
    ) -> Response {
        let before_day = match (all, before) {
            (true, _) => i64::MAX,
            (false, Some(d)) => match ringfeed_store::store::parse_day(d) {
                Some(day) => day,
                None => {
                    return Response::err(
                        "bad_request",
                        format!("before {d:?} is not a YYYY-MM-DD date"),
                    )
                }
            },
            (false, None) => write_down_boundary(now_ns(), Duration::ZERO),
        };
        let t = Instant::now();
        match self.write_down_before(dataset, before_day) {
            Ok(s) => Response {
                rows: Some(s.rows),
                bytes: Some(s.bytes),
                text: Some(format!(
                    "wrote down {} partitions: {} rows, {} bytes of Parquet in {:.2}s",
                    s.partitions,
                    s.rows,
                    s.bytes,
                    t.elapsed().as_secs_f64()
                )),
                ..Response::ok()
            },
            Err(e @ ringfeed_store::store::WriteDownError::UnknownDataset { .. }) => {
                Response::err("unknown_dataset", e.to_string())
            }
            Err(e) => Response::err("store", e.to_string()),
        }
    }

    /// The metrics as Prometheus text (what `ringfeed stat` prints).
    pub fn stat_text(&self) -> String {
        let mut topics = vec![];
        for ((d, tf), w) in self.topics.lock().expect("topics").iter() {
            let readers = w.ring().readers();
            let seq = w.ring().next_seq() - 1;
            let lag = readers
                .iter()
                .map(|r| (seq + 1).saturating_sub(r.cursor))
                .max()
                .unwrap_or(0);
            let leases: u32 = readers.iter().map(|r| r.leases).sum();
            topics.push((format!("{d}/{tf}"), seq, readers.len(), lag, leases));
        }
        self.metrics
            .render(&topics, self.connections.load(Ordering::Relaxed))
    }

    /// Serves one connection until it closes or sends garbage it cannot recover from.
    pub fn serve_connection(self: &Arc<Self>, stream: UnixStream) {
        let mut held: Vec<String> = Vec::new();
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut writer = stream;
        loop {
            let (req, payload) = match read_frame::<_, Request>(
                &mut reader,
                self.cfg.max_append_bytes,
            ) {
                Ok(x) => x,
                Err(FrameError::Eof) => break,
                Err(FrameError::Json(m)) => {
                    self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                    // The frame was read whole, so the stream is still in sync.
                    if write_frame(&mut writer, &Response::err("bad_request", m), &[]).is_err() {
                        break;
                    }
                    continue;
                }
                Err(FrameError::TooLarge {
                    what: "payload",
                    len,
                    max,
                }) => {
                    self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                    // The header was read; discard the payload (no memory held) so
                    // the client, still writing it, gets the reason, not a broken pipe.
                    let drained = io::copy(&mut (&mut reader).take(len), &mut io::sink());
                    let resp = Response::err(
                            "too_large",
                            format!(
                                "request payload of {len} bytes exceeds this daemon's max_append_bytes ({max}): split the append into smaller batches"
                            ),
                        );
                    if !matches!(drained, Ok(n) if n == len)
                        || write_frame(&mut writer, &resp, &[]).is_err()
                    {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                    // Framing is lost (header too large, or cut): answer once and hang up.
                    let _ = write_frame(
                        &mut writer,
                        &Response::err("bad_request", e.to_string()),
                        &[],
                    );
                    break;
                }
            };
            let resp = self.handle(req, &payload, &mut held);
            if write_frame(&mut writer, &resp, &[]).is_err() {
                break;
            }
        }
        for a in held {
            self.release(&a);
        }
    }

    /// Closes every arena this daemon owns (topics and cached results).
    pub fn shutdown(&self) {
        for (_, w) in self.topics.lock().expect("topics").drain() {
            w.close();
        }
        let mut cache = self.cache.lock().expect("cache");
        for (_, e) in cache.entries.drain() {
            e.writer.close();
        }
        cache.by_key.clear();
        cache.bytes = 0;
    }
}

/// What an appended batch changed: its symbols and the earliest bar it changed.
struct Touched {
    /// The earliest bar changed: a row of the batch, or an earlier rollup bar it closed.
    lo: i64,
    symbols: std::collections::BTreeSet<String>,
}

impl Touched {
    fn of(batch: &RecordBatch, rollups: &[(Timeframe, RecordBatch)]) -> Result<Self, Fail> {
        let mut t = Touched {
            lo: i64::MAX,
            symbols: Default::default(),
        };
        let (ts, sym) = ts_and_symbols(batch)?;
        for i in 0..batch.num_rows() {
            t.lo = t.lo.min(ts.value(i));
            t.symbols.insert(sym.value(i).to_string());
        }
        for (_, b) in rollups {
            let (ts, _) = ts_and_symbols(b)?;
            t.lo = ts.iter().flatten().fold(t.lo, i64::min);
        }
        Ok(t)
    }
}

/// The `ts` and `symbol` columns of a batch in the store's canonical types.
fn ts_and_symbols(
    b: &RecordBatch,
) -> Result<
    (
        &arrow_array::TimestampNanosecondArray,
        &arrow_array::StringViewArray,
    ),
    Fail,
> {
    use arrow_array::cast::AsArray;
    let ts = b
        .column_by_name("ts")
        .and_then(|c| c.as_primitive_opt::<arrow_array::types::TimestampNanosecondType>())
        .ok_or_else(|| fail("internal", "batch lacks a timestamp[ns] ts column"))?;
    let sym = b
        .column_by_name("symbol")
        .and_then(|c| c.as_string_view_opt())
        .ok_or_else(|| fail("internal", "batch lacks a Utf8View symbol column"))?;
    Ok((ts, sym))
}

fn decode_ipc_stream(payload: &[u8]) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
    let r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)?;
    r.collect()
}

/// Days written down per hold of the store's write lock. Each hold commits the catalog
/// once (which rewrites it whole), so one day per hold made a year's catch-up 2.6x slower
/// than one pass (7.5 vs 2.9 s); 8 days keep a hold near 0.1 s for a symbol with 4 rollups.
const WRITE_DOWN_DAYS_PER_LOCK: usize = 8;

/// The first day (days since the epoch, UTC) that is not yet due for write-down at
/// `now_ns`: days before it ended at least `delay` ago.
pub fn write_down_boundary(now_ns: i64, delay: Duration) -> i64 {
    (now_ns - delay.as_nanos() as i64).div_euclid(ringfeed_store::timeframe::NANOS_PER_DAY)
}

/// Runs end-of-day write-downs until `stop`: one pass at start (catching up on days left
/// hot while the daemon was down), then one each time a UTC day has been over for
/// `delay`. A failed pass is logged, counted, and retried after `RETRY`.
fn write_down_loop(daemon: Arc<Daemon>, delay: Duration, stop: Arc<AtomicBool>) {
    const RETRY: Duration = Duration::from_secs(300);
    let mut done_before = i64::MIN;
    let mut retry_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let boundary = write_down_boundary(now_ns(), delay);
        let due = boundary > done_before && retry_at.is_none_or(|t| Instant::now() >= t);
        if due {
            let t = Instant::now();
            match daemon.write_down_before(None, boundary) {
                Ok(s) => {
                    done_before = boundary;
                    retry_at = None;
                    if s.partitions > 0 {
                        tracing::info!(
                            partitions = s.partitions,
                            rows = s.rows,
                            bytes = s.bytes,
                            ms = t.elapsed().as_millis() as u64,
                            "wrote down the days before {} to Parquet",
                            day_string(boundary)
                        );
                    }
                }
                Err(e) => {
                    retry_at = Some(Instant::now() + RETRY);
                    tracing::error!(
                        error = %e,
                        "end-of-day write-down failed; the days stay in the hot tier (nothing is lost), retrying in {} s",
                        RETRY.as_secs()
                    );
                }
            }
        }
        // Wake often enough to notice `stop` promptly; the due check is cheap.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wall-clock time, ns since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Binds the socket (0600), refusing to steal it from a live daemon and
/// removing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ServeError::AlreadyRunning(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let l = UnixListener::bind(path).map_err(|source| ServeError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ServeError::Bind {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(l)
}

/// Runs the daemon until `stop` is set (SIGTERM/SIGINT in `ringfeedd`).
/// Returns after closing every arena and removing the socket.
pub fn serve(cfg: Config, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    // Query results are built on connection threads as buffers of many MiB;
    // without this glibc keeps them in per-thread heaps after they are freed
    // (measured: 3.6 -> 109 MiB anonymous after 12 cold symbol-year queries
    // on 12 connections).
    ringfeed_shm::mmap_large_allocations(128 << 10);
    let listener = bind(&cfg.socket)?;
    let socket = cfg.socket.clone();
    let metrics_addr = cfg.metrics;
    let daemon = match Daemon::open(cfg) {
        Ok(d) => d,
        Err(e) => {
            // The socket is ours (bind refused a live one), but nobody will serve it.
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    };
    if let Some(addr) = metrics_addr {
        if let Err(source) = crate::metrics::serve_http(addr, daemon.clone(), stop.clone()) {
            daemon.shutdown();
            let _ = std::fs::remove_file(&socket);
            return Err(ServeError::Metrics { addr, source });
        }
    }
    let write_down = daemon.cfg.write_down_delay.map(|delay| {
        let (d, stop) = (daemon.clone(), stop.clone());
        std::thread::spawn(move || write_down_loop(d, delay, stop))
    });
    tracing::info!(socket = %socket.display(), data_dir = %daemon.cfg.data_dir.display(), "ringfeedd serving");
    // accept() blocks; on stop, a waker connects once so that it returns.
    let waker = {
        let (stop, socket) = (stop.clone(), socket.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = UnixStream::connect(&socket);
        })
    };
    loop {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => break,
            Ok((stream, _)) => {
                if daemon.connections.load(Ordering::Relaxed) >= daemon.cfg.max_connections {
                    let mut s = stream;
                    let _ = write_frame(
                        &mut s,
                        &Response::err("busy", "too many connections: retry later"),
                        &[],
                    );
                    continue;
                }
                daemon.connections.fetch_add(1, Ordering::Relaxed);
                let d = daemon.clone();
                std::thread::spawn(move || {
                    d.serve_connection(stream);
                    d.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) if stop.load(Ordering::Relaxed) => {
                tracing::debug!(error = %e, "accept interrupted by shutdown");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let _ = waker.join();
    if let Some(w) = write_down {
        // A pass in progress finishes first (it is crash-safe, but a clean stop is nicer).
        let _ = w.join();
    }
    tracing::info!("shutting down: closing arenas");
    daemon.shutdown();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_due_for_write_down_once_it_has_been_over_for_the_delay() {
        const DAY: i64 = 86_400_000_000_000;
        const MIN: i64 = 60_000_000_000;
        let ten = Duration::from_secs(600);
        // 2021-01-01.
        let day = 18_628;
        // 00:05 on day+1: day is not due yet, the day before it is.
        assert_eq!(write_down_boundary((day + 1) * DAY + 5 * MIN, ten), day);
        // 00:10 on day+1: day is due.
        let at = (day + 1) * DAY + 10 * MIN;
        assert_eq!(write_down_boundary(at, ten), day + 1);
        // No delay: due at midnight.
        assert_eq!(
            write_down_boundary((day + 1) * DAY, Duration::ZERO),
            day + 1
        );
        assert_eq!(day_string(day), "2021-01-01");
    }
}
