//! The first and last ts of one hot day, cheap for the writer: what
//! [`crate::BarStore::extent`] (the daemon's `ready`) reads of the first and the last hot
//! day of every timeframe.
//!
//! Reading a day merges its cold parts and every frame of its WAL: ~0.2 s for the live
//! day of a thousand symbols. The writer keeps the span of each day it was asked about,
//! with the WAL length and cold parts it was taken at. When the WAL has grown since (the
//! writer's own appends), only the frames after that length are decoded: upserts can only
//! add timestamps (a row replaced by key keeps its ts), so the span widens by theirs; a
//! delete among them sends the day back to a full read. A WAL that shrank, was removed or
//! recreated, or whose cold parts changed (write-down, compaction, trim, retention, a
//! dropped dataset) is read in full again: those paths forget the WAL in the day cache,
//! which forgets its spans too.

use super::HotTier;
use crate::catalog::PartFile;
use crate::merge::Op;
use crate::schema::Kind;
use crate::store::ReadError;
use crate::timeframe::Timeframe;
use crate::wal;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::RecordBatch;

impl HotTier {
    /// The first and last ts of the merged (dataset, timeframe, day) (cold parts `cold`
    /// overlaid with the WAL), `None` when it holds no row. A read-only tier reads the day
    /// in full every time.
    pub(crate) fn day_span(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
        cold: &[PartFile],
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let full = || -> Result<Option<(i64, i64)>, ReadError> {
            Ok(self
                .read_day(dataset, tf, kind, day, cold, None, false)?
                .and_then(|b| ts_span(&b)))
        };
        if !self.writable {
            return full();
        }
        let path = self.day_path(dataset, day);
        let stream = wal::stream_of(tf);
        let len = match self.wal_lens.get(&path) {
            None => 0,
            // A failed append: the file's valid length is unknown, so nothing is kept.
            Some(&u64::MAX) => return full(),
            Some(&n) => n,
        };
        let names: Vec<String> = cold.iter().map(|p| p.path.clone()).collect();
        let cached = self.day_cache().span(&path, stream, &names);
        let span = match cached {
            Some((at, span)) if at == len => return Ok(span),
            Some((at, span)) if at < len => {
                match wal::replay_range_stream(&path, at, len, Some(stream))? {
                    Some(ops) => match widen(span, &ops) {
                        Some(span) => span,
                        None => full()?,
                    },
                    None => full()?,
                }
            }
            _ => full()?,
        };
        self.day_cache().put_span(path, stream, names, len, span);
        Ok(span)
    }
}

/// `span` widened by the timestamps of `ops`, or `None` when one of them is a delete (the
/// span may then shrink: only a full read knows).
fn widen(mut span: Option<(i64, i64)>, ops: &[Op]) -> Option<Option<(i64, i64)>> {
    for op in ops {
        let Op::Upsert(b) = op else {
            return None;
        };
        if let Some((lo, hi)) = ts_span(b) {
            span = Some(span.map_or((lo, hi), |(a, z)| (a.min(lo), z.max(hi))));
        }
    }
    Some(span)
}

/// The least and greatest `ts` of a batch (`None` when it has no rows or no `ts`).
pub(crate) fn ts_span(b: &RecordBatch) -> Option<(i64, i64)> {
    let ts = b
        .column_by_name("ts")?
        .as_primitive_opt::<TimestampNanosecondType>()?;
    let lo = ts.iter().flatten().min();
    let hi = ts.iter().flatten().max();
    lo.zip(hi)
}
