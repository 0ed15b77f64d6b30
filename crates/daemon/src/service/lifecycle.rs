//! A dataset's lifecycle as service operations: set its retention (applied at once, and
//! at every write-down), trim rows before a time, drop the dataset. Each holds the ingest
//! lock like the other writes, and drops the cached results it changes; a drop also
//! closes the dataset's live topics (subscribers see them closed, and a dataset created
//! again under the name gets new rings).

use super::error::{ErrorKind, ServiceError};
use super::open::Service;
use super::spec::parse_retention;
use ringfeed_client::TimeSpec;
use ringfeed_store::store::{DropDatasetError, RetentionError, TrimError};
use std::collections::BTreeSet;

/// What a lifecycle operation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleOutcome {
    /// Rows removed (trim: cold rows; drop: base rows; retention: rows in parts dropped).
    pub rows: u64,
    /// Bytes removed from disk.
    pub bytes: u64,
    /// A one-line summary.
    pub text: String,
}

impl From<RetentionError> for ServiceError {
    fn from(e: RetentionError) -> Self {
        let kind = match e {
            RetentionError::UnknownDataset { .. } => ErrorKind::UnknownDataset,
            RetentionError::Config(_) => ErrorKind::BadRequest,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<TrimError> for ServiceError {
    fn from(e: TrimError) -> Self {
        let kind = match e {
            TrimError::UnknownDataset { .. } => ErrorKind::UnknownDataset,
            TrimError::UnknownSymbol { .. } => ErrorKind::UnknownSymbol,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<DropDatasetError> for ServiceError {
    fn from(e: DropDatasetError) -> Self {
        let kind = match e {
            DropDatasetError::UnknownDataset { .. } => ErrorKind::UnknownDataset,
            DropDatasetError::NotConfirmed { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

impl Service {
    /// Sets (or clears) `dataset`'s retention and its rollups' longer one, then applies it
    /// now (the wall clock): partitions wholly older are dropped.
    pub fn set_retention(
        &self,
        dataset: &str,
        retention: Option<&str>,
        rollup_retention: Option<&str>,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let (r, rr) = (
            parse_retention(retention)?,
            parse_retention(rollup_retention)?,
        );
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        store.set_retention(dataset, r, rr)?;
        let s = store.apply_retention(Some(dataset), ringfeed_client::time::now_ns())?;
        let symbols = store
            .dataset(dataset)
            .map(|e| e.symbols.clone())
            .unwrap_or_default();
        drop(store);
        if !s.is_empty() {
            self.cache.invalidate(dataset, &symbols, i64::MIN);
        }
        let kept = match (r, rr) {
            (None, _) => "every row is kept".to_string(),
            (Some(r), None) => format!("rows are kept {r}"),
            (Some(r), Some(rr)) => format!("rows are kept {r}, rollups {rr}"),
        };
        Ok(LifecycleOutcome {
            rows: s.rows,
            bytes: s.bytes + s.wal_bytes,
            text: format!(
                "{dataset}: {kept}; dropped {} parts ({} rows) and {} hot days",
                s.parts, s.rows, s.wal_files
            ),
        })
    }

    /// Applies every dataset's retention at `now` (the periodic write-down runs this
    /// first: expired hot days are dropped, not written down).
    pub fn apply_retention(&self, now: i64) -> Result<(), ServiceError> {
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        let before: Vec<(String, BTreeSet<String>)> = store
            .catalog()
            .datasets
            .iter()
            .filter(|(_, e)| e.config.retention.is_some())
            .map(|(n, e)| (n.clone(), e.symbols.clone()))
            .collect();
        for (name, symbols) in before {
            let s = store.apply_retention(Some(&name), now)?;
            if !s.is_empty() {
                self.cache.invalidate(&name, &symbols, i64::MIN);
            }
        }
        Ok(())
    }

    /// Removes the rows of `symbol` (every symbol when `None`) with `ts < before`, in every
    /// stored timeframe, hot and cold; cached results they were in are dropped. Live
    /// topics carry appends only: subscribers see the change in their next query.
    pub fn trim(
        &self,
        dataset: &str,
        symbol: Option<&str>,
        before: &TimeSpec,
    ) -> Result<LifecycleOutcome, ServiceError> {
        self.refuse_if_followed(dataset, "trim")?;
        let before = match ringfeed_client::time::range(None, Some(before))? {
            (_, Some(b)) => b,
            _ => unreachable!("the end is given"),
        };
        self.trim_followed(dataset, symbol, before)
    }

    /// The follower's trim of what its primary trimmed: [`Service::trim`] at `before`
    /// (ns) without the refusal of followed datasets.
    pub fn trim_followed(
        &self,
        dataset: &str,
        symbol: Option<&str>,
        before: i64,
    ) -> Result<LifecycleOutcome, ServiceError> {
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        let symbols: BTreeSet<String> = match (symbol, store.dataset(dataset)) {
            (_, None) => {
                return Err(ServiceError::unknown_dataset(
                    dataset,
                    store.catalog().datasets.keys(),
                ))
            }
            (Some(s), Some(_)) => [s.to_string()].into(),
            (None, Some(e)) => e.symbols.clone(),
        };
        let s = store.trim(dataset, symbol, before)?;
        drop(store);
        self.cache.invalidate(dataset, &symbols, i64::MIN);
        Ok(LifecycleOutcome {
            rows: s.rows,
            bytes: s.bytes_freed.max(0) as u64,
            text: format!(
                "trimmed {} of {dataset} before {}: {} parts dropped, {} rewritten, {} cold rows removed{}",
                symbol.unwrap_or("every symbol"),
                ringfeed_client::time::iso(before),
                s.parts_dropped,
                s.parts_rewritten,
                s.rows,
                if s.partial_day {
                    "; the rows of the cut's day before it deleted and its rollups recomputed"
                } else {
                    ""
                }
            ),
        })
    }

    /// Drops `dataset`: refused without `yes` when it holds rows (the error says what it
    /// holds); else the store removes it (catalog first, then files), its topics close
    /// and its cached results go.
    pub fn drop_dataset(&self, dataset: &str, yes: bool) -> Result<LifecycleOutcome, ServiceError> {
        self.refuse_if_followed(dataset, "drop-dataset")?;
        let _ingest = self.ingest();
        let mut store = self.store_mut();
        let fp = store.footprint(dataset)?;
        if fp.rows > 0 && !yes {
            return Err(DropDatasetError::NotConfirmed {
                name: dataset.into(),
                rows: fp.rows,
                bytes: fp.bytes,
                days: fp.days,
            }
            .into());
        }
        let symbols = store
            .dataset(dataset)
            .map(|e| e.symbols.clone())
            .unwrap_or_default();
        store.drop_dataset(dataset)?;
        drop(store);
        self.cache.invalidate(dataset, &symbols, i64::MIN);
        self.topics.close_dataset(dataset);
        tracing::info!(dataset, rows = fp.rows, bytes = fp.bytes, "dropped dataset");
        Ok(LifecycleOutcome {
            rows: fp.rows,
            bytes: fp.bytes,
            text: format!("dropped dataset {dataset}: {fp}"),
        })
    }
}
