//! Reading a request frame from an untrusted peer, under deadlines and
//! limits: the header is read and parsed before any payload byte; the
//! payload's declared length is checked against the operation's own limit and
//! reserved against the daemon-wide in-flight budget before anything is
//! allocated; and the payload is read incrementally, so memory grows only as
//! bytes actually arrive. The wire format is [`ringfeed_client::protocol`]'s:
//! `u32 header length · JSON header · u64 payload length · payload`.

use super::{Boundary, PayloadBudget};
use ringfeed_client::protocol::{ErrorKind, Request, MAX_HEADER};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Payload bytes read per step (and the most allocated ahead of arrival).
const STEP: usize = 1 << 20;

/// Payloads refused for their size are read and dropped (so the client,
/// still writing, gets the reason rather than a broken pipe) up to this
/// length; beyond it the connection is closed after the answer.
const MAX_DRAIN: u64 = 1 << 30;

/// The read timeout a connection's socket keeps for its whole life (set
/// once: a `setsockopt` per read cost ~13 µs of daemon CPU per request).
/// Deadlines are checked after each read returns, so a request is cut at
/// most one read timeout after its deadline.
pub fn socket_timeout(limits: &super::FaceLimits) -> Duration {
    limits.idle_timeout.min(limits.request_timeout)
}

/// What reading a frame gave.
pub enum Incoming {
    /// A whole request, with its payload and the budget the payload holds.
    Request(Box<Request>, Vec<u8>, Option<PayloadBudget>),
    /// The frame was consumed whole but is refused; answer this and go on.
    Refuse(ErrorKind, String),
    /// Answer this, then close: the stream cannot be trusted to be in sync.
    Fatal(ErrorKind, String),
    /// The peer closed between frames.
    Eof,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A frame started but did not arrive whole within the request timeout,
    /// or the connection broke mid-frame.
    Cut(String),
}

/// The largest payload `req` may carry (0 for operations without one).
pub fn payload_limit(req: &Request, max_append_bytes: u64) -> u64 {
    match req {
        Request::Append { .. } => max_append_bytes,
        _ => 0,
    }
}

struct Deadline(Instant);

impl Deadline {
    /// Reads exactly `buf.len()` bytes before the deadline.
    fn read_exact<S: Read>(&self, s: &mut S, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read(s, buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    fn read<S: Read>(&self, s: &mut S, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if Instant::now() >= self.0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            match s.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                r => return r,
            }
        }
    }

    /// Reads and drops `len` bytes.
    fn drain<S: Read>(&self, s: &mut S, mut len: u64) -> io::Result<()> {
        let mut sink = vec![0u8; 64 << 10];
        while len > 0 {
            let want = sink.len().min(len as usize);
            let n = self.read(s, &mut sink[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            len -= n as u64;
        }
        Ok(())
    }
}

fn cut(e: io::Error) -> Incoming {
    Incoming::Cut(match e.kind() {
        io::ErrorKind::TimedOut => "the request did not arrive whole within request_timeout".into(),
        _ => format!("connection broke mid-request: {e}"),
    })
}

/// Drops a refused frame's payload (so the stream stays in sync), or gives
/// up on the connection when it is too large to be worth reading.
fn refuse_after_drain<S: Read>(
    s: &mut S,
    d: &Deadline,
    plen: u64,
    kind: ErrorKind,
    message: String,
) -> Incoming {
    if plen > MAX_DRAIN {
        return Incoming::Fatal(kind, message);
    }
    match d.drain(s, plen) {
        Ok(()) => Incoming::Refuse(kind, message),
        Err(e) => cut(e),
    }
}

/// Reads one request frame from `s` (buffered, with [`socket_timeout`] as
/// its read timeout).
pub fn read_request<S: Read>(s: &mut S, b: &Boundary, max_append_bytes: u64) -> Incoming {
    let limits = b.limits();
    // Between frames: wait up to the idle timeout for the first byte.
    let mut len4 = [0u8; 4];
    let idle_since = Instant::now();
    let got = loop {
        match s.read(&mut len4) {
            Ok(0) => return Incoming::Eof,
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if idle_since.elapsed() >= limits.idle_timeout {
                    return Incoming::Idle;
                }
            }
            Err(e) => return Incoming::Cut(e.to_string()),
        }
    };
    // From the first byte on, the whole frame has `request_timeout`.
    let d = Deadline(Instant::now() + limits.request_timeout);
    if let Err(e) = d.read_exact(s, &mut len4[got..]) {
        return cut(e);
    }
    let hlen = u32::from_le_bytes(len4);
    if hlen > MAX_HEADER {
        return Incoming::Fatal(
            ErrorKind::TooLarge,
            format!("request header of {hlen} bytes exceeds the limit of {MAX_HEADER}: is this a ringfeed client?"),
        );
    }
    let mut h = vec![0u8; hlen as usize];
    let mut len8 = [0u8; 8];
    if let Err(e) = d
        .read_exact(s, &mut h)
        .and_then(|()| d.read_exact(s, &mut len8))
    {
        return cut(e);
    }
    let plen = u64::from_le_bytes(len8);
    let parsed = serde_json::from_slice::<Request>(&h);
    let limit = match &parsed {
        Ok(req) => payload_limit(req, max_append_bytes),
        // Unparsable: the payload is read and dropped like any refused one.
        Err(_) => 0,
    };
    let req = match parsed {
        Ok(r) => r,
        Err(e) => {
            return refuse_after_drain(
                s,
                &d,
                plen,
                ErrorKind::BadRequest,
                format!("malformed request: {e}"),
            )
        }
    };
    if plen > limit {
        let message = if limit == 0 {
            format!("this operation takes no payload, but {plen} bytes were announced")
        } else {
            format!("request payload of {plen} bytes exceeds this daemon's max_append_bytes ({limit}): split the append into smaller batches")
        };
        return refuse_after_drain(s, &d, plen, ErrorKind::TooLarge, message);
    }
    if plen == 0 {
        return Incoming::Request(Box::new(req), Vec::new(), None);
    }
    let Some(budget) = b.reserve_payload(plen) else {
        let message = format!(
            "the daemon holds {} bytes of request payloads already (max_inflight_bytes): retry shortly",
            limits.max_inflight_bytes
        );
        return refuse_after_drain(s, &d, plen, ErrorKind::Busy, message);
    };
    // Incremental: allocate only for bytes that arrived (plus one step).
    let mut payload = Vec::with_capacity((plen as usize).min(STEP));
    while (payload.len() as u64) < plen {
        let want = ((plen - payload.len() as u64) as usize).min(STEP);
        let at = payload.len();
        payload.resize(at + want, 0);
        match d.read(s, &mut payload[at..]) {
            Ok(0) => return cut(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => payload.truncate(at + n),
            Err(e) => return cut(e),
        }
    }
    Incoming::Request(Box::new(req), payload, Some(budget))
}
