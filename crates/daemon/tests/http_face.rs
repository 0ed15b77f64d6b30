//! The HTTP face (`[http] listen`): the network faces' tokens and limits in front of
//! every route, a non-loopback address refused without tokens, and the face still
//! serving after hostile connections.

mod common;
mod flight_support;

use common::*;
use flight_support::{free_port, run_daemon, sha, OPS, READER};
use std::io::{Read, Write};
use std::time::Duration;

/// One request on a fresh connection; the whole response as text.
fn get(port: u16, path: &str, headers: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn http_daemon(extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}"),
    );
    (d, port)
}

#[test]
fn without_tokens_the_loopback_face_serves_metrics_and_says_what_it_has() {
    let (d, port) = http_daemon("");
    let page = get(port, "/metrics", "");
    assert_eq!(status(&page), 200, "{page}");
    assert!(page.contains("ringfeed_connections"), "{page}");
    // Anonymous callers are still counted per peer.
    assert!(
        page.contains(
            "ringfeed_flight_principal_requests_total{principal=\"anonymous@127.0.0.1\"}"
        ),
        "{page}"
    );
    let none = get(port, "/nope", "");
    assert_eq!(status(&none), 404, "{none}");
    assert!(none.contains("GET /metrics"), "{none}");
    d.client().ping().unwrap();
}

#[test]
fn tokens_and_limits_guard_every_route() {
    let (d, port) = http_daemon(&format!(
        "[[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"test\"]\n\
         [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nread = [\"*\"]\nadmin = true\n\
         [limits.per_principal]\nrequests_per_s = 5\n",
        sha(READER),
        sha(OPS)
    ));
    // No token, an unknown one: 401 with a Bearer challenge, saying what to send.
    for (h, says) in [
        (String::new(), "no token"),
        (
            "Authorization: Bearer nope\r\n".to_string(),
            "unknown token",
        ),
    ] {
        let r = get(port, "/metrics", &h);
        assert_eq!(status(&r), 401, "{r}");
        assert!(r.contains("www-authenticate: Bearer"), "{r}");
        assert!(r.contains(says), "{r}");
    }
    // A reader may not see the metrics (they name every principal): 403.
    let r = get(
        port,
        "/metrics",
        &format!("Authorization: Bearer {READER}\r\n"),
    );
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("`admin` list"), "{r}");
    // An admin may, by header or by `access_token` (browsers, websockets).
    let r = get(
        port,
        "/metrics",
        &format!("Authorization: Bearer {OPS}\r\n"),
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = get(port, &format!("/metrics?access_token={OPS}"), "");
    assert_eq!(status(&r), 200, "{r}");
    // Over the request rate: 429 with Retry-After, and the other principal is untouched.
    let limited = (0..20)
        .map(|_| {
            get(
                port,
                "/metrics",
                &format!("Authorization: Bearer {READER}\r\n"),
            )
        })
        .find(|r| status(r) == 429)
        .expect("20 requests at once exceed 5/s");
    assert!(limited.contains("retry-after: "), "{limited}");
    assert!(limited.contains("requests_per_s"), "{limited}");
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(
        port,
        "/metrics",
        &format!("Authorization: Bearer {OPS}\r\n"),
    );
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        r.contains("ringfeed_flight_principal_refused_total{principal=\"reader\"}"),
        "{r}"
    );
    d.client().ping().unwrap();
}

#[test]
fn a_remote_address_without_tokens_refuses_to_start_naming_the_option() {
    let (st, err) = run_daemon("[http]\nlisten = \"0.0.0.0:0\"", &[]).expect("refuses to start");
    assert!(!st.success());
    assert!(err.contains("http.listen"), "{err}");
    assert!(
        err.contains("[http] allow_unauthenticated_remote = true"),
        "{err}"
    );
    // With the opt-in it serves.
    assert!(run_daemon(
        "[http]\nlisten = \"0.0.0.0:0\"\nallow_unauthenticated_remote = true",
        &[]
    )
    .is_none());
}

#[test]
fn a_taken_port_is_reported_before_the_daemon_looks_started() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (st, err) =
        run_daemon("", &["--http", &format!("127.0.0.1:{port}")]).expect("refuses to start");
    assert!(!st.success());
    assert!(err.contains("cannot serve HTTP"), "{err}");
    assert!(err.contains("--http"), "{err}");
}

#[test]
fn stalled_and_garbage_connections_do_not_block_the_face() {
    let (d, port) = http_daemon("");
    // Half a request line, then silence; a binary blob; a head over the cap.
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.write_all(b"GET /met").unwrap();
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage
        .write_all(&[0u8, 159, 146, 150, 255, 13, 10, 13, 10])
        .unwrap();
    let mut huge = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = huge.write_all(
        format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(64 << 10)
        )
        .as_bytes(),
    );
    let mut out = String::new();
    huge.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = huge.read_to_string(&mut out);
    assert!(
        out.is_empty() || status(&out) == 431 || status(&out) == 400,
        "{out}"
    );
    // A real request is answered meanwhile, and after.
    assert_eq!(status(&get(port, "/metrics", "")), 200);
    drop((stalled, garbage));
    assert_eq!(status(&get(port, "/metrics", "")), 200);
    d.client().ping().unwrap();
}

#[test]
fn an_unknown_field_is_a_bad_request_naming_it_and_the_known_ones() {
    let (d, port) = http_daemon("");
    d.client().append("test", &bars(&["AAA"], 0, 30)).unwrap();
    let r = get(
        port,
        "/api/bars?dataset=test&symbol=AAA&timeframe=1m&fields=close,nope",
        "",
    );
    assert_eq!(status(&r), 400, "{r}");
    let body = &r[r.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.contains("bad_request"), "{body}");
    assert!(
        body.contains("nope") && body.contains("open") && body.contains("volume"),
        "the message names the unknown field and the known ones: {body}"
    );
    // The face still answers the real query, with the fields asked for.
    let ok = get(
        port,
        "/api/bars?dataset=test&symbol=AAA&timeframe=1m&fields=close",
        "",
    );
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(ok.contains("\"close\"") && !ok.contains("\"open\""), "{ok}");
    d.client().ping().unwrap();
}
