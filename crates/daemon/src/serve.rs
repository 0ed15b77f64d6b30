//! `serve`: the service and its faces, wired together until a stop signal.

use crate::config::Config;
use crate::service::{write_down_loop, Service, MAINTENANCE_EVERY};
use crate::transport::{unix, Boundary, FaceLimits};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The control socket could not be bound (or another daemon serves it).
    #[error(transparent)]
    Bind(#[from] unix::BindError),
    /// The configuration is refused (e.g. a remote Flight address without the opt-in).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] crate::service::OpenError),
    /// The Flight endpoint could not be bound.
    #[error("cannot serve Arrow Flight on {addr}: {source}; pick another [flight] listen address (or --flight)")]
    Flight {
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The HTTP face could not be bound.
    #[error(
        "cannot serve HTTP on {addr}: {source}; pick another [http] listen address (or --http)"
    )]
    Http {
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The `[lake]` settings are refused.
    #[error("cannot use [lake]: {0}")]
    Lake(#[from] ringfeed_lake::OpenError),
    /// The metrics endpoint could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// Address.
        addr: std::net::SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// What every face enforces, from the config.
fn face_limits(c: &Config) -> FaceLimits {
    FaceLimits {
        max_connections: c.max_connections,
        max_connections_per_client: c.max_connections_per_client,
        idle_timeout: c.idle_timeout,
        request_timeout: c.request_timeout,
        max_inflight_bytes: c.max_inflight_bytes,
    }
}

/// Runs the daemon until `stop` is set (SIGTERM/SIGINT in `ringfeedd`).
/// Returns after closing every arena and removing the socket.
pub fn serve(cfg: Config, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    // Query results are built on connection threads as buffers of many MiB;
    // without this glibc keeps them in per-thread heaps after they are freed
    // (measured: 3.6 -> 109 MiB anonymous after 12 cold symbol-year queries
    // on 12 connections).
    ringfeed_shm::mmap_large_allocations(128 << 10);
    // Everything that can refuse the config is checked, and every TCP port bound, before
    // the socket exists: a daemon that will not start never looks started.
    // Tokens and limits of the network faces (the tokens file's path is made absolute
    // by the flags' config loading); checked again here for callers that build a
    // `Config` by hand: no unauthenticated remote endpoint without the opt-in.
    let gate = Arc::new(crate::auth::gate::Gate::new(
        crate::auth::Auth::from_config(&cfg.auth, std::path::Path::new("."))
            .map_err(crate::config::ConfigError::from)?,
        crate::auth::limits::Limiter::new(cfg.limits.per_principal.clone()),
    ));
    cfg.flight.check(gate.enabled())?;
    cfg.http.check(gate.enabled())?;
    let flight_settings = crate::transport::flight::ServerSettings::new(cfg.flight.tls.as_ref())?;
    // The follower's token and TLS files.
    let follow_credentials = cfg.follow.load()?;
    let metrics_addr = cfg.metrics;
    let metrics_listener = metrics_addr
        .map(std::net::TcpListener::bind)
        .transpose()
        .map_err(|source| ServeError::Metrics {
            addr: metrics_addr.expect("bound only when set"),
            source,
        })?;
    let flight_addr = cfg.flight.listen;
    let flight_listener = flight_addr
        .map(crate::transport::flight::bind)
        .transpose()
        .map_err(|source| ServeError::Flight {
            addr: flight_addr.expect("bound only when set"),
            source,
        })?;
    let http_addr = cfg.http.listen;
    let http_listener = http_addr
        .map(std::net::TcpListener::bind)
        .transpose()
        .map_err(|source| ServeError::Http {
            addr: http_addr.expect("bound only when set"),
            source,
        })?;
    // The lake (docs/scale-out.md): its settings are checked here; nothing is contacted
    // until the first pass, so an unreachable endpoint does not stop the daemon.
    let lake = cfg
        .lake
        .as_ref()
        .map(|l| ringfeed_lake::Lake::open(l, &cfg.data_dir))
        .transpose()?;
    let listener = unix::bind(&cfg.socket)?;
    let socket = cfg.socket.clone();
    let service = match Service::open(cfg) {
        Ok(s) => s,
        Err(e) => {
            // The socket is ours (bind refused a live one), but nobody will serve it.
            let _ = std::fs::remove_file(&socket);
            return Err(e.into());
        }
    };
    let boundary = Arc::new(Boundary::new(
        face_limits(service.config()),
        service.metrics().clone(),
    ));
    // The service's metrics, and the network faces' per-principal counters.
    let lake_metrics = lake.as_ref().map(|l| l.metrics().clone());
    let render: crate::transport::http::Render = {
        let (s, b, g) = (service.clone(), boundary.clone(), gate.clone());
        Arc::new(move || {
            let mut text = s.stat(b.connections());
            text.push_str(&g.counters_text());
            if let Some(m) = &lake_metrics {
                text.push_str(&m.render());
            }
            text
        })
    };
    // Faces started so far, joined if a later one cannot start.
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let fail = |threads: Vec<std::thread::JoinHandle<()>>, e: ServeError| {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in threads {
            let _ = h.join();
        }
        service.shutdown();
        let _ = std::fs::remove_file(&socket);
        Err(e)
    };
    // Followers start before any face: the datasets named are marked followed first, so
    // no local write to them slips in.
    threads.extend(crate::follow::start(
        &service,
        &service.config().follow,
        follow_credentials,
        &stop,
    ));
    if let (Some(addr), Some(l)) = (metrics_addr, metrics_listener) {
        match crate::transport::http::serve_metrics(
            l,
            render.clone(),
            boundary.clone(),
            stop.clone(),
        ) {
            Ok(h) => threads.push(h),
            Err(source) => return fail(threads, ServeError::Metrics { addr, source }),
        }
    }
    if let (Some(addr), Some(l)) = (http_addr, http_listener) {
        let state = crate::transport::http::face::HttpState {
            service: service.clone(),
            boundary: boundary.clone(),
            gate: gate.clone(),
            render: render.clone(),
            ohlcv_dataset: service.config().http.ohlcv_dataset.clone(),
        };
        match crate::transport::http::serve(
            "http",
            l,
            crate::transport::http::face::router(state),
            true,
            boundary.clone(),
            stop.clone(),
        ) {
            Ok(h) => threads.push(h),
            Err(source) => return fail(threads, ServeError::Http { addr, source }),
        }
    }
    if let (Some(addr), Some(l)) = (flight_addr, flight_listener) {
        match crate::transport::flight::serve(
            l,
            service.clone(),
            boundary.clone(),
            gate,
            flight_settings,
            stop.clone(),
        ) {
            // Last: its streams hold readers of result arenas, and end before the arenas
            // are closed.
            Ok(h) => threads.push(h),
            Err(source) => return fail(threads, ServeError::Flight { addr, source }),
        }
    }
    let write_down = service.config().write_down_delay.map(|delay| {
        let (s, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || write_down_loop(s, delay, stop))
    });
    // Not joined at stop: a pass cut short is safe (the next one finishes it), and an
    // upload can take minutes.
    if let Some(lake) = lake {
        let stop = stop.clone();
        std::thread::spawn(move || ringfeed_lake::worker::run(lake, stop));
    }
    let maintenance = {
        let (s, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if last.elapsed() >= MAINTENANCE_EVERY {
                    last = std::time::Instant::now();
                    s.maintain();
                }
            }
        })
    };
    let data_dir = std::fs::canonicalize(&service.config().data_dir)
        .unwrap_or_else(|_| service.config().data_dir.clone());
    tracing::info!(socket = %socket.display(), data_dir = %data_dir.display(), "ringfeedd serving");
    if service.datasets().as_object().is_none_or(|m| m.is_empty()) {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "the store has no datasets yet: create one with `ringfeed append --create --timeframe 1m FILE`, a client's create_dataset, `[datasets.NAME]` in the config, or `ringfeed ingest` before starting the daemon"
        );
    }
    unix::run(listener, &socket, service.clone(), boundary, stop);
    let _ = maintenance.join();
    for h in threads {
        let _ = h.join();
    }
    if let Some(w) = write_down {
        // A pass in progress finishes first (it is crash-safe, but a clean stop is nicer).
        let _ = w.join();
    }
    tracing::info!("shutting down: closing arenas");
    service.shutdown();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
