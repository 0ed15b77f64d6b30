//! A query's result arena as a `DoGet` stream. The result cache holds each
//! result as Arrow IPC messages in the slots of a shared-memory arena (the
//! ones local readers map); this face attaches a reader to that arena and
//! sends each slot's messages as `FlightData` as they lie there: the
//! flatbuffer header and the body are views of the leased slot, not a
//! decode and a second encode. (gRPC still copies them into its frames.)
//!
//! The stream holds its reader (which keeps the cache from evicting the
//! result) and its boundary slot in a producer task that hands messages
//! over a small channel: a client that disconnects ends the task at its
//! next send, and one that stops taking messages for the request timeout
//! is cut, so neither holds a result or a slot for long.

use super::status;
use crate::service::{ResultArena, ServiceError};
use crate::transport::{Boundary, ConnectionSlot};
use arrow_flight::{FlightData, SchemaAsIpc};
use arrow_ipc::MessageHeader;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use ringfeed_shm::{Lease, ReaderOptions, RingReader, StartAt};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::SendTimeoutError;

/// Messages queued ahead of the client: enough to keep gRPC busy, few
/// enough that a stalled client pins only a couple of slots.
const AHEAD: usize = 2;

/// An attached result: its reader, schema and the service's answer.
pub(super) struct OpenResult {
    reader: RingReader,
    schema: SchemaRef,
    answer: ResultArena,
}

impl OpenResult {
    /// Attaches to the arena of `answer` from its first batch. Once attached,
    /// the cache keeps the result until the reader is dropped, so the
    /// caller's session may release it at once (as a local client does).
    pub(super) fn open(answer: &ResultArena) -> Result<Self, ServiceError> {
        let opts = ReaderOptions {
            start: StartAt::Oldest,
            ..Default::default()
        };
        let reader = RingReader::open_with(&answer.arena, opts).map_err(|e| {
            use ringfeed_shm::OpenError as E;
            match e {
                // Every reader row of the result is taken (many streams of one query).
                E::ReaderTableFull { .. } => ServiceError::new(
                    crate::service::ErrorKind::Busy,
                    format!("{e}: too many streams read this result at once; retry shortly"),
                ),
                e => ServiceError::ring(format!("attaching to the query result: {e}")),
            }
        })?;
        let schema = ringfeed_arrow::codec::decode_schema(&reader.meta())
            .map_err(|e| ServiceError::internal(format!("the result's schema: {e}")))?;
        Ok(Self {
            reader,
            schema: Arc::new(schema),
            answer: answer.clone(),
        })
    }

    /// The result's schema.
    pub(super) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The service's answer: arena, batches, rows, bytes.
    pub(super) fn answer(&self) -> &ResultArena {
        &self.answer
    }
}

/// A part of a leased slot, as bytes gRPC can send without a copy of ours.
struct SlotPart {
    lease: Arc<Lease>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for SlotPart {
    fn as_ref(&self) -> &[u8] {
        &self.lease.bytes()[self.range.clone()]
    }
}

fn part(lease: &Arc<Lease>, range: std::ops::Range<usize>) -> Bytes {
    Bytes::from_owner(SlotPart {
        lease: lease.clone(),
        range,
    })
}

/// The messages of one slot after the schema: its dictionary batches and
/// its record batch, each with its header and body as views of the slot.
fn slot_messages(lease: Lease) -> Result<Vec<FlightData>, ServiceError> {
    let seq = lease.seq();
    if lease.user() != ringfeed_arrow::FORMAT_ARROW_IPC_V1 {
        return Err(ServiceError::internal(format!(
            "result batch {seq} is not Arrow IPC v1 (format {:#x})",
            lease.user()
        )));
    }
    let frames = ringfeed_arrow::codec::frames(lease.bytes())
        .map_err(|e| ServiceError::internal(format!("result batch {seq}: {}", e.0)))?;
    let lease = Arc::new(lease);
    Ok(frames
        .into_iter()
        .filter(|f| f.header != MessageHeader::Schema)
        .map(|f| {
            // `meta_len` counts the 8-byte prefix; Flight carries the
            // flatbuffer (with its padding) and the body apart.
            let body = f.offset + f.meta_len;
            FlightData {
                data_header: part(&lease, f.offset + 8..body),
                data_body: part(&lease, body..body + f.body_len),
                ..Default::default()
            }
        })
        .collect())
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const TIMED_OUT: u8 = 2;

/// Streams `result`: its schema, then every batch. `slot` is the call's
/// boundary slot, held (busy) until the stream ends.
pub(super) fn flight_data(
    result: OpenResult,
    slot: ConnectionSlot,
    boundary: Arc<Boundary>,
) -> BoxStream<'static, Result<FlightData, tonic::Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
    let outcome = Arc::new(AtomicU8::new(RUNNING));
    let take_within = boundary.limits().request_timeout;
    tokio::spawn(produce(
        result,
        slot,
        boundary,
        tx,
        outcome.clone(),
        take_within,
    ));
    futures::stream::unfold(Some(rx), move |rx| {
        let outcome = outcome.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                // The producer is gone: the stream ends cleanly only if it
                // finished; a stream cut short must not look complete.
                None => match outcome.load(Ordering::Acquire) {
                    DONE => None,
                    TIMED_OUT => Some((
                        Err(tonic::Status::deadline_exceeded(format!(
                            "the client took no data for {take_within:?} (request_timeout): the stream was cut; read it faster, or raise request_timeout"
                        ))),
                        None,
                    )),
                    _ => Some((
                        Err(status(ServiceError::internal(
                            "the stream stopped inside the daemon (it is logged, please report it); retry the call",
                        ))),
                        None,
                    )),
                },
            }
        }
    })
    .boxed()
}

async fn produce(
    mut result: OpenResult,
    slot: ConnectionSlot,
    boundary: Arc<Boundary>,
    tx: tokio::sync::mpsc::Sender<Result<FlightData, tonic::Status>>,
    outcome: Arc<AtomicU8>,
    take_within: Duration,
) {
    slot.busy(true);
    let send = |item| {
        let tx = tx.clone();
        async move {
            match tx.send_timeout(item, take_within).await {
                Ok(()) => Ok(()),
                Err(SendTimeoutError::Timeout(_)) => Err(true),
                // The client went away: nothing to tell it.
                Err(SendTimeoutError::Closed(_)) => Err(false),
            }
        }
    };
    let schema = FlightData::from(SchemaAsIpc::new(
        &result.schema,
        &ringfeed_arrow::codec::write_options(),
    ));
    let mut sent = send(Ok(schema)).await;
    let mut read = 0;
    let batches = result.answer.batches;
    while sent.is_ok() && read < batches {
        // Every batch of a result arena was written before it was answered,
        // so the read never waits.
        let messages = boundary
            .call(|| match result.reader.try_read() {
                Ok(Some(lease)) => slot_messages(lease),
                Ok(None) => Err(ServiceError::internal(format!(
                    "the result arena ended after {read} of {batches} batches"
                ))),
                Err(e) => Err(ServiceError::ring(format!("reading the result: {e}"))),
            })
            .and_then(|r| r);
        read += 1;
        match messages {
            Ok(ms) => {
                for m in ms {
                    sent = send(Ok(m)).await;
                    if sent.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a Flight stream failed");
                let _ = send(Err(status(e))).await;
                outcome.store(DONE, Ordering::Release);
                return;
            }
        }
    }
    match sent {
        Ok(()) => outcome.store(DONE, Ordering::Release),
        Err(true) => {
            boundary.timed_out();
            tracing::debug!("cut a Flight stream whose client stopped reading");
            outcome.store(TIMED_OUT, Ordering::Release);
        }
        Err(false) => tracing::debug!("a Flight client left mid-stream"),
    }
    // The reader (and with it the result's hold), then the slot, go here.
}
