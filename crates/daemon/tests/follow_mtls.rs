//! Followers of a primary that requires client certificates (mutual TLS, the primary's
//! `[flight.tls] client_ca`): real `ringfeedd` binaries on loopback (as in follow.rs),
//! with certificates made by the `openssl` command. A follower without a certificate is
//! refused and says so while serving; one with it (`[follow] tls_cert`/`tls_key`, or
//! `--follow-cert`/`--follow-key`) follows; a certificate without its key, or files that
//! are not PEM, stop the start naming what is wrong. Each test ends with a real query.

mod common;
mod flight_support;

use common::node::{converge, metric, still_answers, Node, FOLLOWER};
use common::*;
use flight_support::run_daemon;
use std::path::Path;
use std::time::{Duration, Instant};

/// A `ringfeedd` (common::node) not started yet: a primary (dataset `test`) with `flight`
/// lines in its `[flight]` table, or a follower with `follow` (its `[follow]` table, or
/// nothing when the flags give it).
fn prepare(primary: bool, flight: &str, follow: &str) -> Node {
    if primary {
        Node::prepare(None, "", flight)
    } else {
        Node::prepare(Some(follow), "", flight)
    }
}

/// Starts `n` with `args` besides `--config`.
fn start(n: &mut Node, args: &[String]) {
    n.args = args.to_vec();
    n.start();
}

/// A primary requiring client certificates signed by the test CA, with rows of `test`.
fn mtls_primary(certs: &Path) -> Node {
    let mut p = prepare(
        true,
        &format!(
            "[flight.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}",
            certs.join("server.pem"),
            certs.join("server.key"),
            certs.join("ca.pem"),
        ),
        "",
    );
    start(&mut p, &[]);
    p.client()
        .append("test", &bars(&["AAA", "BBB"], 0, 150))
        .unwrap();
    p
}

#[test]
fn a_primary_requiring_client_certificates_is_followed_with_one_and_refuses_without() {
    let Some(certs) = common::certs::test_certs() else {
        return;
    };
    let pem = |f: &str| certs.path().join(f);
    let p = mtls_primary(certs.path());
    let follow = |cert: &str| {
        format!(
            "[follow]\nurl = \"grpc+tls://127.0.0.1:{}\"\ntoken = \"{FOLLOWER}\"\ndatasets = [\"test\"]\n\
             tls_domain = \"localhost\"\ntls_ca = {:?}\n{cert}",
            p.port,
            pem("ca.pem")
        )
    };
    // Without a client certificate: the primary refuses the handshake. The follower
    // serves, and says why in its log, its health and its metrics.
    let mut bare = prepare(false, "", &follow(""));
    start(&mut bare, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bare.log().contains("the primary is unreachable") {
        assert!(Instant::now() < deadline, "{}", bare.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = bare.log();
    let line = log
        .lines()
        .find(|l| l.contains("the primary is unreachable"))
        .unwrap();
    assert!(line.contains(&format!("127.0.0.1:{}", p.port)), "{line}");
    // The cause, not only "transport error" (with TLS 1.3 the client may see the
    // primary's certificate alert, or only the connection it then closed).
    assert!(line.contains("transport error: "), "{line}");
    let h = bare.client().health().unwrap();
    let check = h
        .checks
        .iter()
        .find(|c| c.name == "follow test")
        .expect("a follow check");
    // (A follower waiting for its primary is healthy: it serves what it has.)
    assert!(
        check.detail.contains("not connected") && check.detail.contains(&p.port.to_string()),
        "{check:?}"
    );
    let stat = bare.client().stat().unwrap();
    assert_eq!(
        metric(&stat, "ringfeed_follow_connected{dataset=\"test\"}"),
        Some(0.0),
        "{stat}"
    );
    assert_eq!(
        bare.client().bars(&q("1m")).map(|b| b.rows).unwrap_or(0),
        0,
        "nothing came without a certificate"
    );
    bare.client().ping().expect("the refused follower serves");

    // With the certificate, from the config (paths relative to the config file).
    let mut f = prepare(
        false,
        "",
        &follow("tls_cert = \"certs/client.pem\"\ntls_key = \"certs/client.key\"\n"),
    );
    let local = f.dir.path().join("certs");
    std::fs::create_dir_all(&local).unwrap();
    for name in ["client.pem", "client.key"] {
        std::fs::copy(pem(name), local.join(name)).unwrap();
    }
    start(&mut f, &[]);
    converge(&p, &f, 60);
    let stat = f.client().stat().unwrap();
    assert_eq!(
        metric(&stat, "ringfeed_follow_connected{dataset=\"test\"}"),
        Some(1.0),
        "{stat}"
    );

    // With the certificate from the flags (this daemon's config has no [follow]).
    let mut g = prepare(false, "", "");
    let flags: Vec<String> = [
        "--follow",
        &format!("grpc+tls://127.0.0.1:{}", p.port),
        "--token",
        FOLLOWER,
        "--datasets",
        "test",
        "--follow-ca",
        pem("ca.pem").to_str().unwrap(),
        "--follow-cert",
        pem("client.pem").to_str().unwrap(),
        "--follow-key",
        pem("client.key").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    // (No tls_domain flag: the primary's certificate names 127.0.0.1 too.)
    start(&mut g, &flags);
    // New rows reach both.
    p.client()
        .append("test", &bars(&["AAA", "CCC"], 150, 60))
        .unwrap();
    converge(&p, &f, 60);
    converge(&p, &g, 60);
    // The refused one still has nothing, and still serves.
    assert_eq!(bare.client().bars(&q("1m")).map(|b| b.rows).unwrap_or(0), 0);
    bare.client().ping().unwrap();
    still_answers(&p, &f);
    still_answers(&p, &g);
}

#[test]
fn a_client_certificate_without_its_key_or_not_pem_stops_the_start_naming_it() {
    let Some(certs) = common::certs::test_certs() else {
        return;
    };
    let pem = |f: &str| certs.path().join(f).display().to_string();
    let follow = "[follow]\nurl = \"grpc+tls://127.0.0.1:9\"\ntoken = \"t\"\n";
    let refused = |extra: &str, args: &[&str]| {
        let (st, err) = run_daemon(extra, args).expect("refused at start");
        assert!(!st.success(), "{err}");
        err
    };
    // A certificate without its key (config), and a key without its certificate.
    let err = refused(
        &format!("{follow}tls_cert = {:?}\n", pem("client.pem")),
        &[],
    );
    assert!(
        err.contains("follow.tls_key") && err.contains("no key") && err.contains("client.pem"),
        "{err}"
    );
    let err = refused(&format!("{follow}tls_key = {:?}\n", pem("client.key")), &[]);
    assert!(
        err.contains("follow.tls_cert") && err.contains("client.key"),
        "{err}"
    );
    // The flags: one without the other is refused by the parser, naming the missing one.
    let err = refused(
        "",
        &[
            "--follow",
            "grpc+tls://127.0.0.1:9",
            "--follow-cert",
            &pem("client.pem"),
        ],
    );
    assert!(err.contains("--follow-key"), "{err}");
    // A missing key file, and a key that is not PEM: named.
    let err = refused(
        &format!(
            "{follow}tls_cert = {:?}\ntls_key = {:?}\n",
            pem("client.pem"),
            pem("missing.key")
        ),
        &[],
    );
    assert!(
        err.contains("follow.tls_key") && err.contains("missing.key"),
        "{err}"
    );
    std::fs::write(certs.path().join("bad.key"), "not a key").unwrap();
    let err = refused(
        &format!(
            "{follow}tls_cert = {:?}\ntls_key = {:?}\n",
            pem("client.pem"),
            pem("bad.key")
        ),
        &[],
    );
    assert!(
        err.contains("follow.tls_key") && err.contains("bad.key") && err.contains("PEM"),
        "{err}"
    );
    // A certificate file holding a key: no certificate in it.
    let err = refused(
        &format!(
            "{follow}tls_cert = {:?}\ntls_key = {:?}\n",
            pem("client.key"),
            pem("client.key")
        ),
        &[],
    );
    assert!(
        err.contains("follow.tls_cert") && err.contains("no PEM certificate"),
        "{err}"
    );
    // A daemon with the right pair starts (and serves while its primary is away).
    let mut ok = prepare(
        false,
        "",
        &format!(
            "{follow}tls_cert = {:?}\ntls_key = {:?}\n",
            pem("client.pem"),
            pem("client.key")
        ),
    );
    start(&mut ok, &[]);
    ok.client().ping().unwrap();
    assert!(ok.client().health().is_ok());
}
