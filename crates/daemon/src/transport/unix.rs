//! The local face: a Unix socket (mode 0600) carrying the frames of
//! [`ringfeed_client::protocol`]. Bulk data never crosses it: a query answer
//! names a shared-memory arena the client maps.
//!
//! This file only parses frames, calls the [`Service`], and encodes answers.
//! The request boundary is [`Boundary::call`]: a panic in an operation becomes
//! an `internal` answer, and everything the connection held is released when
//! it ends, however it ends.

use super::frame::{self, Incoming};
use super::{Boundary, Closer, ConnectionSlot, Peer};
use crate::service::{Service, ServiceError, Session};
use ringfeed_client::protocol::{write_frame, ErrorKind, Request, Response};
use std::io;
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
    /// The socket's directory is not private.
    #[error(transparent)]
    Unsafe(#[from] ringfeed_client::peer::PeerError),
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
    match path.parent() {
        // The fallback directory in /tmp must be ours and private, whoever made it.
        Some(dir) if dir == ringfeed_client::peer::fallback_dir() => {
            ringfeed_client::peer::ensure_private_dir(dir)?
        }
        Some(dir) => {
            let _ = std::fs::create_dir_all(dir);
        }
        None => {}
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
            Request::SetRetention {
                dataset,
                retention,
                rollup_retention,
            } => service
                .set_retention(&dataset, retention.as_deref(), rollup_retention.as_deref())
                .map(lifecycle_response),
            Request::Trim {
                dataset,
                symbol,
                before,
            } => service
                .trim(&dataset, symbol.as_deref(), &before)
                .map(lifecycle_response),
            Request::DropDataset { dataset, yes } => {
                service.drop_dataset(&dataset, yes).map(lifecycle_response)
            }
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

/// The answer of a lifecycle operation: rows, bytes and its summary.
fn lifecycle_response(o: crate::service::LifecycleOutcome) -> Response {
    Response {
        rows: Some(o.rows),
        bytes: Some(o.bytes),
        text: Some(o.text),
        ..Response::ok()
    }
}

/// Serves one connection until it closes, idles past `idle_timeout`, misses
/// `request_timeout` mid-request, or sends garbage it cannot recover from.
fn serve_connection(service: &Service, b: &Boundary, slot: &ConnectionSlot, stream: UnixStream) {
    let mut session = service.session();
    // An answer the client does not take within the request timeout ends the
    // connection (a client that stopped reading must not hold a thread). The
    // read timeout is set once; deadlines are checked as reads return.
    if stream
        .set_write_timeout(Some(b.limits().request_timeout))
        .and_then(|()| stream.set_read_timeout(Some(frame::socket_timeout(b.limits()))))
        .is_err()
    {
        return;
    }
    // Buffered: a small request arrives whole in one read.
    let mut reader = match stream.try_clone() {
        Ok(s) => std::io::BufReader::with_capacity(64 << 10, s),
        Err(_) => return,
    };
    let mut writer = stream;
    let max_payload = service.config().max_append_bytes;
    loop {
        let (req, payload, _budget) = match frame::read_request(&mut reader, b, max_payload) {
            Incoming::Request(req, payload, budget) => (req, payload, budget),
            Incoming::Eof => break,
            Incoming::Idle => {
                tracing::debug!("closing an idle connection (idle_timeout)");
                break;
            }
            Incoming::Cut(why) => {
                b.timed_out();
                tracing::debug!(%why, "closing a connection cut mid-request");
                break;
            }
            Incoming::Refuse(kind, m) => {
                b.bad_request();
                // The frame was consumed whole, so the stream is still in sync.
                if write_frame(&mut writer, &Response::err(kind, m), &[]).is_err() {
                    break;
                }
                continue;
            }
            Incoming::Fatal(kind, m) => {
                b.bad_request();
                let _ = write_frame(&mut writer, &Response::err(kind, m), &[]);
                break;
            }
        };
        slot.busy(true);
        let resp = b
            .call(|| dispatch(service, b, *req, &payload, &mut session))
            .unwrap_or_else(error_response);
        drop(payload);
        slot.busy(false);
        if write_frame(&mut writer, &resp, &[]).is_err() {
            break;
        }
    }
    // `session` drops here: every result this connection held is released.
}

/// The client process on the other end (its pid, from `SO_PEERCRED`).
fn peer(stream: &UnixStream, n: u64) -> Peer {
    match rustix::net::sockopt::socket_peercred(stream) {
        Ok(c) => Peer::Pid(c.pid.as_raw_nonzero().get() as u32),
        Err(_) => Peer::Unknown(n),
    }
}

/// Accepts connections until `stop`, one thread each, within the boundary's
/// limits (a refused client is answered `busy` with the reason).
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
    let mut accepted = 0u64;
    loop {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => break,
            Ok((stream, _)) => {
                accepted += 1;
                let closer: Closer = match stream.try_clone() {
                    Ok(s) => Box::new(move || {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }),
                    Err(_) => continue,
                };
                let slot = match boundary.connection(peer(&stream, accepted), closer) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        let mut s = stream;
                        // Never block the accept loop on a refused client.
                        let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                        let _ = write_frame(
                            &mut s,
                            &Response::err(ErrorKind::Busy, refused.to_string()),
                            &[],
                        );
                        continue;
                    }
                };
                let (service, boundary) = (service.clone(), boundary.clone());
                std::thread::spawn(move || {
                    serve_connection(&service, &boundary, &slot, stream);
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
