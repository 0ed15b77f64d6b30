//! The HTTP face: today `GET /metrics` (Prometheus text). Served by hyper
//! (through an axum router) on a small tokio runtime of its own, so a slow
//! client never blocks another: each connection is a task; request heads are
//! capped in size ([`MAX_HEAD_BYTES`]) and must arrive within
//! [`HEAD_TIMEOUT`]; a whole connection lives at most the boundary's
//! `request_timeout`; and connections are counted and capped per peer address
//! by the same [`Boundary`] as the other faces.

use super::{Boundary, Peer};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the endpoint serves: the metrics text, rendered per request.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The request line and headers must fit in this many bytes.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// ... and arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

fn router(render: Render) -> Router {
    let metrics = move || {
        let render = render.clone();
        async move {
            // Rendering takes the service's locks: keep it off the I/O thread.
            let body = tokio::task::spawn_blocking(move || render())
                .await
                .unwrap_or_else(|_| {
                    "# rendering the metrics failed; see the daemon's log\n".into()
                });
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                body,
            )
        }
    };
    Router::new()
        .route("/metrics", get(metrics.clone()))
        .route("/", get(metrics))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "try GET /metrics\n") })
}

/// Serves `GET /metrics` on `std_listener` (bound by the caller, early, so that the port
/// accepts connections from the moment the daemon's socket does, and a taken port is
/// reported before anything starts) until `stop`, on a thread of its own.
pub fn serve_metrics(
    std_listener: std::net::TcpListener,
    render: Render,
    boundary: Arc<Boundary>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std_listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()?;
    std::thread::Builder::new()
        .name("ringfeedd-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics endpoint failed to start");
                        return;
                    }
                };
                let app = router(render);
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    let (tcp, peer) = tokio::select! {
                        r = listener.accept() => match r {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(error = %e, "metrics accept failed");
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
                            tracing::debug!(%peer, %refused, "metrics connection refused");
                            continue;
                        }
                    };
                    let service = TowerToHyperService::new(app.clone());
                    let limit = boundary.limits().request_timeout;
                    let b = boundary.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEAD_TIMEOUT)
                            .max_buf_size(MAX_HEAD_BYTES)
                            .keep_alive(false)
                            .serve_connection(TokioIo::new(tcp), service);
                        tokio::select! {
                            r = tokio::time::timeout(limit, conn) => match r {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    b.bad_request();
                                    tracing::debug!(%peer, error = %e, "metrics request failed");
                                }
                                Err(_) => b.timed_out(),
                            },
                            _ = close.notified() => {}
                        }
                    });
                }
            })
        })
}
