//! Clients that do not play along: idle and half-sent connections, payloads
//! announced large and trickled, one process opening many connections, and
//! slow or endless HTTP requests on the metrics endpoint. Each case ends with
//! the daemon answering a real query that returns every acknowledged row.

use ringfeed_client::Client;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Appends 60 bars of one symbol and checks that a query returns all of
/// them (and all acknowledged before).
fn still_serves(d: &Daemon, symbol: &str, acknowledged: &mut u64) {
    let mut c = d.client();
    *acknowledged += c.append("test", &bars(&[symbol], 0, 60)).unwrap();
    let b = c.bars(&q("1m")).unwrap();
    assert_eq!(b.rows, *acknowledged, "every acknowledged row is there");
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb << 10
}

/// A frame header announcing `payload` bytes for an append.
fn append_head(payload: u64) -> Vec<u8> {
    let mut v = frame(br#"{"op":"append","dataset":"test"}"#, &[]);
    let at = v.len() - 8;
    v[at..].copy_from_slice(&payload.to_le_bytes());
    v
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_and_half_sent_connections_cannot_hold_every_slot() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "max_connections = 8\nidle_timeout = \"60s\"\nrequest_timeout = \"1s\"",
    );
    let mut acked = 0;
    still_serves(&d, "A", &mut acked);
    // Eight idle connections fill the table; eight more each send half a
    // header. Every newcomer takes the slot of the idlest.
    let idle: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let half: Vec<UnixStream> = (0..8)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.write_all(&append_head(1000)[..6]).unwrap();
            s
        })
        .collect();
    still_serves(&d, "B", &mut acked);
    // The half-sent ones are cut once the request timeout passes, whether or
    // not they were evicted first: their reads end.
    for mut s in half {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a half-sent request is closed, not answered");
    }
    drop(idle);
    let stat = d.client().stat().unwrap();
    assert!(
        !stat.contains("ringfeed_evicted_connections_total 0"),
        "idle connections made room:\n{stat}"
    );
    still_serves(&d, "C", &mut acked);
}

#[test]
fn an_idle_connection_is_closed_and_its_client_reconnects() {
    let d = Daemon::start_with(tempfile::tempdir().unwrap(), "idle_timeout = \"1s\"");
    let mut c = d.client();
    c.ping().unwrap();
    let mut raw = UnixStream::connect(&d.socket).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(raw.read(&mut buf).unwrap(), 0, "closed after idle_timeout");
    std::thread::sleep(Duration::from_millis(1200));
    // `c` sat idle past the timeout too: its next call reconnects.
    let mut acked = 0;
    acked += c.append("test", &bars(&["A"], 0, 10)).unwrap();
    assert_eq!(c.bars(&q("1m")).unwrap().rows, acked);
}

#[test]
fn trickled_large_payloads_hold_no_memory_they_did_not_receive() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "request_timeout = \"3s\"\nmax_inflight_bytes = \"512MiB\"",
    );
    let mut acked = 0;
    still_serves(&d, "A", &mut acked);
    let pid = d.child.id();
    let before = rss(pid);
    // Six clients announce 100 MiB appends and trickle a few bytes.
    let mut trickling: Vec<UnixStream> = (0..6)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.write_all(&append_head(100 << 20)).unwrap();
            s.write_all(&[0xff; 100]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for s in &mut trickling {
        let _ = s.write_all(&[0xff; 100]);
    }
    let during = rss(pid);
    assert!(
        during < before + (64 << 20),
        "RSS grew from {before} to {during} bytes for 1.2 KB received"
    );
    // A seventh would exceed the in-flight budget: told `busy`, not buffered.
    let mut c = d.client();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&append_head(100 << 20)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    // (the daemon drains what we announced; we sent no more, so it is cut
    // at the request timeout rather than answered: either way nothing held)
    let mut sink = vec![];
    let _ = s.read_to_end(&mut sink);
    // The trickling ones are cut at the request timeout.
    for mut s in trickling {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut sink = vec![];
        let _ = s.read_to_end(&mut sink);
    }
    wait_until("trickling connections closed", || {
        c.stat()
            .unwrap()
            .lines()
            .any(|l| l.starts_with("ringfeed_connections ") && l.ends_with(" 1"))
    });
    still_serves(&d, "B", &mut acked);
}

#[test]
fn one_process_cannot_take_every_connection() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "max_connections = 16\nmax_connections_per_client = 4",
    );
    // Four connections that the daemon took (a connection of the start-up
    // probe may still be counted for a moment: retry until it is gone).
    let mine: Vec<Client> = (0..4)
        .map(|_| {
            let mut got = None;
            wait_until("a connection within the share", || {
                let mut c = d.client();
                let ok = c.ping().is_ok();
                if ok {
                    got = Some(c);
                }
                ok
            });
            got.unwrap()
        })
        .collect();
    let err = Client::connect(Some(&d.socket))
        .and_then(|mut c| c.ping())
        .unwrap_err();
    assert_eq!(server_kind(&err), "busy", "{err}");
    assert!(
        err.to_string().contains("max_connections_per_client"),
        "{err}"
    );
    drop(mine);
    let mut acked = 0;
    // A freed share is usable again.
    wait_until("a freed share", || {
        Client::connect(Some(&d.socket))
            .and_then(|mut c| c.ping())
            .is_ok()
    });
    still_serves(&d, "A", &mut acked);
}

#[test]
fn a_payload_on_an_operation_without_one_is_refused_and_the_stream_stays_in_sync() {
    let d = Daemon::start();
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let h = br#"{"op":"ping"}"#;
    // A payload on an op without one, then the same again, well-formed.
    let mut frame = common::frame(h, b"12345");
    frame.extend_from_slice(&common::frame(h, &[]));
    s.write_all(&frame).unwrap();
    let mut r = std::io::BufReader::new(s);
    let (first, _): (ringfeed_client::Response, _) =
        ringfeed_client::protocol::read_frame(&mut r, 0).unwrap();
    assert!(!first.ok);
    assert!(
        first.error.unwrap().message.contains("takes no payload"),
        "refused with the reason"
    );
    let (second, _): (ringfeed_client::Response, _) =
        ringfeed_client::protocol::read_frame(&mut r, 0).unwrap();
    assert!(second.ok, "the next frame is read in sync");
    let mut acked = 0;
    still_serves(&d, "A", &mut acked);
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get_metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_metrics_endpoint_is_not_blocked_by_slow_or_endless_requests() {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("metrics = \"127.0.0.1:{port}\""),
    );
    let pid = d.child.id();
    let before = rss(pid);
    // A client that sends half a request line and stalls.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /met").unwrap();
    // Another that sends 64 MiB without a newline.
    let endless = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let chunk = vec![b'A'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..64 {
            match s.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        sent
    });
    // Neither blocks a real scrape.
    let page = get_metrics(port);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("ringfeed_connections"), "{page}");
    let sent = endless.join().unwrap();
    assert!(
        sent < 64 << 20,
        "an endless request line is cut, not buffered"
    );
    assert!(
        rss(pid) < before + (32 << 20),
        "the endless line did not grow memory"
    );
    drop(slow);
    assert!(get_metrics(port).contains("ringfeed_refused_connections_total"));
    let mut acked = 0;
    still_serves(&d, "A", &mut acked);
}

#[test]
fn ringfeed_health_reports_and_exits_by_state() {
    let d = Daemon::start();
    let h = d.client().health().unwrap();
    assert!(h.healthy, "{h:?}");
    assert!(h.checks.iter().any(|c| c.name == "writable" && c.ok));
}

#[test]
fn a_second_daemon_with_the_same_arena_prefix_is_refused() {
    let d = Daemon::start();
    let mut acked = 0;
    still_serves(&d, "A", &mut acked);
    let prefix = prefix_for(d.dir.path());
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--data-dir")
        .arg(other.path().join("data"))
        .arg("--socket")
        .arg(other.path().join("rf.sock"))
        .args(["--arena-prefix", &prefix])
        .env("RINGFEED_SHM_DIR", &d.shm)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by the live process"), "{err}");
    assert!(err.contains("--arena-prefix"), "{err}");
    // The first daemon's topics are untouched.
    let mut r = d
        .client()
        .subscribe("test", "1m", ringfeed_arrow::StartAt::Next)
        .unwrap();
    still_serves(&d, "B", &mut acked);
    assert!(r.read(Duration::from_secs(10)).unwrap().is_some());
}
