//! The live read loop of the network faces (a Flight subscription, the websocket hub):
//! a topic reader on a thread of its own hands each batch from the seam on to a sink,
//! which queues it for its clients without ever waiting for them. The loop ends when
//! the sink says so (its clients left, or one fell too far behind), when the ring laps
//! the reader, or when the topic closes; [`Outcome`] tells which, and is set before
//! the sink (and so any channel sender it owns) is dropped, so a client that sees its
//! channel end can read why.

use ringfeed_arrow::{Batch, ReadError, Reader};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one read waits before the sink is asked whether to go on.
pub const POLL: Duration = Duration::from_millis(200);

/// Why a live read loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ended {
    /// Its clients left.
    Left = 1,
    /// A client fell behind by the face's bound and was cut.
    Behind = 2,
    /// The ring lapped the reader: it lost batches.
    Lapped = 3,
    /// The topic closed (the daemon stops, or the dataset was dropped).
    Closed = 4,
    /// A read or an encode failed (logged).
    Failed = 5,
}

/// What the reader saw, as the sink gets it.
pub enum Seen {
    /// The next batch.
    Batch(Batch),
    /// Nothing within [`POLL`].
    Idle,
    /// The ring lapped the reader: this many batches were overwritten before it read them;
    /// it goes on from the oldest one left. A sink that cannot lose batches stops
    /// ([`Ended::Lapped`]); one that serves a stream with gaps tells its clients.
    Lost(u64),
}

/// What the sink says after a batch or an idle poll.
pub enum Flow {
    /// Read on.
    Go,
    /// Stop the loop, for this reason.
    Stop(Ended),
}

/// The outcome of a loop, once it ended.
#[derive(Clone, Default)]
pub struct Outcome(Arc<AtomicU8>);

impl Outcome {
    /// `None` while the loop runs.
    pub fn get(&self) -> Option<Ended> {
        // SYNC POINT: live-outcome. Pairs with the Release store in `set`, which comes
        // before the sink (and its senders) is dropped.
        Some(match self.0.load(Ordering::Acquire) {
            1 => Ended::Left,
            2 => Ended::Behind,
            3 => Ended::Lapped,
            4 => Ended::Closed,
            5 => Ended::Failed,
            _ => return None,
        })
    }

    fn set(&self, e: Ended) {
        // SYNC POINT: live-outcome (see `get`).
        self.0.store(e as u8, Ordering::Release);
    }
}

/// Reads `reader` on a thread named `name`, skipping batches before `seam`, and hands
/// what it sees ([`Seen`]: each batch, each idle poll, each loss to the ring) to `sink`
/// until it says stop or the reader ends.
pub fn pump<S>(name: &str, mut reader: Reader, seam: u64, mut sink: S) -> Outcome
where
    S: FnMut(Seen) -> Flow + Send + 'static,
{
    let outcome = Outcome::default();
    let out = outcome.clone();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let why = loop {
                let flow = match reader.read(POLL) {
                    Ok(Some(b)) if b.seq() < seam => continue, // in the history already
                    Ok(Some(b)) => sink(Seen::Batch(b)),
                    Ok(None) => sink(Seen::Idle),
                    Err(ReadError::Lagged { missed }) => sink(Seen::Lost(missed)),
                    Err(ReadError::Closed { .. }) => Flow::Stop(Ended::Closed),
                    Err(e) => {
                        tracing::error!(error = %e, "a live topic read failed");
                        Flow::Stop(Ended::Failed)
                    }
                };
                if let Flow::Stop(why) = flow {
                    break why;
                }
            };
            out.set(why);
            drop(sink);
        });
    if let Err(e) = spawned {
        outcome.set(Ended::Failed);
        tracing::error!(error = %e, name, "cannot start a live reader thread");
    }
    outcome
}
