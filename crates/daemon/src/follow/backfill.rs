//! The chunked backfill: a follower far behind its primary copies the history in bounded
//! queries of about [`CHUNK_ROWS`] rows, fetched on a thread of their own while the
//! follower stores the one before, then subscribes from where the backfill ended.
//!
//! A subscription's history is built whole on the primary before its first row is sent (a
//! year of 1m bars: 0.85 s of 2.3 s, during which the follower idles), and the follower
//! then stores it while the primary idles. Chunks overlap the two: the primary answers
//! chunk k+1 while the follower stores chunk k.
//!
//! Each chunk asks only for the symbols that still need it (not held, or held only up to
//! before the chunk's end), so one symbol that stopped trading a month ago does not make
//! every symbol's month be sent again.

use super::held::Held;
use super::Primary;
use arrow_array::RecordBatch;
use ringfeed_client::{QuerySpec, TimeSpec};
use ringfeed_remote::{RemoteClient, RemoteError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Rows a chunk aims at (its time window adapts to the rows the last one held).
pub(super) const CHUNK_ROWS: usize = 128 << 10;

/// A follower behind its primary by more than this much bar time backfills in chunks;
/// closer, it subscribes from its resume point at once.
pub(super) const BACKFILL_ABOVE_NS: i64 = 86_400_000_000_000;

/// [`BACKFILL_ABOVE_NS`], or the seconds in `RINGFEED_FOLLOW_BACKFILL_ABOVE_SECS` (for
/// benchmarks, which compare the chunked backfill with a plain subscription in one
/// run; `never`: no backfill).
pub(super) fn backfill_above_ns() -> i64 {
    match std::env::var("RINGFEED_FOLLOW_BACKFILL_ABOVE_SECS").as_deref() {
        Ok("never") => i64::MAX,
        Ok(s) => s
            .parse::<i64>()
            .map_or(BACKFILL_ABOVE_NS, |secs| secs.saturating_mul(1_000_000_000)),
        Err(_) => BACKFILL_ABOVE_NS,
    }
}

/// The first chunk's window; later ones adapt to the rows per unit of bar time.
const FIRST_WINDOW_NS: i64 = 86_400_000_000_000;

/// Chunks fetched ahead of the one being stored.
const AHEAD: usize = 2;

/// One chunk: the primary's bars of a window.
pub(super) struct Chunk {
    pub batches: Vec<RecordBatch>,
}

/// The fetching thread and what it sends.
pub(super) struct Backfill {
    rx: Receiver<Result<Chunk, RemoteError>>,
    thread: Option<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
}

/// What the fetcher needs to know of the local copy: which symbols need the window
/// `[a, b)`.
struct Needs {
    /// Every symbol the primary listed.
    all: BTreeSet<String>,
    /// The newest held bar of each listed symbol (`None`: not held).
    newest: Vec<(String, Option<i64>)>,
}

impl Needs {
    /// The symbols a window ending at `b` must ask for: empty (every symbol, new ones
    /// too) when all of them need it.
    fn of_window(&self, b: i64) -> Option<Vec<String>> {
        let need: Vec<String> = self
            .newest
            .iter()
            .filter(|(_, n)| n.is_none_or(|n| n < b))
            .map(|(s, _)| s.clone())
            .collect();
        if need.is_empty() {
            None
        } else if need.len() == self.all.len() {
            Some(Vec::new())
        } else {
            Some(need)
        }
    }
}

impl Backfill {
    /// Starts fetching `[from, until)` of `dataset`'s base timeframe `base` for the
    /// listed `symbols`, on a connection of its own.
    pub(super) fn start(
        primary: Arc<Primary>,
        dataset: String,
        base: String,
        symbols: &BTreeSet<String>,
        held: &Held,
        (from, until): (i64, i64),
        stop: Arc<AtomicBool>,
    ) -> Backfill {
        let needs = Needs {
            all: symbols.clone(),
            newest: symbols
                .iter()
                .map(|s| (s.clone(), held.newest(s)))
                .collect(),
        };
        let (tx, rx) = sync_channel(AHEAD);
        let cancel = Arc::new(AtomicBool::new(false));
        let quit = cancel.clone();
        let thread = super::spawn("ringfeedd-backfill", move || {
            let mut client = match RemoteClient::connect(&primary.url, primary.options.clone()) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let (mut a, mut window) = (from, FIRST_WINDOW_NS);
            while a < until {
                if stop.load(Ordering::Relaxed) || quit.load(Ordering::Relaxed) {
                    return;
                }
                let b = a.saturating_add(window).min(until);
                let (batches, rows) = match needs.of_window(b) {
                    None => (Vec::new(), 0),
                    Some(symbols) => {
                        let q = QuerySpec {
                            dataset: dataset.clone(),
                            symbols,
                            timeframe: base.clone(),
                            start: Some(TimeSpec::Nanos(a)),
                            end: Some(TimeSpec::Nanos(b)),
                            ..Default::default()
                        };
                        let t = std::time::Instant::now();
                        match client.bars(&q) {
                            Ok(batches) => {
                                let rows = batches.iter().map(RecordBatch::num_rows).sum();
                                tracing::debug!(
                                    rows,
                                    batches = batches.len(),
                                    ms = t.elapsed().as_millis() as u64,
                                    "backfill chunk fetched"
                                );
                                (batches, rows)
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                };
                window = next_window(window, rows);
                if tx.send(Ok(Chunk { batches })).is_err() {
                    return; // the follower went on without it
                }
                a = b;
            }
        });
        Backfill {
            rx,
            thread: Some(thread),
            cancel,
        }
    }

    /// The next chunk, `None` once `until` is reached.
    pub(super) fn next(&mut self) -> Option<Result<Chunk, RemoteError>> {
        self.rx.recv().ok()
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        // The fetcher stops before its next query, or at its next send (the receiver is
        // gone); a query in flight finishes first.
        self.cancel.store(true, Ordering::Relaxed);
        drop(std::mem::replace(&mut self.rx, sync_channel(0).1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The window after one of `window` ns held `rows`: scaled towards [`CHUNK_ROWS`], at
/// most 4x either way per step, between a minute and a year.
fn next_window(window: i64, rows: usize) -> i64 {
    const MIN: i64 = 60_000_000_000;
    const MAX: i64 = 366 * 86_400_000_000_000;
    let scaled = if rows == 0 {
        window.saturating_mul(4)
    } else {
        let f = (CHUNK_ROWS as f64 / rows as f64).clamp(0.25, 4.0);
        (window as f64 * f) as i64
    };
    scaled.clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_adapt_to_the_rows_and_stay_bounded() {
        let day = 86_400_000_000_000;
        assert_eq!(next_window(day, CHUNK_ROWS), day);
        assert_eq!(next_window(day, 0), 4 * day);
        assert_eq!(next_window(day, CHUNK_ROWS * 100), day / 4);
        assert_eq!(next_window(366 * day, 0), 366 * day);
        assert_eq!(next_window(60_000_000_000, usize::MAX), 60_000_000_000);
    }

    #[test]
    fn a_window_asks_for_the_symbols_that_need_it() {
        let needs = Needs {
            all: ["A", "B", "C"].map(String::from).into(),
            newest: vec![
                ("A".into(), Some(100)),
                ("B".into(), Some(500)),
                ("C".into(), None),
            ],
        };
        assert_eq!(needs.of_window(50), Some(vec!["C".to_string()]));
        assert_eq!(
            needs.of_window(200),
            Some(vec!["A".to_string(), "C".to_string()])
        );
        assert_eq!(needs.of_window(600), Some(Vec::new()), "all: every symbol");
        let held = Needs {
            all: ["A"].map(String::from).into(),
            newest: vec![("A".into(), Some(100))],
        };
        assert_eq!(held.of_window(100), None);
    }
}
