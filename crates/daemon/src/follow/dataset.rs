//! The follower of one dataset: connect, make the local copy, subscribe from the newest
//! stored bar, append what arrives; on any failure wait (backoff) and start over.

use super::backfill::{backfill_above_ns, Backfill};
use super::backoff::Backoff;
use super::changes::{self, Applying, Cursor, Pending};
use super::held::Held;
use super::{sleep_unless_stopped, Primary};
use crate::service::{write_down_boundary, Service};
use arrow_array::RecordBatch;
use ringfeed_client::TimeSpec;
use ringfeed_remote::{RemoteClient, RemoteError, RemoteReplay};
use ringfeed_store::DatasetConfig;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a connected follower asks the primary how far its data goes (for the lag;
/// the rows it receives say so too). The primary's `ready` reads the first and last hot
/// day of each timeframe: not free on a primary with many symbols.
const POLL_PRIMARY_EVERY: Duration = Duration::from_secs(10);

/// How often a connected follower asks for the primary's change log (a removal reaches
/// it within this, plus a resubscription).
const POLL_CHANGES_EVERY: Duration = Duration::from_secs(1);

/// Rows appended at once when the primary sent several batches before the follower
/// took them (catch-up): fewer, larger appends.
const COALESCE_ROWS: usize = 256 << 10;

/// A history at least this long is written down to Parquet once stored (a year caught
/// up would otherwise sit in the hot tier until the next end-of-day pass).
const WRITE_DOWN_AFTER_ROWS: u64 = 100_000;

/// Why a subscription ended, as the follower acts on it.
#[derive(Debug)]
enum Ended {
    /// The daemon is stopping.
    Stopped,
    /// The primary is unreachable, cut the subscription, or restarted: reconnect. The
    /// first part says which (it is what "a change of state" means for the log).
    Down(&'static str, String),
    /// The primary refuses this follower the dataset, or its settings differ from the
    /// local copy's: an operator must act; retried at the longest delay.
    Refused(String),
    /// The primary gained symbols between the listing and the subscription: start over
    /// at once, from their first bars.
    Resubscribe,
}

/// Follows one dataset until the daemon stops.
pub(super) struct Follower {
    service: Arc<Service>,
    primary: Arc<Primary>,
    dataset: String,
    stop: Arc<AtomicBool>,
    /// A write-down of caught-up history is running.
    writing_down: Arc<AtomicBool>,
    /// How far the primary's change log is applied here (kept on disk).
    cursor: RefCell<Cursor>,
}

impl Follower {
    /// Starts the follower's thread.
    pub(super) fn spawn(
        service: Arc<Service>,
        primary: Arc<Primary>,
        dataset: String,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let cursor = RefCell::new(Cursor::load(&service, &dataset));
        let f = Follower {
            service,
            primary,
            dataset,
            stop,
            writing_down: Arc::new(AtomicBool::new(false)),
            cursor,
        };
        super::spawn("ringfeedd-follow", move || f.run())
    }

    fn run(self) {
        let mut backoff = Backoff::default();
        // What was last logged, so each state change is logged once.
        let mut logged: Option<String> = None;
        // Whether a subscription ended or failed to open since the last one opened.
        let mut failed = false;
        let mut opened = 0u64;
        loop {
            let ended = self.follow_once(&mut opened, &mut failed, &mut backoff, &mut logged);
            self.service
                .update_follow(&self.dataset, |s| s.connected = false);
            let wait = match ended {
                Ended::Stopped => return,
                Ended::Resubscribe => continue,
                Ended::Down(kind, why) => {
                    failed = true;
                    let key = format!("down: {kind}");
                    if logged.as_deref() != Some(key.as_str()) {
                        tracing::warn!(dataset = %self.dataset, primary = %self.primary.url, error = %why, "not following: the primary is unreachable or ended the subscription; serving what is stored, reconnecting with backoff (logged again when this changes)");
                        logged = Some(key);
                    }
                    self.service.update_follow(&self.dataset, |s| {
                        s.last_error = Some(why.clone());
                        s.refused = None;
                    });
                    backoff.next_delay()
                }
                Ended::Refused(why) => {
                    failed = true;
                    let key = format!("refused: {why}");
                    if logged.as_deref() != Some(key.as_str()) {
                        tracing::error!(dataset = %self.dataset, primary = %self.primary.url, "not following: {why}");
                        logged = Some(key);
                    }
                    self.service
                        .update_follow(&self.dataset, |s| s.refused = Some(why.clone()));
                    Backoff::MAX
                }
            };
            if !sleep_unless_stopped(wait, &self.stop) {
                return;
            }
        }
    }

    /// One subscription, from connecting to its end.
    fn follow_once(
        &self,
        opened: &mut u64,
        failed: &mut bool,
        backoff: &mut Backoff,
        logged: &mut Option<String>,
    ) -> Ended {
        if self.stop.load(Ordering::Relaxed) {
            return Ended::Stopped;
        }
        let d = self.dataset.as_str();
        let t0 = Instant::now();
        let mut client =
            match RemoteClient::connect(&self.primary.url, self.primary.options.clone()) {
                Ok(c) => c,
                Err(e) => return classify(d, e),
            };
        let before = match self.primary_dataset(&mut client) {
            Ok(x) => x,
            Err(e) => return e,
        };
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            "connected, listed"
        );
        if let Err(e) = self.local_copy(&before.config) {
            return e;
        }
        let base = before.config.base.to_string();
        // What the primary changed below the resume point since the last connection.
        if let Err(e) = self.apply_changes(&mut client, &base) {
            return e;
        }
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            "changes applied"
        );
        let held = match self
            .service
            .held_tail(d)
            .map_err(|e| e.to_string())
            .and_then(Held::new)
        {
            Ok(h) => h,
            Err(e) => return Ended::Down("local", format!("reading the local copy: {e}")),
        };
        // Resume from the oldest of the newest bars of the primary's symbols, inclusive;
        // a symbol not held here yet: from the start.
        let from = held.resume_point(&before.symbols);
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            "resume point found"
        );
        if std::mem::take(failed) {
            self.service.update_follow(d, |s| s.reconnects += 1);
        }
        *opened += 1;
        self.service.update_follow(d, |s| {
            s.connected = true;
            s.refused = None;
            s.last_error = None;
            s.local_last_ts = held.newest_overall();
        });
        if logged.take().is_some() || *opened == 1 {
            tracing::info!(
                dataset = d,
                primary = %self.primary.url,
                from = %ringfeed_client::time::iso(from),
                "following: catching up from the newest stored bar, then live"
            );
        }
        // Far behind: copy the history in chunks first, then subscribe from its end.
        let mut backfilled = 0;
        // Asked only when the resume point may be that far behind: more than that behind
        // the wall clock, and behind the primary's newest bar as last seen (a follower
        // cut off for a while, or subscribing again after a removal, need not ask).
        let above = backfill_above_ns();
        let seen = self.service.follow_state(d).and_then(|s| s.primary_last_ts);
        let far = ringfeed_client::time::now_ns().saturating_sub(from) > above
            && seen.is_none_or(|last| last.saturating_sub(from) > above);
        let primary = if far {
            self.poll_primary(&mut client)
        } else {
            None
        };
        let start = match primary {
            Some((first, until)) if until.saturating_sub(from) > above => {
                // Not before the primary's first bar (a new follower's resume point is 0).
                let from = from.max(first.unwrap_or(from));
                match self.backfill(&before.symbols, &held, (from, until), &base, backoff) {
                    Ok(rows) => backfilled = rows,
                    Err(e) => return e,
                }
                until
            }
            _ => from,
        };
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            "polled the primary"
        );
        let mut replay = match client.replay(d, &base, TimeSpec::Nanos(start), &[]) {
            Ok(r) => r,
            Err(e) => return classify(d, e),
        };
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            "replay opened"
        );
        // Symbols that appeared on the primary between the listing and the subscription
        // may hold bars before `start`: start over, from their first bars.
        match self.primary_dataset(&mut client) {
            Ok(after) => {
                let new: Vec<&String> = after
                    .symbols
                    .difference(&before.symbols)
                    .filter(|s| !held.holds(s))
                    .collect();
                if !new.is_empty() {
                    tracing::info!(dataset = d, symbols = ?new, "the primary gained symbols while subscribing; subscribing again from their first bars");
                    return Ended::Resubscribe;
                }
            }
            Err(e) => return e,
        }
        // What the primary changed while the subscription opened: a removal may be in
        // its history already, so start over; corrections are copied.
        let since = self.cursor.borrow().next_seq;
        if let Err(e) = self
            .changes_unless_removed(&mut client, since, "while this follower subscribed")
            .and_then(|p| self.apply_pending(&mut client, &base, &p))
        {
            return e;
        }
        let history = replay.history_rows().unwrap_or(0);
        tracing::debug!(
            dataset = d,
            ms = t0.elapsed().as_millis() as u64,
            history,
            "subscribed"
        );
        self.service
            .update_follow(d, |s| s.history_rows_left = history);
        self.stream(
            &mut client,
            &mut replay,
            (history, backfilled),
            &held,
            backoff,
        )
    }

    /// Applies the primary's change log since the cursor ([`changes`], step 1). A log
    /// made again (the primary's dataset dropped and created) empties the local copy
    /// first.
    fn apply_changes(&self, client: &mut RemoteClient, base: &str) -> Result<(), Ended> {
        let d = self.dataset.as_str();
        let since = self.cursor.borrow().next_seq;
        let p = changes::fetch(client, d, since).map_err(|e| classify(d, e))?;
        let known = self.cursor.borrow().log_id.clone();
        if known.as_ref().is_some_and(|id| *id != p.log_id) {
            tracing::warn!(dataset = d, primary = %self.primary.url, "the primary's change log of this dataset is a new one (its dataset was dropped and made again): emptying the local copy and copying everything again");
            self.service
                .trim_followed(d, None, i64::MAX)
                .map_err(|e| Ended::Down("local", format!("emptying the local copy: {e}")))?;
            self.keep_cursor(Cursor {
                primary: self.primary.url.clone(),
                log_id: Some(p.log_id),
                next_seq: 0,
            })?;
            return Err(Ended::Resubscribe);
        }
        self.apply_pending(client, base, &p)
    }

    /// The primary's change log from `since` on, unless it asks this follower to start
    /// over ([`Ended::Resubscribe`]): a new log, or a removal (`when` says when, for the
    /// log), which the resubscription applies before it resumes.
    fn changes_unless_removed(
        &self,
        client: &mut RemoteClient,
        since: u64,
        when: &str,
    ) -> Result<Pending, Ended> {
        let d = self.dataset.as_str();
        let p = changes::fetch(client, d, since).map_err(|e| classify(d, e))?;
        if Some(&p.log_id) != self.cursor.borrow().log_id.as_ref() {
            return Err(Ended::Resubscribe);
        }
        if p.removes_rows() {
            tracing::info!(
                dataset = d,
                "the primary removed rows {when}; applying that and subscribing again"
            );
            return Err(Ended::Resubscribe);
        }
        Ok(p)
    }

    /// Applies entries fetched from the cursor on, then moves the cursor past them.
    fn apply_pending(
        &self,
        client: &mut RemoteClient,
        base: &str,
        p: &Pending,
    ) -> Result<(), Ended> {
        let d = self.dataset.as_str();
        if p.entries > 0 {
            let t = Instant::now();
            let rows = changes::apply(&self.service, client, d, base, p).map_err(|e| match e {
                Applying::Remote(e) => classify(d, e),
                Applying::Local(why) => Ended::Down("local", why),
            })?;
            tracing::info!(
                dataset = d,
                entries = p.entries,
                removals = p.removes.len(),
                rows_copied = rows,
                ms = t.elapsed().as_millis() as u64,
                "applied the primary's change log (deletes, trims, corrections below the newest bars)"
            );
            self.service
                .update_follow(d, |s| s.changes_applied += p.entries);
        }
        self.keep_cursor(Cursor {
            primary: self.primary.url.clone(),
            log_id: Some(p.log_id.clone()),
            next_seq: p.next_seq,
        })
    }

    /// Keeps `c` on disk (when it moved) and here.
    fn keep_cursor(&self, c: Cursor) -> Result<(), Ended> {
        if *self.cursor.borrow() != c {
            c.save(&self.service, &self.dataset)
                .map_err(|e| Ended::Down("local", e))?;
            *self.cursor.borrow_mut() = c;
        }
        Ok(())
    }

    /// Copies `[from, until)` in chunks ([`Backfill`]); the rows stored.
    fn backfill(
        &self,
        symbols: &BTreeSet<String>,
        held: &Held,
        range: (i64, i64),
        base: &str,
        backoff: &mut Backoff,
    ) -> Result<u64, Ended> {
        let d = self.dataset.as_str();
        let t = Instant::now();
        let mut fetch = Backfill::start(
            self.primary.clone(),
            d.to_string(),
            base.to_string(),
            symbols,
            held,
            range,
            self.stop.clone(),
        );
        let mut stored = 0u64;
        let (mut waited, mut storing) = (Duration::ZERO, Duration::ZERO);
        loop {
            let w = Instant::now();
            let Some(chunk) = fetch.next() else { break };
            waited += w.elapsed();
            let s = Instant::now();
            let chunk = chunk.map_err(|e| classify(d, e))?;
            let mut kept = Vec::with_capacity(chunk.batches.len());
            for b in &chunk.batches {
                if let Some(k) = held.drop_held(b).map_err(|e| Ended::Down("failed", e))? {
                    kept.push(k);
                }
            }
            let rows = self.store_rows(&kept)?;
            storing += s.elapsed();
            backoff.reset();
            stored += rows;
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(Ended::Stopped);
        }
        tracing::info!(
            dataset = d,
            rows = stored,
            secs = format!("{:.2}", t.elapsed().as_secs_f64()),
            waiting_for_the_primary_secs = format!("{:.2}", waited.as_secs_f64()),
            storing_secs = format!("{:.2}", storing.as_secs_f64()),
            "backfilled the primary's history in chunks; subscribing from its end"
        );
        Ok(stored)
    }

    /// Appends rows the primary sent; the rows stored.
    fn store_rows(&self, batches: &[RecordBatch]) -> Result<u64, Ended> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows == 0 {
            return Ok(0);
        }
        if let Err(e) = self.service.append_followed(&self.dataset, batches) {
            // The local store refused (a full disk, a read-only store): nothing of
            // this append is stored; subscribe again from what is.
            return Err(Ended::Down(
                "local",
                format!("storing the primary's rows here failed: {e}"),
            ));
        }
        let newest = batches.iter().filter_map(newest_ts).max();
        self.service.update_follow(&self.dataset, |s| {
            s.rows += rows as u64;
            s.local_last_ts = s.local_last_ts.max(newest);
            s.primary_last_ts = s.primary_last_ts.max(newest);
        });
        Ok(rows as u64)
    }

    /// Appends what the subscription sends until it ends. The first `history` rows are
    /// its history: rows held already are dropped from them ([`Held::drop_held`]).
    fn stream(
        &self,
        client: &mut RemoteClient,
        replay: &mut RemoteReplay,
        (history, backfilled): (u64, u64),
        held: &Held,
        backoff: &mut Backoff,
    ) -> Ended {
        let d = self.dataset.as_str();
        let mut history_left = history;
        // The first lag poll soon after subscribing, then every POLL_PRIMARY_EVERY.
        let mut polled = Instant::now() - POLL_PRIMARY_EVERY + POLL_CHANGES_EVERY;
        let mut polled_changes = Instant::now();
        let mut polled_to = self.cursor.borrow().next_seq;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ended::Stopped;
            }
            if polled.elapsed() >= POLL_PRIMARY_EVERY {
                polled = Instant::now();
                self.poll_primary(client);
            }
            if polled_changes.elapsed() >= POLL_CHANGES_EVERY {
                polled_changes = Instant::now();
                // A removal on the primary: start over (corrections come with the live rows).
                match self.changes_unless_removed(client, polled_to, "while following live") {
                    Err(e) => return e,
                    Ok(p) => polled_to = p.next_seq,
                }
            }
            let first = match replay.read(Duration::from_millis(200)) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => return classify(d, e),
            };
            // Batches already here go in the same append.
            let mut batches = vec![first];
            let mut rows = batches[0].num_rows();
            let mut ended = None;
            while rows < COALESCE_ROWS {
                match replay.try_read() {
                    Ok(Some(b)) => {
                        rows += b.num_rows();
                        batches.push(b);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        ended = Some(classify(d, e));
                        break;
                    }
                }
            }
            let was_catching_up = history_left > 0;
            let batches = match split_history(batches, &mut history_left, held) {
                Ok(b) => b,
                Err(e) => return Ended::Down("failed", e),
            };
            if let Err(e) = self.store_rows(&batches) {
                return e;
            }
            backoff.reset();
            self.service
                .update_follow(d, |s| s.history_rows_left = history_left);
            if was_catching_up && history_left == 0 {
                tracing::info!(
                    dataset = d,
                    rows = history,
                    "caught up with the primary's history; following live"
                );
            }
            if was_catching_up && history_left == 0 && history + backfilled >= WRITE_DOWN_AFTER_ROWS
            {
                self.write_down_caught_up();
            }
            if let Some(e) = ended {
                return e;
            }
        }
    }

    /// The primary's oldest and newest base bars, for the lag and the backfill (a
    /// failure shows in the stream).
    fn poll_primary(&self, client: &mut RemoteClient) -> Option<(Option<i64>, i64)> {
        let report = client.ready(Some(&self.dataset)).ok()?;
        let base = self
            .service
            .dataset_settings(&self.dataset)
            .map(|c| c.base.to_string());
        let tf = report
            .datasets
            .iter()
            .filter(|r| r.dataset == self.dataset)
            .flat_map(|r| r.timeframes.iter())
            .find(|t| Some(&t.timeframe) == base.as_ref())?;
        let last = tf.last_ts;
        self.service.update_follow(&self.dataset, |s| {
            s.primary_last_ts = s.primary_last_ts.max(last);
        });
        Some((tf.first_ts, last?))
    }

    /// Moves the caught-up days to Parquet on a thread of its own (the stream goes on).
    fn write_down_caught_up(&self) {
        let Some(delay) = self.service.config().write_down_delay else {
            return;
        };
        if self.writing_down.swap(true, Ordering::AcqRel) {
            return; // SYNC POINT: one write-down at a time; released below
        }
        let (service, dataset, flag) = (
            self.service.clone(),
            self.dataset.clone(),
            self.writing_down.clone(),
        );
        super::spawn("ringfeedd-follow-wd", move || {
            let before = write_down_boundary(ringfeed_client::time::now_ns(), delay);
            if let Err(e) = service.write_down_before(Some(&dataset), before) {
                tracing::warn!(dataset, error = %e, "writing down the caught-up days failed; the end-of-day pass retries");
            }
            flag.store(false, Ordering::Release); // SYNC POINT: pairs with the swap above
        });
    }

    /// The primary's settings and symbols of the dataset; why not, if it will not say.
    fn primary_dataset(&self, client: &mut RemoteClient) -> Result<PrimaryDataset, Ended> {
        let d = self.dataset.as_str();
        let listing = client.datasets().map_err(|e| classify(d, e))?;
        let Some(entry) = listing.get(d) else {
            // Not listed: not there, or not readable with this token. The subscription
            // says which.
            return Err(match client.replay(d, "1m", TimeSpec::Nanos(0), &[]) {
                Err(e) => classify(d, e),
                Ok(_) => Ended::Refused(format!(
                    "the primary does not list dataset {d:?} to this follower's token; give the token read scope on it"
                )),
            });
        };
        let config: DatasetConfig = serde_json::from_value(entry["config"].clone()).map_err(|e| {
            Ended::Refused(format!(
                "the primary's datasets answer has no readable settings for {d:?} ({e}): it may be an older ringfeedd; upgrade it"
            ))
        })?;
        let symbols = entry["symbols"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        Ok(PrimaryDataset { config, symbols })
    }

    /// Creates the local copy with the primary's settings, or checks the one there.
    fn local_copy(&self, primary: &DatasetConfig) -> Result<(), Ended> {
        let d = self.dataset.as_str();
        match self.service.dataset_settings(d) {
            None => self
                .service
                .create_dataset_with(d, primary.clone())
                .map(|_| ())
                .map_err(|e| Ended::Down("local", format!("creating the local copy: {e}"))),
            Some(local) if same_bars(&local, primary) => Ok(()),
            Some(local) => Err(Ended::Refused(format!(
                "the local dataset {d:?} is stored as {} with rollups {:?}, session {:?}, week start {:?}; the primary's is {} with rollups {:?}, session {:?}, week start {:?}: the follower's bars would differ. Move the local copy away (or drop it with the daemon stopped) so the follower makes a new one",
                local.base, local.rollups.iter().map(ToString::to_string).collect::<Vec<_>>(), local.session, local.week_start,
                primary.base, primary.rollups.iter().map(ToString::to_string).collect::<Vec<_>>(), primary.session, primary.week_start,
            ))),
        }
    }
}

/// What the primary says of the dataset.
struct PrimaryDataset {
    config: DatasetConfig,
    symbols: BTreeSet<String>,
}

/// Whether two settings make the same bars (fsync and retention are each host's own).
fn same_bars(a: &DatasetConfig, b: &DatasetConfig) -> bool {
    a.base == b.base
        && a.rollups == b.rollups
        && a.session == b.session
        && a.week_start == b.week_start
}

/// What the follower does after `e`.
fn classify(dataset: &str, e: RemoteError) -> Ended {
    use tonic::Code;
    match e {
        RemoteError::Status { code, message, .. } => match code {
            Code::PermissionDenied | Code::Unauthenticated => Ended::Refused(format!(
                "the primary refused to let this follower read dataset {dataset:?} ({code:?}: {message}); give its token read scope on it"
            )),
            Code::NotFound => Ended::Refused(format!(
                "the primary has no dataset {dataset:?} ({message}); create it there, or stop following it"
            )),
            Code::InvalidArgument if message.contains("unknown action \"changes\"") => {
                Ended::Refused(format!(
                    "the primary keeps no change log (it is an older ringfeedd: {message}); upgrade it, so that its deletes and corrections reach this follower"
                ))
            }
            Code::Unavailable => Ended::Down("unreachable", format!("{code:?}: {message}")),
            Code::ResourceExhausted => Ended::Down("cut", format!("{code:?}: {message}")),
            _ => Ended::Down("failed", format!("{code:?}: {message}")),
        },
        e @ RemoteError::Connect { .. } => Ended::Down("unreachable", e.to_string()),
        other => Ended::Down("failed", other.to_string()),
    }
}

/// The batches of a read with the history rows held already dropped: the first
/// `history_left` rows (counted down here) are history, the rest live and kept whole.
fn split_history(
    batches: Vec<RecordBatch>,
    history_left: &mut u64,
    held: &Held,
) -> Result<Vec<RecordBatch>, String> {
    if *history_left == 0 {
        return Ok(batches);
    }
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let n = b.num_rows();
        let head = (*history_left).min(n as u64) as usize;
        *history_left -= head as u64;
        if head > 0 {
            out.extend(held.drop_held(&b.slice(0, head))?);
        }
        if head < n {
            out.push(b.slice(head, n - head));
        }
    }
    Ok(out)
}

/// The newest `ts` of a batch of bars.
fn newest_ts(b: &RecordBatch) -> Option<i64> {
    ts_values(b)?.max()
}

/// The oldest `ts` of a batch of bars.
pub(super) fn oldest_ts(b: &RecordBatch) -> Option<i64> {
    ts_values(b)?.min()
}

fn ts_values(b: &RecordBatch) -> Option<impl Iterator<Item = i64> + '_> {
    use arrow_array::cast::AsArray;
    Some(
        b.column_by_name("ts")?
            .as_primitive_opt::<arrow_array::types::TimestampNanosecondType>()?
            .iter()
            .flatten(),
    )
}
