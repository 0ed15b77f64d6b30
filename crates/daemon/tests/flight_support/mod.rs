//! What the Flight test binaries share: a `ringfeedd` with `[flight]` on a free
//! loopback port, arrow-flight clients (plain, with a token, over TLS), the socket's
//! answer to compare with, and the daemon's exit for start-up checks.
#![allow(dead_code)] // each test binary uses some of them

use super::common::*;
use arrow_array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient, FlightInfo, Ticket};
use futures::TryStreamExt;
use ringfeed_client::protocol::QuerySpec;
use std::future::Future;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Rows per result batch in these daemons: small, so results span many batches.
pub const CHUNK_ROWS: usize = 500;

/// A port nobody listens on now (the daemon binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon with Flight on a loopback port, and that port.
pub fn flight_daemon() -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("chunk_rows = {CHUNK_ROWS}\n[flight]\nlisten = \"127.0.0.1:{port}\""),
    );
    (d, port)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on `rt` under a watchdog: a hang fails the test with `what`.
pub fn within<T>(rt: &tokio::runtime::Runtime, what: &str, f: impl Future<Output = T>) -> T {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within 120 s"))
    })
}

pub async fn connect(port: u16) -> FlightClient {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect to the Flight endpoint");
    FlightClient::new_from_inner(
        FlightServiceClient::new(channel).max_decoding_message_size(64 << 20),
    )
}

/// `n` minutes of three symbols, stored through the socket.
pub fn seed(d: &Daemon, n: i64) {
    let mut c = d.client();
    for (i, s) in ["AAA", "BBB", "CCC"].iter().enumerate() {
        let b = bars(&[s], 0, n);
        // Prices shifted per symbol, so a mixed-up symbol shows.
        let shift = 100_000.0 * i as f64;
        let cols = b
            .columns()
            .iter()
            .zip(b.schema().fields())
            .map(|(col, f)| match f.name().as_str() {
                "open" | "high" | "low" | "close" => {
                    let v = col
                        .as_any()
                        .downcast_ref::<arrow_array::Float64Array>()
                        .unwrap();
                    std::sync::Arc::new(arrow_array::Float64Array::from_iter_values(
                        v.values().iter().map(|x| x + shift),
                    )) as arrow_array::ArrayRef
                }
                _ => col.clone(),
            })
            .collect();
        let b = RecordBatch::try_new(b.schema(), cols).unwrap();
        assert_eq!(c.append("test", &b).unwrap(), n as u64);
    }
}

/// The local socket's answer to `q`, as one batch.
pub fn local(d: &Daemon, q: &QuerySpec) -> RecordBatch {
    let bars = d.client().bars(q).expect("a local query");
    let batches: Vec<RecordBatch> = bars
        .batches
        .iter()
        .map(|b| b.record_batch().clone())
        .collect();
    let schema = batches[0].schema();
    arrow_select::concat::concat_batches(&schema, &batches).unwrap()
}

/// Everything a DoGet of `ticket` streams, and how many batches it took.
pub async fn fetch(
    c: &mut FlightClient,
    ticket: Vec<u8>,
) -> Result<(RecordBatch, usize), FlightError> {
    let stream = c.do_get(Ticket::new(ticket)).await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let schema = batches[0].schema();
    let n = batches.len();
    Ok((
        arrow_select::concat::concat_batches(&schema, &batches).unwrap(),
        n,
    ))
}

pub fn json_ticket(q: &QuerySpec) -> Vec<u8> {
    serde_json::to_vec(q).unwrap()
}

pub fn status_of(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

pub fn ticket_of(info: &FlightInfo) -> Vec<u8> {
    assert_eq!(info.endpoint.len(), 1, "{info:?}");
    info.endpoint[0].ticket.as_ref().unwrap().ticket.to_vec()
}

/// Flight and the socket both still answer a real query (of symbol BBB).
pub fn still_serves(rt: &tokio::runtime::Runtime, d: &Daemon, port: u16) {
    still_serves_symbol(rt, d, port, "BBB");
    d.client().ping().expect("the socket still answers");
}

/// Runs `ringfeedd` with `args` and a config holding `flight`; its exit
/// status and stderr if it exits within 30 s, `None` if it keeps serving
/// (it is then stopped with SIGTERM).
pub fn run_daemon(flight: &str, args: &[&str]) -> Option<(std::process::ExitStatus, String)> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ringfeed.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"{}\"\n{flight}\n",
            dir.path().join("data"),
            dir.path().join("rf.sock"),
            prefix_for(dir.path())
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .env("RINGFEED_SHM_DIR", shm_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sock = dir.path().join("rf.sock");
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Some((st, err));
        }
        if ringfeed_client::Client::connect(Some(&sock)).is_ok() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let st = child.wait().unwrap();
            assert!(st.success(), "stopped with {st:?}");
            return None;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ringfeedd neither served nor exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tokens of the auth tests: `reader` reads `test`, `other` reads `bin*` only, `ops` is
/// admin and reads everything.
pub const READER: &str = "reader-token-0123456789";
pub const OTHER: &str = "other-token-0123456789";
pub const OPS: &str = "ops-token-0123456789";

pub fn sha(t: &str) -> String {
    ringfeed_daemon::auth::hash_token(t)
}

/// A Flight daemon on loopback whose calls need tokens, with `limits` appended.
pub fn auth_daemon(limits: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!(
            "chunk_rows = {CHUNK_ROWS}\n[flight]\nlisten = \"127.0.0.1:{port}\"\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"test\"]\n\
             [[auth.tokens]]\nname = \"other\"\nsha256 = \"{}\"\nread = [\"bin*\"]\n\
             [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nread = [\"*\"]\nadmin = true\n{limits}",
            sha(READER),
            sha(OTHER),
            sha(OPS)
        ),
    );
    (d, port)
}

pub async fn connect_as(port: u16, token: Option<&str>) -> FlightClient {
    let mut c = connect(port).await;
    if let Some(t) = token {
        c.add_header("authorization", &format!("Bearer {t}"))
            .unwrap();
    }
    c
}

pub async fn action(c: &mut FlightClient, kind: &str) -> Result<Vec<u8>, FlightError> {
    let parts: Vec<bytes::Bytes> = c
        .do_action(Action::new(kind, ""))
        .await?
        .try_collect()
        .await?;
    Ok(parts.concat())
}

pub fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Flight still answers a real query of `symbol`, as the socket does.
pub fn still_serves_symbol(rt: &tokio::runtime::Runtime, d: &Daemon, port: u16, symbol: &str) {
    let q = QuerySpec {
        symbols: vec![symbol.into()],
        ..q("1m")
    };
    let want = local(d, &q);
    let (got, _) = within(rt, "a query after the ordeal", async {
        fetch(&mut connect(port).await, json_ticket(&q)).await
    })
    .expect("Flight still answers");
    assert_eq!(got, want);
}
