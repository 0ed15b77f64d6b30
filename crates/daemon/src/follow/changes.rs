//! The primary's change log, applied here: deletes, trims and rows written below a
//! symbol's newest bar on the primary, which a resume from the newest stored bar would
//! not see (the primary's store logs each before making it; see
//! `ringfeed_store::changes`).
//!
//! How a follower stays equal to its primary (docs/scale-out.md, "Changes"):
//! 1. On each (re)connection, before it resumes: the entries since its cursor. Every
//!    `remove` range is deleted here (a range from the first bar: trimmed), then every
//!    range of every entry is copied again from the primary, as it is now. Order does not
//!    matter between them: each copy reads the primary's current rows. The cursor is
//!    then kept (`_follow/<dataset>.json` in the data directory).
//! 2. After the subscription opened: the entries logged meanwhile. A `remove` means rows
//!    the subscription may already hold are gone: start over (step 1). `rewrite`s are
//!    copied; the cursor is kept.
//! 3. While live, about once a second: the entries since. A `remove`: start over. A
//!    `rewrite` came with the live rows; it is copied again only after a reconnection
//!    (the cursor is not moved past it, since the live rows it came with may not be stored
//!    yet).
//!
//! A log with another id than the cursor's (the primary's dataset dropped and made
//! again) empties the local copy and copies everything again.

use crate::service::Service;
use ringfeed_client::protocol::{ChangeKind, ChangesSince, CHANGES_LIMIT};
use ringfeed_client::{QuerySpec, TimeSpec};
use ringfeed_remote::{RemoteClient, RemoteError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Ranges of one symbol closer than this are copied again in one query.
const MERGE_GAP_NS: i64 = 86_400_000_000_000;

/// Longest range one copy query asks for (a merged range may span years).
const COPY_WINDOW_NS: i64 = 31 * 86_400_000_000_000;

/// How far this follower has applied its primary's change log of one dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// The primary it was applied from.
    pub primary: String,
    /// The log's id; `None` before the first contact.
    pub log_id: Option<String>,
    /// The first entry not applied.
    pub next_seq: u64,
}

/// Where the cursor of `dataset` is kept.
fn cursor_path(service: &Service, dataset: &str) -> PathBuf {
    service
        .config()
        .data_dir
        .join("_follow")
        .join(format!("{dataset}.json"))
}

impl Cursor {
    /// The kept cursor (none kept, or unreadable: the start; applying entries again is
    /// harmless, missing one is not).
    pub(super) fn load(service: &Service, dataset: &str) -> Cursor {
        let p = cursor_path(service, dataset);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(path = %p.display(), error = %e, "the follower's change-log cursor is unreadable; applying the primary's change log from its start");
                Cursor::default()
            }),
            Err(_) => Cursor::default(),
        }
    }

    /// Keeps the cursor (a temp file, synced, renamed over the old one).
    pub(super) fn save(&self, service: &Service, dataset: &str) -> Result<(), String> {
        let p = cursor_path(service, dataset);
        let dir = p.parent().expect("a file in _follow");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = p.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).expect("a cursor serialises");
        (|| {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &p)?;
            std::fs::File::open(dir)?.sync_all()
        })()
        .map_err(|e| format!("keeping the change-log cursor in {}: {e}", p.display()))
    }
}

/// What the entries since a cursor ask for.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The log's id.
    pub log_id: String,
    /// The first entry after them.
    pub next_seq: u64,
    /// `remove` ranges, in order: (symbol or every one, start, end).
    pub removes: Vec<(Option<String>, i64, i64)>,
    /// Every range to copy again: per symbol (`None`: every symbol), merged.
    pub copies: BTreeMap<Option<String>, Vec<(i64, i64)>>,
    /// Entries read.
    pub entries: u64,
}

impl Pending {
    /// Whether the entries remove anything.
    pub(super) fn removes_rows(&self) -> bool {
        !self.removes.is_empty()
    }
}

/// The entries of `dataset`'s change log from `since` on, all pages.
pub(super) fn fetch(
    client: &mut RemoteClient,
    dataset: &str,
    since: u64,
) -> Result<Pending, RemoteError> {
    let mut p = Pending {
        next_seq: since,
        ..Default::default()
    };
    loop {
        let page: ChangesSince = client.changes(dataset, p.next_seq, Some(CHANGES_LIMIT))?;
        if !p.log_id.is_empty() && page.log_id != p.log_id {
            // Made again between two pages: the caller sees the new id and starts over.
            return Ok(Pending {
                log_id: page.log_id,
                next_seq: 0,
                ..Default::default()
            });
        }
        p.log_id = page.log_id;
        let last_page = page.changes.is_empty() || page.next_seq <= p.next_seq;
        for c in &page.changes {
            p.entries += 1;
            if c.kind == ChangeKind::Remove {
                p.removes.push((c.symbol.clone(), c.start, c.end));
            }
            p.copies
                .entry(c.symbol.clone())
                .or_default()
                .push((c.start, c.end));
        }
        p.next_seq = page.next_seq.max(p.next_seq);
        if last_page || page.changes.len() < CHANGES_LIMIT {
            break;
        }
    }
    for ranges in p.copies.values_mut() {
        *ranges = merge(std::mem::take(ranges));
    }
    Ok(p)
}

/// Sorted ranges, those closer than [`MERGE_GAP_NS`] merged.
fn merge(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.retain(|(s, e)| e > s);
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(MERGE_GAP_NS) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Applies `p` to the local copy of `dataset`: the removes, then the copies; rows copied.
pub(super) fn apply(
    service: &Service,
    client: &mut RemoteClient,
    dataset: &str,
    base: &str,
    p: &Pending,
) -> Result<u64, Applying> {
    for (symbol, start, end) in &p.removes {
        let r = if *start == i64::MIN {
            service
                .trim_followed(dataset, symbol.as_deref(), *end)
                .map(|_| ())
        } else {
            service
                .delete_followed(dataset, symbol.clone(), *start, *end)
                .map(|_| ())
        };
        r.map_err(|e| {
            Applying::Local(format!(
                "applying the primary's removal of {} in [{}, {}): {e}",
                symbol.as_deref().unwrap_or("every symbol"),
                ringfeed_client::time::iso(*start),
                ringfeed_client::time::iso(*end)
            ))
        })?;
    }
    let mut rows = 0u64;
    for (symbol, ranges) in &p.copies {
        for (start, end) in ranges {
            rows += copy(
                service,
                client,
                dataset,
                base,
                symbol.as_deref(),
                (*start, *end),
            )?;
        }
    }
    Ok(rows)
}

/// Copies the primary's rows of `symbol` (or every one) in `[start, end)` over the local
/// ones, a window at a time; the rows stored.
fn copy(
    service: &Service,
    client: &mut RemoteClient,
    dataset: &str,
    base: &str,
    symbol: Option<&str>,
    (start, end): (i64, i64),
) -> Result<u64, Applying> {
    let query = |a: i64, b: i64| QuerySpec {
        dataset: dataset.to_string(),
        symbols: symbol.map(|s| vec![s.to_string()]).unwrap_or_default(),
        timeframe: base.to_string(),
        // The ends of time as open bounds (a trim's range starts at the first bar ever).
        start: (a != i64::MIN).then_some(TimeSpec::Nanos(a)),
        end: (b != i64::MAX).then_some(TimeSpec::Nanos(b)),
        ..Default::default()
    };
    let mut a = start;
    let mut rows = 0u64;
    // Whether the window before held no row (at the start too): then skip to the
    // primary's next bar in the range first, since a trim's range starts at the first bar
    // ever and a merged range may hold years without a row. After a window with rows the
    // next one is read at once (no second query per window).
    let mut skip = true;
    while a < end {
        if skip {
            let mut first = query(a, end);
            first.limit = Some(1);
            first.fields = Some(Vec::new());
            let Some(next) = client
                .bars(&first)
                .map_err(Applying::Remote)?
                .iter()
                .filter_map(super::dataset::oldest_ts)
                .min()
            else {
                break;
            };
            a = next;
        }
        let b = a.saturating_add(COPY_WINDOW_NS).min(end);
        let batches = client.bars(&query(a, b)).map_err(Applying::Remote)?;
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        if n > 0 {
            service.append_followed(dataset, &batches).map_err(|e| {
                Applying::Local(format!("storing the primary's rows here failed: {e}"))
            })?;
            rows += n as u64;
        }
        skip = n == 0;
        a = b;
    }
    Ok(rows)
}

/// Why applying the change log stopped.
#[derive(Debug)]
pub(super) enum Applying {
    /// The primary did not answer a copy.
    Remote(RemoteError),
    /// The local store refused.
    Local(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_when_they_overlap_or_are_close_and_stay_apart_otherwise() {
        let day = MERGE_GAP_NS;
        assert_eq!(
            merge(vec![
                (10 * day, 11 * day),
                (0, 1),
                (1, 5),
                (12 * day, 13 * day),
                (7, 7)
            ]),
            vec![(0, 5), (10 * day, 13 * day)]
        );
        assert_eq!(
            merge(vec![(i64::MIN, 5), (3, i64::MAX)]),
            vec![(i64::MIN, i64::MAX)]
        );
    }
}
