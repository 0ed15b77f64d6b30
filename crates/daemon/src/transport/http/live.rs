//! `GET /api/live?dataset=&timeframe=&symbol=`: a topic's live batches as server-sent
//! events, for the web page's chart (an `EventSource` reconnects by itself).
//!
//! The steps of a Flight subscription's live part (`transport/flight/subscribe.rs`),
//! without its history: a reader joins the topic ring at its next publication, then the
//! stream opens with a `ready` event. A viewer that asks for its history *after*
//! `ready` (the page does) and then applies every `bars` event in order ends with the
//! current bars: a publication between joining and the history's query is in both, and
//! an update of a bar replaces it (same `ts`), so applying it twice changes nothing.
//!
//! Events:
//! - `ready`: `{"topic"}`, once, when the reader has joined;
//! - `bars`: `{"seq", "columns"}` per published batch (only the asked symbols' rows;
//!   columns as `/api/bars` gives them, `ts` in ms);
//! - `cut`: `{"reason"}`, last, when the daemon ends the stream (the viewer fell
//!   [`LIVE_BACKLOG`] events behind, the ring lapped it, or the topic closed).
//!
//! Live batches are read on a thread of the stream's own and queued up to
//! [`LIVE_BACKLOG`] events; a viewer that falls that far behind is cut rather than
//! waited for. Each stream counts against the caller's stream limit while it lasts.

use super::api::{columns, error_response, Params};
use super::face::{refusal_response, HttpState};
use crate::auth::gate::Caller;
use crate::auth::Operation;
use crate::service::ServiceError;
use axum::extract::State;
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures::StreamExt;
use ringfeed_arrow::{ReadError, Reader, StartAt};
use serde_json::json;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;

/// Events queued for a viewer before it is cut (each at most a topic slot's bars).
pub const LIVE_BACKLOG: usize = 64;

/// How often an idle stream carries a comment, so proxies and the browser keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live route (behind the face's authentication).
pub fn routes() -> Router<HttpState> {
    Router::new().route("/api/live", get(live))
}

const RUNNING: u8 = 0;
const CUT_BEHIND: u8 = 1;
const CUT_LAPPED: u8 = 2;
const FAILED: u8 = 3;
const CLOSED: u8 = 4;

async fn live(
    State(state): State<HttpState>,
    Extension(c): Extension<Arc<Caller>>,
    uri: Uri,
) -> Response {
    let p = Params::of(&uri);
    let (dataset, timeframe) = match (
        p.require("dataset", "binance-spot"),
        p.require("timeframe", "1m"),
    ) {
        (Ok(d), Ok(t)) => (d.to_string(), t.to_string()),
        (Err(e), _) | (_, Err(e)) => return error_response(e),
    };
    let symbols = p.symbols();
    if let Err(r) = state.allow(&c, Operation::Read(&dataset), "/api/live") {
        return r;
    }
    let guard = match state.gate.open_stream(&c, "/api/live") {
        Ok(g) => g,
        Err(r) => return refusal_response(r),
    };
    let (service, boundary) = (state.service.clone(), state.boundary.clone());
    // Joining may create the topic's ring: on the blocking pool.
    let joined = tokio::task::spawn_blocking(move || {
        boundary
            .call(|| {
                let topic = service.subscribe(&dataset, &timeframe)?;
                let reader = Reader::open(&topic, StartAt::Next).map_err(|e| {
                    ServiceError::ring(format!("joining the live topic {topic}: {e}"))
                })?;
                Ok::<_, ServiceError>((reader, topic))
            })
            .and_then(|r| r)
    })
    .await
    .unwrap_or_else(|e| Err(ServiceError::internal(format!("the join's task failed: {e}"))));
    let (reader, topic) = match joined {
        Ok(x) => x,
        Err(e) => return error_response(e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(LIVE_BACKLOG);
    let ready = Event::default()
        .event("ready")
        .data(json!({ "topic": topic }).to_string());
    // The channel is new and empty: the first event fits.
    let _ = tx.try_send(ready);
    let outcome = Arc::new(AtomicU8::new(RUNNING));
    let state_of = outcome.clone();
    let spawned = std::thread::Builder::new()
        .name("ringfeedd-web-live".into())
        .spawn(move || {
            let _guard = guard;
            pump(reader, &symbols, &tx, &state_of);
        });
    if let Err(e) = spawned {
        outcome.store(FAILED, Ordering::Release);
        tracing::error!(error = %e, "cannot start a web live stream's reader thread");
    }
    let events = futures::stream::unfold(Some(rx), move |rx| {
        let outcome = outcome.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(e) => Some((e, Some(rx))),
                None => {
                    let reason = match outcome.load(Ordering::Acquire) {
                        CUT_BEHIND => format!("the page fell {LIVE_BACKLOG} batches behind the live topic and was cut, so that no one waits for it; it reconnects and reloads"),
                        CUT_LAPPED => "the live topic ring lapped this stream (it lost batches); it reconnects and reloads".to_string(),
                        CLOSED => "the daemon closed the live topic (it is stopping, or the dataset was dropped)".to_string(),
                        _ => "the live stream stopped inside the daemon (it is logged)".to_string(),
                    };
                    let cut = Event::default()
                        .event("cut")
                        .data(json!({ "reason": reason }).to_string());
                    Some((cut, None))
                }
            }
        }
    })
    .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Reads the topic until the viewer leaves or the stream is cut; the outcome says why
/// it ended.
fn pump(
    mut reader: Reader,
    symbols: &[String],
    tx: &tokio::sync::mpsc::Sender<Event>,
    outcome: &AtomicU8,
) {
    let end = |s: u8| outcome.store(s, Ordering::Release);
    loop {
        if tx.is_closed() {
            return; // the viewer left
        }
        let b = match reader.read(Duration::from_millis(200)) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(ReadError::Lagged { .. }) => return end(CUT_LAPPED),
            Err(ReadError::Closed { .. }) => return end(CLOSED),
            Err(e) => {
                tracing::error!(error = %e, "a web live stream's read failed");
                return end(FAILED);
            }
        };
        let seq = b.seq();
        let Some(b) = ringfeed_client::keep_symbols(b, symbols) else {
            continue;
        };
        let cols = match columns(std::slice::from_ref(b.record_batch())) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "a live batch as JSON failed");
                return end(FAILED);
            }
        };
        drop(b); // the lease, before waiting on anyone
        let event = Event::default()
            .event("bars")
            .data(json!({ "seq": seq, "columns": cols }).to_string());
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return end(CUT_BEHIND),
            Err(TrySendError::Closed(_)) => return,
        }
    }
}
