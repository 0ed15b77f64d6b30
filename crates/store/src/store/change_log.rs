//! The store's side of the per-dataset change logs ([`crate::changes`]): what each write
//! records before it changes data, and [`BarStore::changes_since`] for followers.

use super::{BarStore, WriteError};
use crate::changes::{ChangeKind, ChangesError, ChangesSince, Entries};
use crate::schema;
use crate::wal::FsyncPolicy;
use arrow_array::RecordBatch;
use std::collections::HashMap;

impl BarStore {
    /// Entries of `dataset`'s change log with seq >= since, at most `limit` of them (when cut
    /// by limit, `next_seq` is the seq of the first entry NOT returned, so asking again from
    /// it continues; never cut in the middle of a group sharing one seq).
    /// Works on writer and read-only stores. Unknown dataset: a typed error listing the known.
    ///
    /// A `limit` of 0 is taken as 1; a group sharing one seq (merged entries, one per
    /// symbol) that is larger than `limit` is returned whole when it comes first. A
    /// read-only store rereads the file when it changed, so it may see a slightly older
    /// tail than the writer holds.
    ///
    /// ```
    /// # use ringfeed_store::{BarStore, DatasetConfig, DeleteRange};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = BarStore::open(dir.path()).unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
    /// for end in [10, 20, 30] {
    ///     store.delete("demo", DeleteRange { symbol: None, start: 0, end }).unwrap();
    /// }
    /// let page = store.changes_since("demo", 0, 2).unwrap();
    /// assert_eq!((page.changes.len(), page.next_seq), (2, 2));
    /// let rest = store.changes_since("demo", page.next_seq, 2).unwrap();
    /// assert_eq!((rest.changes[0].end, rest.next_seq), (30, 3));
    /// assert!(store.changes_since("nope", 0, 1).unwrap_err().to_string().contains("demo"));
    /// ```
    pub fn changes_since(
        &self,
        dataset: &str,
        since: u64,
        limit: usize,
    ) -> Result<ChangesSince, ChangesError> {
        if !self.catalog.datasets.contains_key(dataset) {
            return Err(ChangesError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            });
        }
        self.changes.since(dataset, since, limit)
    }

    /// Merge a change log's oldest half once it holds more than `n` entries (default
    /// [`crate::changes::CHANGES_KEEP`]); for tests of compaction.
    pub fn set_changes_keep(&mut self, n: usize) {
        self.changes.set_keep(n);
    }

    /// Record `entries` in `dataset`'s change log before the data change they describe:
    /// one write, made durable first unless the dataset never syncs.
    pub(super) fn record_changes(
        &self,
        dataset: &str,
        fsync: FsyncPolicy,
        entries: Entries,
    ) -> Result<(), ChangesError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.changes
            .record(dataset, fsync != FsyncPolicy::Never, entries)?;
        crate::failpoint("changes:after_record");
        Ok(())
    }

    /// What an upsert of `batch` (sorted by symbol, ts) records: a Rewrite of each
    /// symbol's rows when one of them is older than the symbol's newest stored bar; and the
    /// newest ts of each symbol in the batch, to raise the newest to once it is stored.
    pub(super) fn upsert_changes(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<(Entries, Vec<(String, i64)>), WriteError> {
        if !self.changes.newest.contains_key(dataset) {
            let newest = self.newest_stored(dataset)?;
            self.changes.newest.insert(dataset.to_string(), newest);
        }
        let newest = &self.changes.newest[dataset];
        let v = schema::view(batch);
        let (mut entries, mut maxes) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < batch.num_rows() {
            let j = schema::run_end(v.symbol, i);
            let sym = v.symbol.value(i);
            let (lo, hi) = (v.ts[i], v.ts[j - 1]);
            if newest.get(sym).is_some_and(|&n| lo < n) {
                entries.push((ChangeKind::Rewrite, Some(sym.to_string()), lo, hi + 1));
            }
            maxes.push((sym.to_string(), hi));
            i = j;
        }
        Ok((entries, maxes))
    }

    /// After a successful upsert: raise the newest ts of each symbol written.
    pub(super) fn raise_newest(&mut self, dataset: &str, maxes: Vec<(String, i64)>) {
        let newest = self.changes.newest.entry(dataset.to_string()).or_default();
        for (s, t) in maxes {
            let n = newest.entry(s).or_insert(t);
            *n = (*n).max(t);
        }
    }

    /// The newest stored base ts of each symbol of `dataset`: its watermark (see
    /// [`BarStore::base_watermarks`]) less the base length.
    fn newest_stored(&self, dataset: &str) -> Result<HashMap<String, i64>, WriteError> {
        let entry = self.entry(dataset)?;
        let len = entry.config.base.nanos().unwrap_or(0);
        let mut newest = self
            .base_watermarks(dataset, &entry.config, entry.symbols.clone())
            .map_err(WriteError::Read)?;
        for t in newest.values_mut() {
            *t -= len;
        }
        Ok(newest)
    }
}
