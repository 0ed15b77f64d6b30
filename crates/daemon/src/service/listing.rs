//! What a network face lists: every stored (dataset, timeframe), with the
//! schema a query of it answers with and, where the catalog knows it, its
//! row count.

use super::open::Service;
use arrow_schema::SchemaRef;
use ringfeed_arrow::{storage_schema, StringLayout};
use std::sync::Arc;

/// One stored (dataset, timeframe).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTimeframe {
    /// The dataset.
    pub dataset: String,
    /// The timeframe, in its canonical spelling ("1m", "1h").
    pub timeframe: String,
    /// The schema of a query of every column of it (strings as views, as
    /// result arenas store them).
    pub schema: SchemaRef,
    /// Rows stored, when the cold tier holds all of them (its catalog
    /// counts them); `None` while hot days exist (counting those means
    /// reading them).
    pub rows: Option<u64>,
}

impl Service {
    /// Every stored timeframe of `dataset` (of every dataset when `None`;
    /// an unknown dataset lists nothing), datasets by name, finest first.
    pub fn stored_timeframes(&self, dataset: Option<&str>) -> Vec<StoredTimeframe> {
        let store = self.store();
        let mut out = Vec::new();
        for (name, entry) in &store.catalog().datasets {
            if dataset.is_some_and(|d| d != name) {
                continue;
            }
            for tf in store.stored_timeframes(name) {
                let Ok(schema) = store.stored_schema(name, tf) else {
                    continue;
                };
                let key = tf.to_string();
                let rows = store.hot_days(name, tf).is_empty().then(|| {
                    entry
                        .cold
                        .get(&key)
                        .map_or(0, |parts| parts.iter().map(|p| p.rows).sum())
                });
                out.push(StoredTimeframe {
                    dataset: name.clone(),
                    timeframe: key,
                    schema: Arc::new(storage_schema(&schema, StringLayout::View)),
                    rows,
                });
            }
        }
        out
    }
}
