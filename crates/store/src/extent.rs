//! How far a dataset's data goes: first and last bar per stored timeframe,
//! hot and cold days (what the daemon's `ready` reports).

use crate::hot::ts_span;
use crate::schema::Kind;
use crate::store::{day_string, BarStore, ReadError};
use crate::timeframe::Timeframe;

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
        self.extent_by(dataset, |tf, kind, day| {
            self.day_span(dataset, tf, kind, day)
        })
    }

    /// [`BarStore::extent`] without the writer's kept spans: both end days of each
    /// timeframe read in full. For tests checking the kept spans against it.
    #[doc(hidden)]
    pub fn extent_read_in_full(
        &self,
        dataset: &str,
    ) -> Result<Option<Vec<TimeframeExtent>>, ReadError> {
        self.extent_by(dataset, |tf, kind, day| {
            Ok(self
                .read_day(dataset, tf, kind, day, None)?
                .and_then(|b| ts_span(&b)))
        })
    }

    /// The extent of `dataset` with `span` giving the first and last ts of a hot day.
    fn extent_by(
        &self,
        dataset: &str,
        mut span: impl FnMut(Timeframe, Kind, i64) -> Result<Option<(i64, i64)>, ReadError>,
    ) -> Result<Option<Vec<TimeframeExtent>>, ReadError> {
        let Some(entry) = self.dataset(dataset) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for tf in self.stored_timeframes(dataset) {
            let kind = Self::kind_of(&entry.config, tf);
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
                if let Some((lo, hi)) = span(tf, kind, *day)? {
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
