//! Datasets this daemon follows from a primary (`[follow]`, `--follow`): local writes to
//! them are refused here, in the service core, whatever face they come from; and each
//! follower's state, for `stat`, the metrics endpoint and `health`.
//!
//! The follower itself (`crate::follow`) writes through [`Service::append_followed`],
//! the same append path as every local write (WAL, rollups, write-down, topics), minus
//! this check.

use super::error::{ErrorKind, ServiceError};
use super::open::Service;
use arrow_array::RecordBatch;
use ringfeed_client::protocol::{Change, ChangeKind, ChangesSince, CHANGES_LIMIT};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

/// What a follower of one dataset is doing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FollowState {
    /// The primary's URL.
    pub primary: String,
    /// Subscribed to the primary now.
    pub connected: bool,
    /// Why the primary refuses this dataset to this follower (no read scope, a config
    /// that differs from the local dataset's): an operator must act.
    pub refused: Option<String>,
    /// The last connection error, while reconnecting.
    pub last_error: Option<String>,
    /// Newest base bar the primary is known to hold (ns), from its `ready` and from
    /// what it sent.
    pub primary_last_ts: Option<i64>,
    /// Newest base bar stored here (ns).
    pub local_last_ts: Option<i64>,
    /// Rows of the current subscription's history not yet stored here.
    pub history_rows_left: u64,
    /// Subscriptions opened again after one ended or failed to open.
    pub reconnects: u64,
    /// Rows received from the primary and stored here.
    pub rows: u64,
    /// Entries of the primary's change log applied (deletes, trims, corrections).
    pub changes_applied: u64,
}

impl FollowState {
    /// How far this follower is behind, in seconds of bar time: the primary's newest
    /// base bar minus ours (0 when level or unknown).
    pub fn lag_seconds(&self) -> f64 {
        match (self.primary_last_ts, self.local_last_ts) {
            (Some(p), Some(l)) => (p.saturating_sub(l)).max(0) as f64 / 1e9,
            (Some(_), None) => f64::INFINITY,
            _ => 0.0,
        }
    }
}

/// The followed datasets and their states.
#[derive(Default)]
pub struct Followed {
    states: Mutex<BTreeMap<String, FollowState>>,
}

impl Followed {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, FollowState>> {
        // Each update is one assignment: a panic cannot leave a state half-written.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The primary `dataset` is followed from, if it is.
    pub fn primary_of(&self, dataset: &str) -> Option<String> {
        self.lock().get(dataset).map(|s| s.primary.clone())
    }

    /// Every followed dataset and its state.
    pub fn snapshot(&self) -> BTreeMap<String, FollowState> {
        self.lock().clone()
    }

    /// The metrics of every follower, as Prometheus text.
    pub fn render(&self) -> String {
        let states = self.snapshot();
        if states.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        let metric = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      v: &dyn Fn(&FollowState) -> String| {
            let _ = writeln!(
                out,
                "# HELP ringfeed_follow_{name} {help}\n# TYPE ringfeed_follow_{name} {kind}"
            );
            for (d, s) in &states {
                let _ = writeln!(out, "ringfeed_follow_{name}{{dataset=\"{d}\"}} {}", v(s));
            }
        };
        metric(
            &mut out,
            "lag_seconds",
            "gauge",
            "Bar time the follower is behind its primary (newest base bar there minus here).",
            &|s| {
                let l = s.lag_seconds();
                if l.is_finite() {
                    format!("{l:.3}")
                } else {
                    "+Inf".into()
                }
            },
        );
        metric(
            &mut out,
            "lag_rows",
            "gauge",
            "Rows of the current replay's history not yet stored here.",
            &|s| s.history_rows_left.to_string(),
        );
        metric(
            &mut out,
            "reconnects_total",
            "counter",
            "Subscriptions to the primary opened again after one ended or failed to open.",
            &|s| s.reconnects.to_string(),
        );
        metric(
            &mut out,
            "rows_total",
            "counter",
            "Rows received from the primary and stored.",
            &|s| s.rows.to_string(),
        );
        metric(
            &mut out,
            "changes_applied_total",
            "counter",
            "Entries of the primary's change log applied here (deletes, trims, corrections below the newest bars).",
            &|s| s.changes_applied.to_string(),
        );
        metric(
            &mut out,
            "connected",
            "gauge",
            "1 while subscribed to the primary.",
            &|s| u8::from(s.connected).to_string(),
        );
        out
    }
}

impl Service {
    /// Marks `dataset` as followed from `primary`: local writes to it are refused from
    /// now on. Called by the follower before it writes anything.
    pub fn follow_dataset(&self, dataset: &str, primary: &str) {
        self.followed
            .lock()
            .entry(dataset.to_string())
            .or_insert_with(|| FollowState {
                primary: primary.to_string(),
                ..Default::default()
            });
    }

    /// Updates the follower state of `dataset` (a no-op if it is not followed).
    pub fn update_follow(&self, dataset: &str, f: impl FnOnce(&mut FollowState)) {
        if let Some(s) = self.followed.lock().get_mut(dataset) {
            f(s);
        }
    }

    /// The state of the follower of `dataset`, if it is followed.
    pub fn follow_state(&self, dataset: &str) -> Option<FollowState> {
        self.followed.lock().get(dataset).cloned()
    }

    /// The followed datasets and their states.
    pub fn follow_states(&self) -> BTreeMap<String, FollowState> {
        self.followed.snapshot()
    }

    /// Refuses a local write to a followed dataset, naming its primary.
    pub(super) fn refuse_if_followed(&self, dataset: &str, what: &str) -> Result<(), ServiceError> {
        match self.followed.primary_of(dataset) {
            None => Ok(()),
            Some(primary) => Err(ServiceError::new(
                ErrorKind::Followed,
                if what == "drop-dataset" {
                    format!("dataset {dataset:?} is followed from the primary {primary}: this daemon does not drop it while following it; stop following it (remove it from [follow] datasets or --datasets, restart), then drop it here")
                } else if what == "append" {
                    format!("dataset {dataset:?} is followed from the primary {primary}: this daemon takes no local appends to it; append to the primary, and this follower gets the rows from there")
                } else {
                    format!("dataset {dataset:?} is followed from the primary {primary}: this daemon takes no local {what} of it; {what} on the primary, and its followers apply it from the primary's change log")
                },
            )),
        }
    }
}

impl Service {
    /// The settings `dataset` is stored with, if it exists.
    pub fn dataset_settings(&self, dataset: &str) -> Option<ringfeed_store::DatasetConfig> {
        self.store().dataset(dataset).map(|e| e.config.clone())
    }

    /// The newest stored base bar of each symbol of `dataset`, its `ts` and its whole
    /// row (in the stored base columns): where a follower resumes, and what it compares a
    /// re-sent bar with. Empty for a dataset with no rows.
    pub fn held_tail(&self, dataset: &str) -> Result<HeldTail, ServiceError> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampNanosecondType;
        let store = self.store();
        let Some(entry) = store.dataset(dataset) else {
            return Err(ServiceError::unknown_dataset(
                dataset,
                store.catalog().datasets.keys(),
            ));
        };
        let base = entry.config.base;
        let schema = store
            .stored_schema(dataset, base)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        if entry.symbols.is_empty() {
            return Ok(HeldTail {
                newest: BTreeMap::new(),
                rows: RecordBatch::new_empty(schema),
            });
        }
        let mut q = ringfeed_store::Query::new(dataset, base);
        q.limit = Some(1); // per symbol
        q.from_end = true;
        let batches = store.query_batches(&q)?;
        drop(store);
        let conformed = batches
            .iter()
            .map(|b| ringfeed_store::schema::conform(b, &schema))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::internal(format!("the newest bars: {e}")))?;
        let rows = arrow_select::concat::concat_batches(&schema, &conformed)
            .map_err(|e| ServiceError::internal(format!("the newest bars: {e}")))?;
        let mut newest = BTreeMap::new();
        let (Some(ts), Some(sym)) = (rows.column_by_name("ts"), rows.column_by_name("symbol"))
        else {
            return Err(ServiceError::internal(
                "the stored base columns have no ts or symbol",
            ));
        };
        let ts = ts
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| ServiceError::internal("ts is not timestamp[ns]"))?;
        let sym = arrow_cast::cast(sym, &arrow_schema::DataType::Utf8)
            .map_err(|e| ServiceError::internal(format!("symbol column: {e}")))?;
        let sym = sym.as_string::<i32>();
        for i in 0..rows.num_rows() {
            let e = newest.entry(sym.value(i).to_string()).or_insert(i64::MIN);
            *e = (*e).max(ts.value(i));
        }
        Ok(HeldTail { newest, rows })
    }
}

impl Service {
    /// The change log of `dataset` from `since` on (at most `limit` entries, capped at
    /// [`CHANGES_LIMIT`]): what its followers apply besides the live rows.
    pub fn changes(
        &self,
        dataset: &str,
        since: u64,
        limit: Option<usize>,
    ) -> Result<ChangesSince, ServiceError> {
        use ringfeed_store::changes::ChangeKind as K;
        let limit = limit.unwrap_or(CHANGES_LIMIT).clamp(1, CHANGES_LIMIT);
        let store = self.store();
        if store.dataset(dataset).is_none() {
            return Err(ServiceError::unknown_dataset(
                dataset,
                store.catalog().datasets.keys(),
            ));
        }
        let c = store
            .changes_since(dataset, since, limit)
            .map_err(ServiceError::store)?;
        Ok(ChangesSince {
            log_id: c.log_id,
            first_seq: c.first_seq,
            next_seq: c.next_seq,
            changes: c
                .changes
                .into_iter()
                .map(|c| Change {
                    seq: c.seq,
                    kind: match c.kind {
                        K::Rewrite => ChangeKind::Rewrite,
                        K::Remove => ChangeKind::Remove,
                    },
                    symbol: c.symbol,
                    start: c.start,
                    end: c.end,
                })
                .collect(),
        })
    }
}

/// The newest stored base bar of each symbol of a dataset ([`Service::held_tail`]).
#[derive(Clone, Debug)]
pub struct HeldTail {
    /// Its `ts`, per symbol.
    pub newest: BTreeMap<String, i64>,
    /// The bars themselves, one per symbol, in the stored base columns.
    pub rows: RecordBatch,
}

#[cfg(test)]
mod tests {
    /// The wire's change-log types read what the store's serialise (the wire crate cannot
    /// depend on the store, so the two are kept apart and pinned here).
    #[test]
    fn the_wire_change_log_reads_the_stores_json() {
        use ringfeed_store::changes as store;
        let s = store::ChangesSince {
            log_id: "00ff".into(),
            first_seq: 3,
            next_seq: 9,
            changes: vec![
                store::Change {
                    seq: 3,
                    kind: store::ChangeKind::Remove,
                    symbol: None,
                    start: i64::MIN,
                    end: 5,
                },
                store::Change {
                    seq: 8,
                    kind: store::ChangeKind::Rewrite,
                    symbol: Some("A".into()),
                    start: 1,
                    end: 2,
                },
            ],
        };
        let wire: ringfeed_client::protocol::ChangesSince =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(
            (wire.log_id.as_str(), wire.first_seq, wire.next_seq),
            ("00ff", 3, 9)
        );
        assert_eq!(wire.changes.len(), 2);
        assert_eq!(
            wire.changes[0].kind,
            ringfeed_client::protocol::ChangeKind::Remove
        );
        assert_eq!(
            (
                wire.changes[1].symbol.as_deref(),
                wire.changes[1].start,
                wire.changes[1].end
            ),
            (Some("A"), 1, 2)
        );
    }
}
