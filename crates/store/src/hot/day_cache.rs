//! The writer's cache of merged days (see [`DayCache`]).

use crate::merge;
use crate::schema::Kind;
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The writer's cache of merged days (cold parts overlaid with the hot WAL), keyed by WAL
/// path and stream (the timeframe's frames in the dataset-day WAL), split by symbol. An entry is used only while the day's cold parts are the ones
/// it was built from and its WAL has not shrunk; when the WAL grew (by this writer's
/// appends: it is the only writer), the frames after the entry's length are decoded and
/// merged onto the symbols they touch. Entries are dropped when their WAL is deleted
/// (write-down) or an append to it fails. Bounded by [`DAY_CACHE_BYTES`], least recently
/// used out first.
pub(super) struct DayCache {
    /// Per WAL, per stream. Maps, not a list: a store of daily bars keeps thousands of
    /// days (each a row a symbol), and every lookup, put and forget would scan them all.
    pub(super) entries: HashMap<PathBuf, HashMap<u32, CachedDay>>,
    clock: u64,
    /// The entries' bytes when last summed, plus those put since: a put checks this
    /// instead of summing thousands of entries (`make_room(0)` sums them).
    approx: usize,
    /// Memory the entries may hold (estimated from rows and column widths).
    pub(super) limit: usize,
    /// Per WAL, per stream: the first and last ts of the merged day (what `extent` reads),
    /// kept apart from `entries` (a few bytes each, never evicted by size) and dropped with
    /// them when their WAL is forgotten.
    spans: HashMap<PathBuf, HashMap<u32, CachedSpan>>,
}

/// The first and last ts of one (WAL, stream) day, valid while the day's cold parts are
/// `cold` and its WAL is `wal_len` bytes long (see `HotTier::day_span`).
struct CachedSpan {
    cold: Vec<String>,
    wal_len: u64,
    span: Option<(i64, i64)>,
}

impl Default for DayCache {
    fn default() -> Self {
        DayCache {
            entries: HashMap::new(),
            clock: 0,
            approx: 0,
            limit: DAY_CACHE_BYTES,
            spans: HashMap::new(),
        }
    }
}

pub(super) struct CachedDay {
    wal: PathBuf,
    stream: u32,
    /// The WAL's length (all streams) up to which this stream's frames are merged in.
    pub(super) wal_len: u64,
    cold: Vec<String>,
    /// The merged day, per symbol.
    pub(super) day: BTreeMap<String, merge::Chunks>,
    /// The merged day as one batch, made by the first read of many symbols and dropped
    /// when `day` changes: a day that no longer changes (a past day's `1d` bars, read by
    /// every write of its month) then serves such reads as a slice, without joining a
    /// chunk per symbol each time.
    whole: Option<RecordBatch>,
    pub(super) bytes: usize,
    used: u64,
}

/// Default memory the writer's day cache may hold: a day of 1m bars of 1,000 symbols
/// is ~155 MB merged, and a live feed keeps its base day and the rollup days in it.
pub const DAY_CACHE_BYTES: usize = 1 << 30;

impl CachedDay {
    pub(super) fn new(
        wal: PathBuf,
        stream: u32,
        cold: Vec<String>,
        wal_len: u64,
        merged: Option<&RecordBatch>,
    ) -> Self {
        let mut e = CachedDay {
            wal,
            stream,
            wal_len,
            cold,
            day: merged.map(merge::split_by_symbol).unwrap_or_default(),
            whole: None,
            bytes: 0,
            used: 0,
        };
        e.bytes = e.estimate();
        e
    }

    pub(super) fn estimate(&self) -> usize {
        let mut chunks = self.day.values().flatten().peekable();
        let width: usize = chunks.peek().map_or(0, |b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().primitive_width().unwrap_or(16) + 1)
                .sum()
        });
        chunks.map(|b| b.num_rows() * width + 1024).sum()
    }

    /// The merged day per symbol, to change (drops the joined copy).
    pub(super) fn day_mut(&mut self) -> &mut BTreeMap<String, merge::Chunks> {
        self.whole = None;
        &mut self.day
    }

    /// The rows of `symbols` (all when `None`), sorted by key; no copy for one symbol, or
    /// for neighbouring symbols once the day is joined.
    pub(super) fn select(
        &mut self,
        kind: Kind,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        // Many symbols: join the day once (kept until it changes), then slice it.
        if symbols.is_none_or(|s| s.len() > 8) && self.day.len() > 8 {
            if self.whole.is_none() {
                let all: Vec<&RecordBatch> = self.day.values().flatten().collect();
                self.whole = Some(arrow_select::concat::concat_batches(&kind.schema(), all)?);
                self.bytes = self.estimate() * 2;
            }
            let whole = self.whole.as_ref().expect("joined above");
            return match symbols {
                None => Ok(Some(whole.clone())),
                Some(s) => crate::store::select_symbols(whole, s),
            };
        }
        let parts: Vec<&RecordBatch> = match symbols {
            None => self.day.values().flatten().collect(),
            Some(s) if s.len() < self.day.len() => {
                s.iter().filter_map(|x| self.day.get(x)).flatten().collect()
            }
            Some(s) => self
                .day
                .iter()
                .filter(|(k, _)| s.contains(*k))
                .flat_map(|(_, b)| b)
                .collect(),
        };
        Ok(match parts[..] {
            [] => None,
            [one] => Some(one.clone()),
            _ => Some(arrow_select::concat::concat_batches(&kind.schema(), parts)?),
        })
    }
}

impl DayCache {
    pub(super) fn find(
        &mut self,
        wal: &Path,
        stream: u32,
        cold: &[String],
    ) -> Option<&mut CachedDay> {
        self.clock += 1;
        let now = self.clock;
        let e = self
            .entries
            .get_mut(wal)?
            .get_mut(&stream)
            .filter(|e| e.cold == cold)?;
        e.used = now;
        Some(e)
    }

    pub(super) fn put(&mut self, mut e: CachedDay) {
        if let Some(streams) = self.entries.get_mut(&e.wal) {
            streams.remove(&e.stream);
        }
        if e.bytes > self.limit {
            return;
        }
        if self.approx + e.bytes > self.limit {
            self.make_room(e.bytes);
        }
        self.approx += e.bytes;
        self.clock += 1;
        e.used = self.clock;
        self.entries
            .entry(e.wal.clone())
            .or_default()
            .insert(e.stream, e);
    }

    /// Evict least recently used entries until `bytes` more fit (sums every entry).
    pub(super) fn make_room(&mut self, bytes: usize) {
        let mut total: usize = self.all().map(|e| e.bytes).sum();
        while total + bytes > self.limit {
            let Some((wal, stream, size)) = self
                .all()
                .min_by_key(|e| e.used)
                .map(|e| (e.wal.clone(), e.stream, e.bytes))
            else {
                break;
            };
            if let Some(streams) = self.entries.get_mut(&wal) {
                streams.remove(&stream);
                if streams.is_empty() {
                    self.entries.remove(&wal);
                }
            }
            total -= size;
        }
        self.approx = total;
    }

    fn all(&self) -> impl Iterator<Item = &CachedDay> {
        self.entries.values().flat_map(|m| m.values())
    }

    /// Drop every stream of a WAL.
    pub(super) fn forget(&mut self, wal: &Path) {
        self.entries.remove(wal);
        self.spans.remove(wal);
    }

    /// Drop everything (the WALs are read afresh from now on).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.spans.clear();
    }

    /// The cached span of (wal, stream) with the WAL length it was taken at, when the
    /// day's cold parts are still `cold`.
    pub(super) fn span(
        &self,
        wal: &Path,
        stream: u32,
        cold: &[String],
    ) -> Option<(u64, Option<(i64, i64)>)> {
        let e = self.spans.get(wal)?.get(&stream)?;
        (e.cold == cold).then_some((e.wal_len, e.span))
    }

    /// Remember the span of (wal, stream) at `wal_len` bytes of the WAL.
    pub(super) fn put_span(
        &mut self,
        wal: PathBuf,
        stream: u32,
        cold: Vec<String>,
        wal_len: u64,
        span: Option<(i64, i64)>,
    ) {
        self.spans.entry(wal).or_default().insert(
            stream,
            CachedSpan {
                cold,
                wal_len,
                span,
            },
        );
    }
}
