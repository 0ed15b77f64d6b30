//! The local face: a Unix socket (mode 0600) carrying the frames of
//! [`ringfeed_client::protocol`]. Bulk data never crosses it: a query answer
//! names a shared-memory arena the client maps.
//!
//! This file only parses frames, calls the [`Service`], and encodes answers.
//! The request boundary is [`Boundary::call`]: a panic in an operation becomes
//! an `internal` answer, and everything the connection held is released when
//! it ends, however it ends.

use super::Boundary;
use crate::service::{Service, ServiceError, Session};
use ringfeed_client::protocol::{
    read_frame, write_frame, ErrorKind, FrameError, Request, Response,
};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another daemon answers on the socket.
    #[error("another ringfeedd is already serving on {0:?}: stop it, or pass a different socket")]
    AlreadyRunning(std::path::PathBuf),
    /// Something that is not a socket is at the path (never removed).
    #[error("{0:?} exists and is not a socket: refusing to replace it; pass a socket path (e.g. --socket /run/user/$UID/ringfeed.sock)")]
    NotASocket(std::path::PathBuf),
    /// The socket could not be bound.
    #[error("cannot listen on {path:?}: {source}")]
    Io {
        /// Socket path.
        path: std::path::PathBuf,
        /// OS error.
        source: io::Error,
    },
}

/// Binds the socket (0600 from the start: created under a umask of 0177, so no
/// other user can connect in between), refusing to steal it from a live daemon,
/// removing a stale socket, and refusing to remove anything that is not a socket.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(BindError::AlreadyRunning(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The umask is per process; the daemon binds before it starts any thread
    // that creates files.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let l = bound.map_err(io_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(l)
}

fn error_response(e: ServiceError) -> Response {
    Response::err(e.kind, e.message)
}

/// One request, answered by the service.
fn dispatch(
    service: &Service,
    b: &Boundary,
    req: Request,
    payload: &[u8],
    session: &mut Session,
) -> Response {
    let answer =
        match req {
            Request::Ping => Ok(Response::ok()),
            Request::Stat => Ok(Response {
                text: Some(service.stat(b.connections())),
                ..Response::ok()
            }),
            Request::Datasets => Ok(Response {
                data: Some(service.datasets()),
                ..Response::ok()
            }),
            Request::CreateDataset(spec) => service.create_dataset(&spec).map(|text| Response {
                text: Some(text),
                ..Response::ok()
            }),
            Request::Ready { dataset } => service.ready(dataset.as_deref()).map(|r| Response {
                data: Some(serde_json::to_value(r).expect("serialisable")),
                ..Response::ok()
            }),
            Request::Health => Ok(Response {
                data: Some(serde_json::to_value(service.health()).expect("serialisable")),
                ..Response::ok()
            }),
            Request::Query(q) => service.query(&q, session).map(|a| Response {
                arena: Some(a.arena),
                batches: Some(a.batches),
                rows: Some(a.rows),
                bytes: Some(a.bytes),
                cached: Some(a.cached),
                ..Response::ok()
            }),
            Request::Release { arena } => session.release(&arena).map(|()| Response::ok()),
            Request::Subscribe { dataset, timeframe } => service
                .subscribe(&dataset, &timeframe)
                .map(|arena| Response {
                    arena: Some(arena),
                    ..Response::ok()
                }),
            Request::Replay(r) => service.replay(&r, session).map(|a| Response {
                arena: Some(a.history.arena),
                batches: Some(a.history.batches),
                rows: Some(a.history.rows),
                bytes: Some(a.history.bytes),
                cached: Some(a.history.cached),
                seq: Some(a.seam),
                ..Response::ok()
            }),
            Request::Append { dataset, invalid } => service
                .append_ipc(&dataset, payload, invalid)
                .map(|o| Response {
                    rows: Some(o.rows),
                    report: Some(o.report),
                    ..Response::ok()
                }),
            Request::Delete {
                dataset,
                symbol,
                start,
                end,
            } => service
                .delete(&dataset, symbol, &start, &end)
                .map(|o| Response {
                    rows: Some(o.days),
                    text: Some(o.text),
                    ..Response::ok()
                }),
            Request::WriteDown {
                dataset,
                before,
                all,
            } => service
                .write_down(dataset.as_deref(), before.as_deref(), all)
                .map(|o| Response {
                    rows: Some(o.rows),
                    bytes: Some(o.bytes),
                    text: Some(o.text),
                    ..Response::ok()
                }),
        };
    answer.unwrap_or_else(error_response)
}

/// Serves one connection until it closes or sends garbage it cannot recover from.
fn serve_connection(service: &Service, b: &Boundary, stream: UnixStream) {
    let mut session = service.session();
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    let max_payload = service.config().max_append_bytes;
    loop {
        let (req, payload) = match read_frame::<_, Request>(&mut reader, max_payload) {
            Ok(x) => x,
            Err(FrameError::Eof) => break,
            Err(FrameError::Json(m)) => {
                b.bad_request();
                // The frame was read whole, so the stream is still in sync.
                if write_frame(&mut writer, &Response::err(ErrorKind::BadRequest, m), &[]).is_err()
                {
                    break;
                }
                continue;
            }
            Err(FrameError::TooLarge {
                what: "payload",
                len,
                max,
            }) => {
                b.bad_request();
                // The header was read; discard the payload (no memory held) so
                // the client, still writing it, gets the reason, not a broken pipe.
                let drained = io::copy(&mut (&mut reader).take(len), &mut io::sink());
                let resp = Response::err(
                    ErrorKind::TooLarge,
                    format!(
                        "request payload of {len} bytes exceeds this daemon's max_append_bytes ({max}): split the append into smaller batches"
                    ),
                );
                if !matches!(drained, Ok(n) if n == len)
                    || write_frame(&mut writer, &resp, &[]).is_err()
                {
                    break;
                }
                continue;
            }
            Err(e) => {
                b.bad_request();
                // Framing is lost (header too large, or cut): answer once and hang up.
                let _ = write_frame(
                    &mut writer,
                    &Response::err(ErrorKind::BadRequest, e.to_string()),
                    &[],
                );
                break;
            }
        };
        let resp = b
            .call(|| dispatch(service, b, req, &payload, &mut session))
            .unwrap_or_else(error_response);
        if write_frame(&mut writer, &resp, &[]).is_err() {
            break;
        }
    }
    // `session` drops here: every result this connection held is released.
}

/// Accepts connections until `stop`, one thread each, up to the service's
/// `max_connections` (more are answered `busy`).
pub fn run(
    listener: UnixListener,
    socket: &Path,
    service: Arc<Service>,
    boundary: Arc<Boundary>,
    stop: Arc<AtomicBool>,
) {
    // accept() blocks; on stop, the waker shuts the listening socket down, which
    // makes accept() return (connecting to it would not do if its path was
    // removed from under the daemon), and connects once in case it did not.
    let waker = {
        let (stop, socket) = (stop.clone(), socket.to_path_buf());
        let listening = listener.try_clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(l) = &listening {
                let _ = rustix::net::shutdown(l, rustix::net::Shutdown::Both);
            }
            let _ = UnixStream::connect(&socket);
        })
    };
    let max = service.config().max_connections;
    loop {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => break,
            Ok((stream, _)) => {
                let Some(slot) = boundary.connection(max) else {
                    let mut s = stream;
                    let _ = write_frame(
                        &mut s,
                        &Response::err(ErrorKind::Busy, "too many connections: retry later"),
                        &[],
                    );
                    continue;
                };
                let (service, boundary) = (service.clone(), boundary.clone());
                std::thread::spawn(move || {
                    let _slot = slot;
                    serve_connection(&service, &boundary, stream);
                });
            }
            Err(e) if stop.load(Ordering::Relaxed) => {
                tracing::debug!(error = %e, "accept interrupted by shutdown");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let _ = waker.join();
}
