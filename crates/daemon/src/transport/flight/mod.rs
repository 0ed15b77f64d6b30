//! The Arrow Flight face (issue 14, first increment): gRPC through
//! `arrow-flight` and tonic, off unless `[flight] listen` (or `--flight`)
//! is set, on loopback unless `[flight] allow_unauthenticated_remote`
//! says otherwise ([`crate::config::FlightConfig::check`]).
//!
//! A thin adapter like the Unix socket: `command.rs` parses tickets,
//! descriptors and action bodies into the protocol's types; `service.rs`
//! calls the same [`Service`] methods the socket face calls, each request
//! through [`Boundary::call`] with a [`Boundary::connection`] slot per call;
//! `stream.rs` streams a query's result arena (the shared result cache's
//! encoded batches, as they lie in shared memory) as `FlightData`. Service
//! errors become gRPC statuses in one place, [`status`].
//!
//! It runs on a tokio runtime of its own, on its own thread, and stops with
//! the daemon: on `stop` it refuses new calls, lets running streams finish
//! for [`DRAIN`], then cuts what is left.
//!
//! ```no_run
//! # use std::sync::{Arc, atomic::AtomicBool};
//! # let (service, boundary): (Arc<ringfeed_daemon::Service>, Arc<ringfeed_daemon::transport::Boundary>) = todo!();
//! use ringfeed_daemon::transport::flight;
//! let stop = Arc::new(AtomicBool::new(false));
//! let listener = flight::bind("127.0.0.1:8815".parse().unwrap()).unwrap();
//! let gate = Arc::new(flight::Gate::new(
//!     Default::default(),
//!     ringfeed_daemon::auth::limits::Limiter::new(Default::default()),
//! ));
//! let settings = flight::ServerSettings::new(None).unwrap();
//! let thread = flight::serve(listener, service, boundary, gate, settings, stop.clone()).unwrap();
//! // ... later:
//! stop.store(true, std::sync::atomic::Ordering::Relaxed);
//! thread.join().unwrap();
//! ```

mod command;
mod gate;
mod service;
mod stream;
mod subscribe;

pub use command::{ACTIONS, MAX_COMMAND_BYTES, QUERY_EXAMPLE};
pub use gate::{Gate, RETRY_AFTER_KEY};
pub use subscribe::{HISTORY_ROWS_KEY, LIVE_BACKLOG};

use super::Boundary;
use crate::service::{ErrorKind, Service, ServiceError};
use arrow_flight::flight_service_server::FlightServiceServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long running calls may go on after the daemon is told to stop.
pub const DRAIN: Duration = Duration::from_secs(5);

/// The gRPC metadata key that carries the service's error kind
/// (`unknown_dataset`, `busy`, ...), so a client can tell kinds apart that
/// share a status code.
pub const ERROR_KIND_KEY: &str = ringfeed_client::protocol::ERROR_KIND_METADATA;

/// The one mapping from the service's error kinds to gRPC status codes.
pub fn code(kind: ErrorKind) -> tonic::Code {
    use tonic::Code;
    match kind {
        ErrorKind::BadRequest | ErrorKind::BadTimeframe => Code::InvalidArgument,
        ErrorKind::UnknownDataset | ErrorKind::UnknownSymbol => Code::NotFound,
        ErrorKind::TooLarge | ErrorKind::TooManyPending | ErrorKind::Busy => {
            Code::ResourceExhausted
        }
        ErrorKind::Store | ErrorKind::Ring | ErrorKind::Internal => Code::Internal,
        // The write belongs on the primary: not retryable here.
        ErrorKind::Followed => Code::FailedPrecondition,
        // A kind added later is a failure this face does not know how to
        // classify: say so rather than guess a retryable code.
        _ => Code::Internal,
    }
}

/// A service error as a gRPC status: [`code`] of its kind, its message, and
/// its kind under [`ERROR_KIND_KEY`].
pub fn status(e: ServiceError) -> tonic::Status {
    let mut s = tonic::Status::new(code(e.kind), e.message);
    if let Ok(v) = e.kind.as_str().parse() {
        s.metadata_mut().insert(ERROR_KIND_KEY, v);
    }
    s
}

/// Binds the Flight listener (early, beside the socket, so a taken port is
/// reported before anything starts).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves Flight on `listener` until `stop`, on a thread of its own (joined
/// by the caller before the service shuts down).
pub fn serve(
    listener: std::net::TcpListener,
    service: Arc<Service>,
    boundary: Arc<Boundary>,
    gate: Arc<Gate>,
    settings: ServerSettings,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // Two workers for I/O and encoding; store reads and result builds run on
    // the blocking pool, bounded so a burst of cold queries queues instead
    // of spawning a thread each.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("ringfeedd-flight")
        .enable_all()
        .build()?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("ringfeedd-flight".into())
        .spawn(move || {
            rt.block_on(run(listener, service, boundary, gate, settings, stop));
            // Calls still running after the drain are cut here; a store read
            // in progress on the blocking pool is given a moment to end.
            rt.shutdown_timeout(Duration::from_secs(2));
            tracing::debug!(%local, "Flight endpoint stopped");
        })
}

/// The gRPC server's settings, made once at start before the daemon binds anything (so a
/// bad TLS file stops it at once, named): HTTP/2 keep-alives, and TLS when `[flight.tls]`
/// is set.
pub struct ServerSettings {
    builder: tonic::transport::Server,
    tls: bool,
}

impl ServerSettings {
    /// Reads and parses `tls`'s PEM files, if any.
    pub fn new(tls: Option<&crate::config::FlightTls>) -> Result<Self, crate::config::ConfigError> {
        let builder = tonic::transport::Server::builder()
            // Dead peers are found by HTTP/2 pings, so their streams end.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)));
        let Some(tls) = tls else {
            return Ok(ServerSettings {
                builder,
                tls: false,
            });
        };
        let (cert, key, ca) = tls.load()?;
        let mut cfg = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = ca {
            cfg = cfg.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        let builder = builder
            .tls_config(cfg)
            .map_err(|e| crate::config::ConfigError::Value {
                key: "flight.tls".into(),
                message: format!(
                    "[flight.tls] cert {} / key {}: {e} (PEM files of the server's certificate chain and its private key)",
                    tls.cert.display(),
                    tls.key.display()
                ),
            })?;
        Ok(ServerSettings { builder, tls: true })
    }
}

async fn run(
    listener: std::net::TcpListener,
    service: Arc<Service>,
    boundary: Arc<Boundary>,
    gate: Arc<Gate>,
    ServerSettings { mut builder, tls }: ServerSettings,
    stop: Arc<AtomicBool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "Flight endpoint failed to start");
            return;
        }
    };
    let addr = listener.local_addr().ok();
    let authenticated = gate.enabled();
    let max_append = usize::try_from(service.config().max_append_bytes).unwrap_or(usize::MAX);
    let face = service::FlightFace::new(service, boundary, gate);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stopped = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let server = builder
        .add_service(
            // DoPut batches up to the socket's append limit (tonic's default is 4 MiB).
            FlightServiceServer::new(face)
                .max_decoding_message_size(max_append)
                .max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(incoming, stopped);
    if let Some(a) = addr {
        let wire = if tls { "TLS" } else { "plaintext" };
        if authenticated {
            tracing::info!(addr = %a, wire, "Arrow Flight serving (bearer tokens required)");
        } else {
            tracing::info!(addr = %a, wire, "Arrow Flight serving (no tokens configured: loopback only unless allowed)");
        }
    }
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                tracing::error!(error = %e, "Flight endpoint failed");
            }
        }
        () = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(DRAIN).await;
        } => tracing::warn!("Flight calls still running {DRAIN:?} after stop were cut"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code_and_carries_its_name() {
        use tonic::Code;
        let want = [
            (ErrorKind::BadRequest, Code::InvalidArgument),
            (ErrorKind::UnknownDataset, Code::NotFound),
            (ErrorKind::UnknownSymbol, Code::NotFound),
            (ErrorKind::BadTimeframe, Code::InvalidArgument),
            (ErrorKind::TooLarge, Code::ResourceExhausted),
            (ErrorKind::TooManyPending, Code::ResourceExhausted),
            (ErrorKind::Busy, Code::ResourceExhausted),
            (ErrorKind::Store, Code::Internal),
            (ErrorKind::Ring, Code::Internal),
            (ErrorKind::Internal, Code::Internal),
            (ErrorKind::Followed, Code::FailedPrecondition),
        ];
        assert_eq!(want.len(), ErrorKind::ALL.len(), "a kind without a code");
        for (kind, c) in want {
            let s = status(ServiceError::new(kind, "what to do"));
            assert_eq!(s.code(), c, "{kind:?}");
            assert_eq!(s.message(), "what to do");
            assert_eq!(
                s.metadata().get(ERROR_KIND_KEY).unwrap().to_str().unwrap(),
                kind.as_str()
            );
        }
    }
}
