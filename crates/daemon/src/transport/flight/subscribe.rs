//! `DoGet` of a subscribe ticket, `{"subscribe": {"dataset", "timeframe", "start",
//! "symbols"?}}` (the protocol's [`ReplaySpec`], as the local `replay` sends it): the
//! stored bars from `start` (history), then every live batch of the topic, with the local
//! replay's seam (no gap, no duplicate).
//!
//! The same steps as a local `Client::replay`, inside the daemon: a reader joins the
//! topic ring first (so it holds every publication from now on), then the service's
//! `replay` answers the history as a result arena and the seam (the first topic seq the
//! history does not contain); the history streams like any query result, then the live
//! batches from the seam on, keeping only the subscription's symbols.
//!
//! Live batches are read on a thread of the subscription's own ([`crate::transport::live`]) and queued for the client
//! up to [`LIVE_BACKLOG`] messages. A client that falls that far behind is cut with
//! `RESOURCE_EXHAUSTED` saying so; so is one the ring laps. The topic ring never waits for
//! a remote subscriber, and neither does anyone else.

use super::status;
use crate::service::{ServiceError, Session};
use crate::transport::live::{self, Ended, Flow, Seen};
use arrow_flight::FlightData;
use futures::stream::BoxStream;
use futures::StreamExt;
use ringfeed_arrow::{Reader, StartAt};
use ringfeed_client::ReplaySpec;
use tokio::sync::mpsc::error::TrySendError;

/// The response metadata key of a subscription's history rows: what the stream sends
/// before its first live batch.
pub const HISTORY_ROWS_KEY: &str = ringfeed_client::protocol::HISTORY_ROWS_METADATA;

/// Live messages queued for a remote subscriber before it is cut: at most a topic
/// slot each (`[topics] slot_bytes`, 256 KiB by default), so ≤ 16 MiB a subscriber.
pub const LIVE_BACKLOG: usize = 64;

/// The history's result, attached, and the live part.
pub(super) struct Subscription {
    /// The stored bars from `start`.
    pub history: super::stream::OpenResult,
    /// Rows of the history (sent as [`HISTORY_ROWS_KEY`] response metadata: a
    /// follower's lag in rows while it catches up).
    pub history_rows: u64,
    /// The live reader, from the seam on.
    pub live: Live,
}

/// The live reader of a subscription, its seam and symbols.
pub(super) struct Live {
    reader: Reader,
    seam: u64,
    symbols: Vec<String>,
}

/// Joins the topic, then takes the history and the seam (blocking: run it on the
/// blocking pool).
pub(super) fn open(
    service: &crate::service::Service,
    spec: &ReplaySpec,
) -> Result<Subscription, ServiceError> {
    // As the local client does: one list, `*` for all (empty), for history and live.
    let symbols = ringfeed_client::protocol::symbol_list(&spec.symbols);
    let topic = service.subscribe(&spec.dataset, &spec.timeframe)?;
    // The live reader joins first: it holds every publication from the seam on.
    let live = Reader::open(&topic, StartAt::Next)
        .map_err(|e| ServiceError::ring(format!("joining the live topic {topic}: {e}")))?;
    let mut session: Session = service.session();
    let answer = service.replay(
        &ReplaySpec {
            symbols: symbols.clone(),
            ..spec.clone()
        },
        &mut session,
    )?;
    let history = super::stream::OpenResult::open(&answer.history)?;
    drop(session); // attached: the reader keeps the history
    Ok(Subscription {
        history_rows: answer.history.rows,
        history,
        live: Live {
            reader: live,
            seam: answer.seam,
            symbols,
        },
    })
}

/// The live part of a subscription as `FlightData` (record batch messages, no schema:
/// the history sent it), read on a thread of its own ([`crate::transport::live::pump`]).
pub(super) fn live(part: Live) -> BoxStream<'static, Result<FlightData, tonic::Status>> {
    let Live {
        reader,
        seam,
        symbols,
    } = part;
    let (tx, rx) = tokio::sync::mpsc::channel::<FlightData>(LIVE_BACKLOG);
    let generator = arrow_ipc::writer::IpcDataGenerator::default();
    let mut dictionaries = arrow_ipc::writer::DictionaryTracker::new(false);
    let options = ringfeed_arrow::codec::write_options();
    let mut context = arrow_ipc::writer::IpcWriteContext::default();
    let outcome = live::pump("ringfeedd-flight-sub", reader, seam, move |seen| {
        let b = match seen {
            Seen::Batch(b) => b,
            // Idle: go on while the client is there.
            Seen::Idle if tx.is_closed() => return Flow::Stop(Ended::Left),
            Seen::Idle => return Flow::Go,
            // A subscription has no gaps: cut, saying so (it subscribes again).
            Seen::Lost(_) => return Flow::Stop(Ended::Lapped),
        };
        let Some(b) = ringfeed_client::keep_symbols(b, &symbols) else {
            return Flow::Go;
        };
        let (dicts, batch) =
            match generator.encode(b.record_batch(), &mut dictionaries, &options, &mut context) {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "encoding a live batch for Flight failed");
                    return Flow::Stop(Ended::Failed);
                }
            };
        for m in dicts.into_iter().chain(std::iter::once(batch)) {
            match tx.try_send(FlightData::from(m)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Flow::Stop(Ended::Behind),
                Err(TrySendError::Closed(_)) => return Flow::Stop(Ended::Left),
            }
        }
        Flow::Go
    });
    futures::stream::unfold(Some(rx), move |rx| {
        let outcome = outcome.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(m) => Some((Ok(m), Some(rx))),
                None => {
                    let why = match outcome.get() {
                        Some(Ended::Behind) => tonic::Status::resource_exhausted(format!(
                            "the subscriber fell {LIVE_BACKLOG} messages behind the live topic and was cut, so that it holds no ring and no one waits for it; read faster, or subscribe again from the last ts it holds"
                        )),
                        Some(Ended::Lapped) => tonic::Status::resource_exhausted(
                            "the live topic ring lapped this subscription (it lost batches) and it was cut; subscribe again from the last ts it holds",
                        ),
                        Some(Ended::Closed) => tonic::Status::unavailable(
                            "the daemon closed the live topic (it is stopping); subscribe again once it is back",
                        ),
                        _ => status(ServiceError::internal(
                            "the subscription stopped inside the daemon (it is logged); subscribe again",
                        )),
                    };
                    Some((Err(why), None))
                }
            }
        }
    })
    .boxed()
}

/// `s` up to and including its first error.
pub(super) fn until_error<T: Send + 'static>(
    s: BoxStream<'static, Result<T, tonic::Status>>,
) -> BoxStream<'static, Result<T, tonic::Status>> {
    s.scan(false, |failed, item| {
        let out = if *failed {
            None
        } else {
            *failed = item.is_err();
            Some(item)
        };
        futures::future::ready(out)
    })
    .boxed()
}
