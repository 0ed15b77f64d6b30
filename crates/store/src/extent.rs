//! How far a dataset's data goes: first and last bar per stored timeframe,
//! hot and cold days (what the daemon's `ready` reports).

use crate::schema::Kind;
use crate::store::{day_string, BarStore, ReadError};

/// The extent of one stored timeframe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeframeExtent {
    /// The timeframe.
    pub timeframe: String,
    /// Open time of the first bar, ns (none when empty).
    pub first_ts: Option<i64>,
    /// Open time of the last bar, ns (none when empty).
    pub last_ts: Option<i64>,
    /// Days in the hot tier, "YYYY-MM-DD".
    pub hot_days: Vec<String>,
    /// Days in the cold tier.
    pub cold_days: u64,
}

impl BarStore {
    /// First and last bar, hot days and cold days of every stored timeframe of
    /// `dataset`, finest first; `None` for an unknown dataset. Reads at most
    /// the first and last hot day of each timeframe; the writer keeps their spans and,
    /// when a day's WAL has grown since, decodes only the frames appended (see
    /// [`crate::hot`]'s `span`), so polling it costs microseconds. A read-only opener
    /// reads both days in full each time.
    pub fn extent(&self, dataset: &str) -> Result<Option<Vec<TimeframeExtent>>, ReadError> {
        let Some(entry) = self.dataset(dataset) else {
            return Ok(None);
        };
        let base = entry.config.base;
        let mut out = Vec::new();
        for tf in self.stored_timeframes(dataset) {
            let kind = if tf != base {
                Kind::Rollup
            } else if tf.is_tick() {
                Kind::Ticks
            } else {
                Kind::Bars
            };
            let cold = entry
                .cold
                .get(&tf.to_string())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut first = cold.iter().map(|p| p.min_ts).min();
            let mut last = cold.iter().map(|p| p.max_ts).max();
            let cold_days: std::collections::BTreeSet<i64> = cold.iter().map(|p| p.day).collect();
            let hot = self.hot_days(dataset, tf);
            let ends = [hot.first(), hot.last()];
            for day in ends.into_iter().flatten() {
                if let Some((lo, hi)) = self.day_span(dataset, tf, kind, *day)? {
                    first = Some(first.map_or(lo, |f| f.min(lo)));
                    last = Some(last.map_or(hi, |l| l.max(hi)));
                }
            }
            out.push(TimeframeExtent {
                timeframe: tf.to_string(),
                first_ts: first,
                last_ts: last,
                hot_days: hot.iter().map(|d| day_string(*d)).collect(),
                cold_days: cold_days.len() as u64,
            });
        }
        Ok(Some(out))
    }
}
