//! Followers of a primary that requires client certificates (mutual TLS, the primary's
//! `[flight.tls] client_ca`): real `ringfeedd` binaries on loopback (as in follow.rs),
//! with certificates made by the `openssl` command. A follower without a certificate is
//! refused and says so while serving; one with it (`[follow] tls_cert`/`tls_key`, or
//! `--follow-cert`/`--follow-key`) follows; a certificate without its key, or files that
//! are not PEM, stop the start naming what is wrong. Each test ends with a real query.

mod common;
mod flight_support;

use arrow_array::{ArrayRef, RecordBatch};
use common::*;
use flight_support::run_daemon;
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token followers present (read scope on `test`).
const FOLLOWER: &str = "follower-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `ringfeedd` with Flight on a free port and the follower's token.
struct Node {
    dir: tempfile::TempDir,
    port: u16,
    socket: PathBuf,
    cfg: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Writes the config (`extra` at its end; dataset `test` unless `primary` is false)
    /// without starting.
    fn prepare(primary: bool, flight: &str, extra: &str) -> Node {
        shm_dir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let socket = dir.path().join("rf.sock");
        let cfg = dir.path().join("ringfeed.toml");
        let datasets = if primary {
            "[datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\nfsync = \"never\"\n"
        } else {
            ""
        };
        std::fs::write(
            &cfg,
            format!(
                "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"{}\"\nmemory_budget = \"256MiB\"\n\
                 [flight]\nlisten = \"127.0.0.1:{port}\"\n{flight}\n\
                 [[auth.tokens]]\nname = \"follower\"\nsha256 = \"{}\"\nread = [\"test\"]\n\
                 {extra}\n{datasets}",
                dir.path().join("data"),
                socket,
                prefix_for(dir.path()),
                ringfeed_daemon::auth::hash_token(FOLLOWER),
            ),
        )
        .unwrap();
        Node {
            dir,
            port,
            socket,
            cfg,
            child: None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Starts with `args` and waits until its socket answers.
    fn start(&mut self, args: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
            .arg("--config")
            .arg(&self.cfg)
            .args(args)
            .env("RINGFEED_SHM_DIR", shm_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ringfeedd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Client::connect(Some(&self.socket)).is_err() {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ringfeedd exited with {s}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ringfeedd did not come up within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        Client::connect(Some(&self.socket)).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mine = format!("ringfeed.{}", prefix_for(self.dir.path()));
        for e in std::fs::read_dir(shm_dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&mine)
                && matches!(name.as_bytes().get(mine.len()), Some(b'.' | b'@'))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Every row of `test` at `tf`, strings as plain utf8 (so two stores compare by value).
fn rows(n: &Node, tf: &str) -> Option<RecordBatch> {
    let q = QuerySpec {
        dataset: "test".into(),
        timeframe: tf.into(),
        ..Default::default()
    };
    let bars = n.client().bars(&q).ok()?;
    let batches: Vec<RecordBatch> = bars
        .batches
        .iter()
        .map(|b| canon(b.record_batch()))
        .collect();
    if batches.is_empty() {
        return None;
    }
    Some(arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap())
}

fn canon(b: &RecordBatch) -> RecordBatch {
    use arrow_schema::{DataType, Field, Schema};
    let (fields, cols): (Vec<Field>, Vec<ArrayRef>) = b
        .schema()
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| match f.data_type() {
            DataType::Dictionary(..) | DataType::Utf8View | DataType::LargeUtf8 => (
                Field::new(f.name(), DataType::Utf8, f.is_nullable()),
                arrow_cast::cast(c, &DataType::Utf8).unwrap(),
            ),
            _ => (f.as_ref().clone(), c.clone()),
        })
        .unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

/// Waits until `f` holds `p`'s rows of `test` at every stored timeframe.
fn converge(p: &Node, f: &Node, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !["1m", "5m", "1h"].iter().all(|tf| {
        let a = rows(p, tf);
        a.is_some() && a == rows(f, tf)
    }) {
        assert!(
            Instant::now() < deadline,
            "the follower did not converge within {secs} s:\n{}",
            f.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A metric's value in `text` (the first line starting with `name`).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The follower still answers a real query, equal to the primary's.
fn still_answers(primary: &Node, follower: &Node) {
    let q = QuerySpec {
        dataset: "test".into(),
        symbols: vec!["AAA".into()],
        timeframe: "1h".into(),
        ..Default::default()
    };
    let f = follower
        .client()
        .bars(&q)
        .expect("the follower answers a query");
    let p = primary.client().bars(&q).unwrap();
    assert!(f.rows > 0);
    assert_eq!(f.rows, p.rows);
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made
/// with the `openssl` command (PEM files in `dir`: ca.pem, server.pem, server.key,
/// client.pem, client.key). `false` (and the test skips, saying why) without openssl.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ringfeed test CA",
        ],
    ]
    .concat())
    {
        return false;
    }
    [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ]
    .iter()
    .all(|(who, ext)| {
        std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
        let (key, csr, pem, e) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ],
        ]
        .concat())
            && run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &e,
            ])
    })
}

/// The certificates, or `None` when the test must skip (no openssl).
fn certs() -> Option<tempfile::TempDir> {
    let certs = tempfile::tempdir().unwrap();
    if make_certs(certs.path()) {
        Some(certs)
    } else {
        eprintln!(
            "skipped: the openssl command is missing or failed (it makes the test's certificates)"
        );
        None
    }
}

/// A primary requiring client certificates signed by the test CA, with rows of `test`.
fn mtls_primary(certs: &Path) -> Node {
    let mut p = Node::prepare(
        true,
        &format!(
            "[flight.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}",
            certs.join("server.pem"),
            certs.join("server.key"),
            certs.join("ca.pem"),
        ),
        "",
    );
    p.start(&[]);
    p.client()
        .append("test", &bars(&["AAA", "BBB"], 0, 150))
        .unwrap();
    p
}

#[test]
fn a_primary_requiring_client_certificates_is_followed_with_one_and_refuses_without() {
    let Some(certs) = certs() else { return };
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
    let mut bare = Node::prepare(false, "", &follow(""));
    bare.start(&[]);
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
        rows(&bare, "1m"),
        None,
        "nothing came without a certificate"
    );
    bare.client().ping().expect("the refused follower serves");

    // With the certificate, from the config (paths relative to the config file).
    let mut f = Node::prepare(
        false,
        "",
        &follow("tls_cert = \"certs/client.pem\"\ntls_key = \"certs/client.key\"\n"),
    );
    let local = f.dir.path().join("certs");
    std::fs::create_dir_all(&local).unwrap();
    for name in ["client.pem", "client.key"] {
        std::fs::copy(pem(name), local.join(name)).unwrap();
    }
    f.start(&[]);
    converge(&p, &f, 60);
    let stat = f.client().stat().unwrap();
    assert_eq!(
        metric(&stat, "ringfeed_follow_connected{dataset=\"test\"}"),
        Some(1.0),
        "{stat}"
    );

    // With the certificate from the flags (this daemon's config has no [follow]).
    let mut g = Node::prepare(false, "", "");
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
    g.start(&flags);
    // New rows reach both.
    p.client()
        .append("test", &bars(&["AAA", "CCC"], 150, 60))
        .unwrap();
    converge(&p, &f, 60);
    converge(&p, &g, 60);
    // The refused one still has nothing, and still serves.
    assert_eq!(rows(&bare, "1m"), None);
    bare.client().ping().unwrap();
    still_answers(&p, &f);
    still_answers(&p, &g);
}

#[test]
fn a_client_certificate_without_its_key_or_not_pem_stops_the_start_naming_it() {
    let Some(certs) = certs() else { return };
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
    let mut ok = Node::prepare(
        false,
        "",
        &format!(
            "{follow}tls_cert = {:?}\ntls_key = {:?}\n",
            pem("client.pem"),
            pem("client.key")
        ),
    );
    ok.start(&[]);
    ok.client().ping().unwrap();
    assert!(ok.client().health().is_ok());
}
