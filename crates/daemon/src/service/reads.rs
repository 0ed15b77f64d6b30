//! Reads: queries, replays, subscriptions, readiness, listings. Queries go
//! through the result cache; a replay takes its seam under the ingest lock,
//! and materialises its history after letting go of it.

use super::cache::{ResultArena, Scope, Session};
use super::error::ServiceError;
use super::open::Service;
use super::spec::{parse_offset, parse_timeframe, parse_weekday};
use ringfeed_client::protocol::{
    symbol_list, DatasetReady, QuerySpec, ReadyReport, ReplaySpec, TimeframeReady,
};
use ringfeed_store::{Query, Symbols};
use std::time::Instant;

/// A replay's history and its seam.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayAnswer {
    /// The history, as a result arena.
    pub history: ResultArena,
    /// The first live topic seq the history does not contain.
    pub seam: u64,
}

impl Service {
    /// The metrics as Prometheus text (what `ringfeed stat` prints).
    /// `connections`: open client connections, counted by the faces.
    pub fn stat(&self, connections: u32) -> String {
        let store = {
            let store = self.store();
            crate::metrics::StoreStat {
                read_only: store.read_only_reason().is_some(),
                wal_corruptions: store.corruption_count(),
            }
        };
        let mut text = self
            .metrics
            .render(&self.topics.stats(), connections, store);
        text.push_str(&self.followed.render());
        text
    }

    /// Datasets, their base and stored timeframes, symbols, and settings (`config`).
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
                // `config`: the store's settings, as a follower creates its copy with them.
                serde_json::json!({"base": e.config.base.to_string(), "timeframes": tfs, "symbols": e.symbols, "config": e.config}),
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
        let datasets = names
            .iter()
            .filter_map(|name| dataset_ready(&store, name).transpose())
            .collect::<Result<_, _>>()
            .map_err(ServiceError::store)?;
        Ok(ReadyReport {
            ready: true,
            reason: None,
            datasets,
        })
    }

    /// A protocol query as a store query; every argument checked.
    fn store_query(&self, q: &QuerySpec) -> Result<Query, ServiceError> {
        let tf = parse_timeframe(&q.timeframe, "timeframe")?;
        let mut sq = Query::new(&q.dataset, tf);
        let symbols = symbol_list(&q.symbols);
        if !symbols.is_empty() {
            sq.symbols = Symbols::List(symbols);
        }
        if let Some(o) = &q.offset {
            sq.offset = Some(parse_offset(o)?);
        }
        (sq.start, sq.end) = ringfeed_client::time::range(q.start.as_ref(), q.end.as_ref())?;
        sq.fields = q.fields.clone();
        sq.limit = q.limit;
        sq.from_end = q.from_end;
        sq.week_start = q.week_start.as_deref().map(parse_weekday).transpose()?;
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
                self.store().query_batches(&sq).map_err(ServiceError::from)
            })
        })();
        self.metrics
            .observe_query(t.elapsed(), r.is_ok(), r.as_ref().is_ok_and(|a| a.cached));
        r
    }

    /// The arena name of the live topic of (dataset, timeframe).
    pub fn subscribe(&self, dataset: &str, timeframe: &str) -> Result<String, ServiceError> {
        let tf = parse_timeframe(timeframe, "timeframe")?;
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
            // The seam: under the ingest lock, no write runs between reading it
            // and taking the store's read lock, so the store holds exactly the
            // publications before it. Rows stored but not yet published go out
            // first, so that they are live (after the seam), not history.
            let ingest = self.ingest();
            self.topics
                .flush(&r.dataset, tf, || Ok(schema.clone()))
                .map_err(|e| {
                    ServiceError::new(
                        e.kind,
                        format!("the live topic has stored rows it could not publish yet ({e}); retry the replay shortly"),
                    )
                })?;
            let seam = self
                .topics
                .next_seq(&r.dataset, tf, || Ok(schema.clone()))?;
            let key = format!(
                "{}@{}#{seam}",
                serde_json::to_string(&sq_key(&q)).expect("serialisable"),
                self.topics.name(&r.dataset, tf)
            );
            // Lock hand-over: the store's read lock is taken before the ingest
            // lock is let go. Appends then wait only for the store read below
            // (as for any query), never for the conversion and the copy into
            // shared memory, which run with no lock held.
            let store = self.store();
            drop(ingest);
            let history = self
                .cache
                .get_or_build(key, Scope::of(&sq), session, move || {
                    let b = store.query_batches(&sq);
                    drop(store);
                    let b = b?;
                    if let Some(hook) = self.replay_hook() {
                        hook();
                    }
                    // The topic's columns, so history and live batches concatenate.
                    b.iter()
                        .map(|b| ringfeed_store::schema::conform(b, &schema))
                        .collect::<Result<Vec<_>, _>>()
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
}

/// How far `name`'s data goes, from the store itself (the daemon's `ready`,
/// and `ringfeed datasets` on a data directory); `None` for an unknown dataset.
pub fn dataset_ready(
    store: &ringfeed_store::BarStore,
    name: &str,
) -> Result<Option<DatasetReady>, ringfeed_store::store::ReadError> {
    let (Some(entry), Some(extent)) = (store.dataset(name), store.extent(name)?) else {
        return Ok(None);
    };
    Ok(Some(DatasetReady {
        dataset: name.to_string(),
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
    }))
}

/// A query's cache key: the spec with its symbol list normalised, so that
/// `"A,B"` and `["A", "B"]` share one result.
fn sq_key(q: &QuerySpec) -> QuerySpec {
    QuerySpec {
        symbols: symbol_list(&q.symbols),
        ..q.clone()
    }
}
