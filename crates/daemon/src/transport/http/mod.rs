//! The HTTP faces, served by hyper (through axum routers) on a small tokio runtime of
//! their own, so a slow client never blocks another: each connection is a task; request
//! heads are capped in size ([`MAX_HEAD_BYTES`]) and must arrive within [`HEAD_TIMEOUT`]
//! (also the longest an idle keep-alive connection is kept); each request (but a
//! websocket upgrade, which lives until either side closes it or the daemon stops) must
//! be answered within the boundary's `request_timeout`; and connections are counted and
//! capped per peer address by the same [`Boundary`] as the other faces.
//!
//! Two listeners use it:
//! - `--metrics ADDR` / `metrics = ADDR`: `GET /metrics` only ([`metrics_router`]);
//! - `--http ADDR` / `[http] listen`: the HTTP face ([`face`]): bearer tokens and
//!   per-principal limits of [`crate::auth::gate`] on every route, MarketStore's `/rpc`
//!   and `/ws`, the web page and `/metrics`.

pub mod api;
pub mod face;
pub mod marketstore;
pub mod page;

use super::{Boundary, Peer};
use crate::service::{ResultArena, Service, ServiceError};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ringfeed_client::protocol::QuerySpec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the metrics endpoint serves: the metrics text, rendered per request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The request line and headers must fit in this many bytes.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// ... and arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// A query through the shared result cache ([`Service::query`], the same path as every
/// other face), its batches read from the result arena (attached and read here, as a
/// local client reads it, then released).
pub fn query_batches(service: &Service, spec: &QuerySpec) -> Result<QueryBatches, ServiceError> {
    let mut session = service.session();
    let answer = service.query(spec, &mut session)?;
    let mut reader =
        ringfeed_arrow::Reader::open(&answer.arena, ringfeed_arrow::StartAt::Oldest)
            .map_err(|e| ServiceError::ring(format!("attaching to the query result: {e}")))?;
    // Attached: the reader now keeps the result alive.
    drop(session);
    let schema = reader.schema().clone();
    let mut batches = Vec::with_capacity(answer.batches as usize);
    while (batches.len() as u64) < answer.batches {
        // Every batch of a result arena is written before it is answered.
        match reader.read(Duration::from_secs(10)) {
            Ok(Some(b)) => batches.push(b.record_batch().clone()),
            Ok(None) => {
                return Err(ServiceError::internal(format!(
                    "the result arena ended after {} of {} batches",
                    batches.len(),
                    answer.batches
                )))
            }
            Err(e) => return Err(ServiceError::ring(format!("reading the query result: {e}"))),
        }
    }
    Ok(QueryBatches {
        answer,
        batches,
        schema,
    })
}

/// A query's result, read by [`query_batches`].
pub struct QueryBatches {
    /// The result arena's description (rows, whether cached).
    pub answer: ResultArena,
    /// Its batches.
    pub batches: Vec<RecordBatch>,
    /// Their schema.
    pub schema: SchemaRef,
}

/// The peer of a request (in its extensions: `Extension<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// `GET /metrics` as an axum handler: the text rendered off the I/O thread (rendering
/// takes the service's locks).
pub async fn metrics_text(render: Render) -> impl axum::response::IntoResponse {
    let body = tokio::task::spawn_blocking(move || render())
        .await
        .unwrap_or_else(|_| "# rendering the metrics failed; see the daemon's log\n".into());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// The `--metrics` listener's routes: `/metrics` (and `/`).
pub fn metrics_router(render: Render) -> Router {
    let metrics = move || metrics_text(render.clone());
    Router::new()
        .route("/metrics", get(metrics.clone()))
        .route("/", get(metrics))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "try GET /metrics\n") })
}

/// Serves `GET /metrics` on `std_listener` until `stop`, on a thread of its own.
pub fn serve_metrics(
    std_listener: std::net::TcpListener,
    render: Render,
    boundary: Arc<Boundary>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // One request per connection, as scrapers make them.
    serve(
        "metrics",
        std_listener,
        metrics_router(render),
        false,
        boundary,
        stop,
    )
}

/// Serves `app` on `std_listener` (bound by the caller, early, so that the port accepts
/// connections from the moment the daemon's socket does, and a taken port is reported
/// before anything starts) until `stop`, on a thread named after `face`. With
/// `keep_alive`, a connection carries request after request (idle ones close after
/// [`HEAD_TIMEOUT`]); without, one each.
pub fn serve(
    face: &'static str,
    std_listener: std::net::TcpListener,
    app: Router,
    keep_alive: bool,
    boundary: Arc<Boundary>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std_listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()?;
    std::thread::Builder::new()
        .name(format!("ringfeedd-{face}"))
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, face, "HTTP endpoint failed to start");
                        return;
                    }
                };
                let app = app.layer(axum::middleware::from_fn_with_state(
                    (boundary.limits().request_timeout, boundary.clone()),
                    request_timeout,
                ));
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                // Connections end on `stop` (a websocket would otherwise outlive the daemon).
                let (stopped_tx, stopped) = tokio::sync::watch::channel(false);
                loop {
                    let (tcp, peer) = tokio::select! {
                        r = listener.accept() => match r {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(error = %e, face, "HTTP accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                        _ = tick.tick() => {
                            if stop.load(Ordering::Relaxed) { break } else { continue }
                        }
                    };
                    let close = Arc::new(tokio::sync::Notify::new());
                    let closer = {
                        let close = close.clone();
                        Box::new(move || close.notify_one()) as super::Closer
                    };
                    let slot = match boundary.connection(Peer::Ip(peer.ip()), closer) {
                        Ok(slot) => slot,
                        // Dropping the stream closes it; HTTP clients retry.
                        Err(refused) => {
                            tracing::debug!(%peer, %refused, face, "HTTP connection refused");
                            continue;
                        }
                    };
                    let app = app.clone().layer(axum::Extension(PeerAddr(peer)));
                    let service = TowerToHyperService::new(app);
                    let b = boundary.clone();
                    let mut stopped = stopped.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEAD_TIMEOUT)
                            .max_buf_size(MAX_HEAD_BYTES)
                            .keep_alive(keep_alive)
                            .serve_connection(TokioIo::new(tcp), service)
                            .with_upgrades();
                        tokio::select! {
                            r = conn => if let Err(e) = r {
                                b.bad_request();
                                tracing::debug!(%peer, error = %e, face, "HTTP connection failed");
                            },
                            _ = close.notified() => {}
                            _ = stopped.changed() => {}
                        }
                    });
                }
                let _ = stopped_tx.send(true);
            })
        })
}

/// Middleware: a request (but a websocket upgrade) is answered within `limit`, or gets
/// 408 and is counted as timed out.
pub async fn request_timeout(
    axum::extract::State((limit, boundary)): axum::extract::State<(Duration, Arc<Boundary>)>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.headers().contains_key(axum::http::header::UPGRADE) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            boundary.timed_out();
            (
                axum::http::StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request took longer than the daemon's request_timeout ({} s); ask for less (a shorter range, fewer symbols) or raise request_timeout in the config\n",
                    limit.as_secs()
                ),
            )
                .into_response()
        }
    }
}
