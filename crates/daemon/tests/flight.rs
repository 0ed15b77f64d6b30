//! The Arrow Flight face, end to end: a real `ringfeedd` with `[flight]`
//! on loopback, and arrow-flight's own `FlightClient`. Every answer is
//! checked against the local socket's answer to the same query, every bad
//! input against its gRPC code and message, and after each ordeal the
//! daemon must still answer over Flight and over its socket.

mod common;

use arrow_array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient, FlightDescriptor, FlightInfo, Ticket};
use common::*;
use futures::{StreamExt, TryStreamExt};
use ringfeed_client::protocol::QuerySpec;
use std::future::Future;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Rows per result batch in these daemons: small, so results span many batches.
const CHUNK_ROWS: usize = 500;

/// A port nobody listens on now (the daemon binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon with Flight on a loopback port, and that port.
fn flight_daemon() -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("chunk_rows = {CHUNK_ROWS}\n[flight]\nlisten = \"127.0.0.1:{port}\""),
    );
    (d, port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on `rt` under a watchdog: a hang fails the test with `what`.
fn within<T>(rt: &tokio::runtime::Runtime, what: &str, f: impl Future<Output = T>) -> T {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within 120 s"))
    })
}

async fn connect(port: u16) -> FlightClient {
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
fn seed(d: &Daemon, n: i64) {
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
fn local(d: &Daemon, q: &QuerySpec) -> RecordBatch {
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
async fn fetch(c: &mut FlightClient, ticket: Vec<u8>) -> Result<(RecordBatch, usize), FlightError> {
    let stream = c.do_get(Ticket::new(ticket)).await?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    let schema = batches[0].schema();
    let n = batches.len();
    Ok((
        arrow_select::concat::concat_batches(&schema, &batches).unwrap(),
        n,
    ))
}

fn json_ticket(q: &QuerySpec) -> Vec<u8> {
    serde_json::to_vec(q).unwrap()
}

fn status_of(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

fn ticket_of(info: &FlightInfo) -> Vec<u8> {
    assert_eq!(info.endpoint.len(), 1, "{info:?}");
    info.endpoint[0].ticket.as_ref().unwrap().ticket.to_vec()
}

/// Flight and the socket both still answer a real query.
fn still_serves(rt: &tokio::runtime::Runtime, d: &Daemon, port: u16) {
    let q = QuerySpec {
        symbols: vec!["BBB".into()],
        ..q("1m")
    };
    let want = local(d, &q);
    let (got, _) = within(rt, "a query after the ordeal", async {
        fetch(&mut connect(port).await, json_ticket(&q)).await
    })
    .expect("Flight still answers");
    assert_eq!(got, want);
    d.client().ping().expect("the socket still answers");
}

#[test]
fn flight_answers_what_the_socket_answers() {
    let (d, port) = flight_daemon();
    seed(&d, 2000);
    let rt = runtime();
    let mut c = within(&rt, "connect", connect(port));

    // ListFlights: one per stored timeframe, a path descriptor, the schema a
    // query of it answers with, and a ticket DoGet takes.
    let infos: Vec<FlightInfo> = within(&rt, "list_flights", async {
        c.list_flights("").await?.try_collect().await
    })
    .unwrap();
    let paths: Vec<Vec<String>> = infos
        .iter()
        .map(|i| i.flight_descriptor.as_ref().unwrap().path.clone())
        .collect();
    assert_eq!(
        paths,
        [["test", "1m"], ["test", "5m"], ["test", "1h"]].map(|p| p.map(String::from).to_vec())
    );
    for info in &infos {
        // Only hot days so far: the row count is not known without reading them.
        assert_eq!(info.total_records, -1, "{info:?}");
        let tf = &info.flight_descriptor.as_ref().unwrap().path[1];
        let (got, _) = within(
            &rt,
            "do_get of a listed flight",
            fetch(&mut c, ticket_of(info)),
        )
        .unwrap();
        let want = local(&d, &q(tf));
        assert_eq!(got, want, "{tf}");
        let schema = info.clone().try_decode_schema().unwrap();
        assert_eq!(
            &schema,
            want.schema().as_ref(),
            "{tf}: the listed schema is the answer's"
        );
    }
    let filtered: Vec<FlightInfo> = within(&rt, "list_flights test", async {
        c.list_flights("nosuchdataset").await?.try_collect().await
    })
    .unwrap();
    assert!(filtered.is_empty());

    // GetFlightInfo and GetSchema of a command; DoGet of its ticket equals the
    // socket's answer, in several batches.
    let cmd = br#"{"dataset": "test", "symbols": "AAA,CCC", "timeframe": "1m", "start": "2021-01-01T00:10Z"}"#;
    let info = within(
        &rt,
        "get_flight_info",
        c.get_flight_info(FlightDescriptor::new_cmd(cmd.to_vec())),
    )
    .unwrap();
    let q_cmd: QuerySpec = serde_json::from_slice(cmd).unwrap();
    let want = local(&d, &q_cmd);
    assert_eq!(info.total_records, want.num_rows() as i64);
    assert_eq!(want.num_rows(), 2 * 1990);
    assert!(info.total_bytes > 0);
    let schema = within(
        &rt,
        "get_schema",
        c.get_schema(FlightDescriptor::new_cmd(cmd.to_vec())),
    )
    .unwrap();
    assert_eq!(&schema, want.schema().as_ref());
    assert_eq!(info.clone().try_decode_schema().unwrap(), schema);
    let (got, batches) = within(&rt, "do_get", fetch(&mut c, ticket_of(&info))).unwrap();
    assert_eq!(got, want);
    assert!(batches >= 2 * 1990 / CHUNK_ROWS, "{batches} batches");

    // The bars() fields: resampled on read, fields, limit from the end, a list of symbols.
    let q_rs = QuerySpec {
        symbols: vec!["BBB".into(), "AAA".into()],
        fields: Some(vec!["close".into(), "volume".into()]),
        limit: Some(7),
        from_end: true,
        end: Some(ringfeed_client::time::TimeSpec::Text(
            "2021-01-01T20:00Z".into(),
        )),
        ..q("7m")
    };
    let (got, _) = within(&rt, "do_get resampled", fetch(&mut c, json_ticket(&q_rs))).unwrap();
    assert_eq!(got, local(&d, &q_rs));
    assert_eq!(got.num_rows(), 14);

    // Actions.
    let names: Vec<String> = within(&rt, "list_actions", async {
        c.list_actions()
            .await?
            .map_ok(|a| a.r#type)
            .try_collect()
            .await
    })
    .unwrap();
    assert_eq!(
        names,
        ["ping", "ready", "datasets", "stat", "delete", "write_down"]
    );
    let act = |c: &mut FlightClient, kind: &str, body: &str| {
        let a = Action::new(kind, body.as_bytes().to_vec());
        within(&rt, kind, async {
            let r: Vec<bytes::Bytes> = c.do_action(a).await?.try_collect().await?;
            Ok::<_, FlightError>(r)
        })
    };
    let pong = act(&mut c, "ping", "").unwrap();
    assert_eq!(pong.len(), 1);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&pong[0]).unwrap(),
        serde_json::json!({"ok": true})
    );
    let ready = act(&mut c, "ready", r#"{"dataset": "test"}"#).unwrap();
    let ready: ringfeed_client::protocol::ReadyReport = serde_json::from_slice(&ready[0]).unwrap();
    assert_eq!(ready, d.client().ready(Some("test")).unwrap());
    let datasets = act(&mut c, "datasets", "").unwrap();
    let datasets: serde_json::Value = serde_json::from_slice(&datasets[0]).unwrap();
    assert_eq!(
        datasets["test"]["symbols"],
        serde_json::json!(["AAA", "BBB", "CCC"])
    );
    let stat = act(&mut c, "stat", "").unwrap();
    let stat = std::str::from_utf8(&stat[0]).unwrap();
    assert!(stat.contains("ringfeed_queries_total"), "{stat}");

    // Once every day is in the cold tier, the catalog counts the rows.
    d.client().write_down(None, None, true).unwrap();
    let infos: Vec<FlightInfo> = within(&rt, "list_flights after write-down", async {
        c.list_flights("test").await?.try_collect().await
    })
    .unwrap();
    assert_eq!(infos.len(), 3);
    for info in &infos {
        let tf = &info.flight_descriptor.as_ref().unwrap().path[1];
        let rows = local(&d, &q(tf)).num_rows() as i64;
        assert_eq!(info.total_records, rows, "{tf}");
    }

    still_serves(&rt, &d, port);
}

#[test]
fn bad_input_gets_the_right_code_and_a_clear_message() {
    let (d, port) = flight_daemon();
    seed(&d, 100);
    let rt = runtime();
    let mut c = within(&rt, "connect", connect(port));
    use tonic::Code;
    let get = |c: &mut FlightClient, ticket: &[u8]| {
        within(&rt, "do_get", fetch(c, ticket.to_vec()))
            .map(|_| ())
            .map_err(status_of)
    };
    let cases: [(&[u8], Code, &str); 10] = [
        (
            &[0xff, 0x00, 0x13, 0x37],
            Code::InvalidArgument,
            "not UTF-8",
        ),
        (
            b"{\"dataset\": \"test\", ",
            Code::InvalidArgument,
            "not valid JSON",
        ),
        (b"\"test\"", Code::InvalidArgument, "must be a JSON object"),
        (
            br#"{"dataset": 5, "timeframe": "1m"}"#,
            Code::InvalidArgument,
            "invalid type",
        ),
        (
            br#"{"dataset": "test", "timeframe": "1m", "limit": "ten"}"#,
            Code::InvalidArgument,
            "invalid type",
        ),
        (
            br#"{"dataset": "test", "timeframe": "1m", "start": "yesterday-ish"}"#,
            Code::InvalidArgument,
            "yesterday-ish",
        ),
        (
            br#"{"dataset": "nope", "timeframe": "1m"}"#,
            Code::NotFound,
            "unknown dataset",
        ),
        (
            br#"{"dataset": "test", "symbols": "ZZZ", "timeframe": "1m"}"#,
            Code::NotFound,
            "ZZZ",
        ),
        (
            br#"{"dataset": "test", "timeframe": "7q"}"#,
            Code::InvalidArgument,
            "7q",
        ),
        (
            br#"{"subscribe": {"dataset": "test", "timeframe": "1m"}}"#,
            Code::InvalidArgument,
            "missing field `start`",
        ),
    ];
    for (ticket, code, words) in cases {
        let s = get(&mut c, ticket).expect_err("a bad ticket is refused");
        assert_eq!(
            s.code(),
            code,
            "{:?}: {s:?}",
            String::from_utf8_lossy(ticket)
        );
        assert!(
            s.message().contains(words),
            "{:?}: {}",
            String::from_utf8_lossy(ticket),
            s.message()
        );
    }
    // The error kind travels beside the code.
    let s = get(
        &mut c,
        br#"{"dataset": "test", "symbols": "ZZZ", "timeframe": "1m"}"#,
    )
    .unwrap_err();
    assert_eq!(
        s.metadata().get("x-ringfeed-error-kind").unwrap(),
        "unknown_symbol"
    );

    // Descriptors.
    let s = within(
        &rt,
        "get_flight_info",
        c.get_flight_info(FlightDescriptor::new_path(vec!["test".into()])),
    )
    .map_err(status_of)
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message().contains("[dataset, timeframe]"),
        "{}",
        s.message()
    );
    let s = within(
        &rt,
        "get_schema",
        c.get_schema(FlightDescriptor::new_path(vec!["nope".into(), "1m".into()])),
    )
    .map_err(status_of)
    .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let s = within(
        &rt,
        "get_flight_info",
        c.get_flight_info(FlightDescriptor::new_cmd(b"[]".to_vec())),
    )
    .map_err(status_of)
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");

    // Actions.
    let act = |c: &mut FlightClient, kind: &str, body: &[u8]| {
        let a = Action::new(kind, body.to_vec());
        within(&rt, kind, async {
            let r: Vec<bytes::Bytes> = c.do_action(a).await?.try_collect().await?;
            Ok::<_, FlightError>(r)
        })
        .map_err(status_of)
    };
    let s = act(&mut c, "reboot", b"").unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("ping, ready, datasets, stat, delete, write_down"),
        "{}",
        s.message()
    );
    let s = act(&mut c, "ready", br#"{"dataset": "nope"}"#).unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let s = act(&mut c, "ready", br#"{"dataset": 3}"#).unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    let s = act(&mut c, "delete", b"").unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("\"start\""), "{}", s.message());
    let s = act(&mut c, "subscribe", b"").unwrap_err();
    assert_eq!(s.code(), Code::Unimplemented, "{s:?}");

    // A DoPut with nothing, or without a descriptor: told what to send.
    let s = within(&rt, "do_put", async {
        let put = c.do_put(futures::stream::empty()).await?;
        put.try_collect::<Vec<_>>().await
    })
    .map_err(status_of)
    .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("DoPut"), "{}", s.message());
    // Without tokens there is nothing to authenticate: said so, not a hollow success.
    let s = within(&rt, "handshake", c.handshake(b"hello".to_vec()))
        .map_err(status_of)
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(
        s.message().contains("no [[auth.tokens]]"),
        "{}",
        s.message()
    );
    let s = within(&rt, "do_exchange", async {
        c.do_exchange(futures::stream::empty())
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .map_err(status_of)
    .unwrap_err();
    assert_eq!(s.code(), Code::Unimplemented, "{s:?}");

    still_serves(&rt, &d, port);
}

#[test]
fn clients_that_leave_mid_stream_and_hundreds_of_streams_leave_it_serving() {
    let (d, port) = flight_daemon();
    seed(&d, 3000);
    let rt = runtime();
    let q_all = q("1m");
    let want = local(&d, &q_all);
    assert!(want.num_rows() / CHUNK_ROWS >= 10);

    // 100 clients take one batch and drop the stream (and the connection):
    // more than a client's connection share (64) and a result's reader rows
    // (64), so a stream that kept either would refuse the later ones.
    within(&rt, "streams dropped mid-way", async {
        for _ in 0..100 {
            let mut c = connect(port).await;
            let mut s = c.do_get(Ticket::new(json_ticket(&q_all))).await.unwrap();
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(first.num_rows(), CHUNK_ROWS);
            drop(s);
        }
    });
    still_serves(&rt, &d, port);

    let threads_before = threads(&d);
    // 200 streams at once from one client, on one connection: each is either
    // the whole answer, or refused for the client's share with a clear status
    // (never a short answer).
    let (ok, refused) = within(&rt, "200 concurrent streams", async {
        let c = connect(port).await;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let mut c = FlightClient::new_from_inner(c.inner().clone());
                let t = json_ticket(&q_all);
                tokio::spawn(async move { fetch(&mut c, t).await })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok((got, _)) => {
                    assert_eq!(got.num_rows(), want.num_rows());
                    ok += 1;
                }
                Err(e) => {
                    let s = status_of(e);
                    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                    assert!(
                        s.message().contains("max_connections") || s.message().contains("retry"),
                        "{}",
                        s.message()
                    );
                    refused += 1;
                }
            }
        }
        (ok, refused)
    });
    // Streams are tasks, not threads: the daemon's threads stay bounded
    // (the Flight runtime's blocking pool is 16).
    let threads_after = threads(&d);
    eprintln!(
        "200 concurrent streams: {ok} whole answers, {refused} refused; daemon threads {threads_before} -> {threads_after}"
    );
    assert!(
        threads_after <= threads_before + 16,
        "{threads_before} -> {threads_after}"
    );
    assert!(ok >= 1, "{ok} whole answers, {refused} refused");
    assert_eq!(ok + refused, 200);

    // 200 in a row on one connection: every one whole and equal.
    within(&rt, "200 serial streams", async {
        let mut c = connect(port).await;
        let t = json_ticket(&q_all);
        for i in 0..200 {
            let (got, _) = fetch(&mut c, t.clone())
                .await
                .unwrap_or_else(|e| panic!("stream {i}: {e}"));
            if i % 50 == 0 {
                assert_eq!(got, want);
            } else {
                assert_eq!(got.num_rows(), want.num_rows());
            }
        }
    });
    still_serves(&rt, &d, port);
}

/// Threads of the daemon process now.
fn threads(d: &Daemon) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_client_that_stops_reading_is_cut_never_answered_short() {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!(
            "chunk_rows = {CHUNK_ROWS}\nrequest_timeout = \"1s\"\n[flight]\nlisten = \"127.0.0.1:{port}\""
        ),
    );
    // ~19 MB: far more than HTTP/2's flow-control windows and the server's
    // send buffer hold (a few MB), so the server's stream really waits on
    // the client.
    seed(&d, 100_000);
    let rt = runtime();
    let q_all = q("1m");
    let mut c = within(&rt, "connect", connect(port));
    let mut s = within(&rt, "do_get", c.do_get(Ticket::new(json_ticket(&q_all)))).unwrap();
    within(&rt, "first batch", s.next()).unwrap().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // Reading again: what was sent before the cut, then the cut itself.
    let (rows, end) = within(&rt, "the rest", async {
        let mut rows = CHUNK_ROWS;
        while let Some(b) = s.next().await {
            match b {
                Ok(b) => rows += b.num_rows(),
                Err(e) => return (rows, Some(status_of(e))),
            }
        }
        (rows, None)
    });
    let end = end.expect("a stream cut short ends with an error, not a clean end");
    assert_eq!(end.code(), tonic::Code::DeadlineExceeded, "{end:?}");
    assert!(
        end.message().contains("request_timeout"),
        "{}",
        end.message()
    );
    assert!(rows < 300_000, "{rows} rows: the stream was not cut");
    drop(s);
    still_serves(&rt, &d, port);
}

#[test]
fn sigterm_stops_it_cleanly_with_a_stream_open() {
    let (mut d, port) = flight_daemon();
    // More than HTTP/2's flow-control windows hold (~8 MiB), so the server's
    // stream is really stalled on the client.
    seed(&d, 50_000);
    let rt = runtime();
    let mut c = within(&rt, "connect", connect(port));
    // A client that took one batch and then stopped reading.
    let mut s = within(&rt, "do_get", c.do_get(Ticket::new(json_ticket(&q("1m"))))).unwrap();
    within(&rt, "first batch", s.next()).unwrap().unwrap();
    assert!(Command::new("kill")
        .arg(d.child.id().to_string())
        .status()
        .unwrap()
        .success());
    let t = std::time::Instant::now();
    let st = d.wait_exit("SIGTERM with a Flight stream open");
    eprintln!("stopped {:?} after SIGTERM", t.elapsed());
    assert!(st.success(), "{st:?}");
    assert!(!d.socket.exists());
    assert!(d.arenas().is_empty(), "{:?}", d.arenas());
    drop(s);
}

/// Runs `ringfeedd` with `args` and a config holding `flight`; its exit
/// status and stderr if it exits within 30 s, `None` if it keeps serving
/// (it is then stopped with SIGTERM).
fn run_daemon(flight: &str, args: &[&str]) -> Option<(std::process::ExitStatus, String)> {
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

#[test]
fn a_remote_address_without_the_opt_in_refuses_to_start() {
    let port = free_port();
    for (flight, args) in [
        (format!("[flight]\nlisten = \"0.0.0.0:{port}\""), vec![]),
        (
            String::new(),
            vec!["--flight".to_string(), format!("0.0.0.0:{port}")],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (st, err) = run_daemon(&flight, &args).expect("ringfeedd refused to start");
        assert!(!st.success());
        assert!(
            err.contains("not a loopback address")
                && err.contains("allow_unauthenticated_remote = true"),
            "{err}"
        );
    }
    // The explicit opt-in serves (and stops cleanly); loopback needs none.
    assert!(run_daemon(
        "[flight]\nlisten = \"0.0.0.0:0\"\nallow_unauthenticated_remote = true",
        &[]
    )
    .is_none());
    assert!(run_daemon("", &["--flight", "127.0.0.1:0"]).is_none());
    // A port already taken is named.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (st, err) = run_daemon("", &["--flight", &addr]).expect("a taken port is refused");
    assert!(!st.success());
    assert!(
        err.contains("cannot serve Arrow Flight") && err.contains(&addr),
        "{err}"
    );
}

// ---- tokens, scopes, limits ----

/// Tokens of the auth tests: `reader` reads `test`, `other` reads `bin*` only, `ops` is
/// admin and reads everything.
const READER: &str = "reader-token-0123456789";
const OTHER: &str = "other-token-0123456789";
const OPS: &str = "ops-token-0123456789";

fn sha(t: &str) -> String {
    ringfeed_daemon::auth::hash_token(t)
}

/// A Flight daemon on loopback whose calls need tokens, with `limits` appended.
fn auth_daemon(limits: &str) -> (Daemon, u16) {
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

async fn connect_as(port: u16, token: Option<&str>) -> FlightClient {
    let mut c = connect(port).await;
    if let Some(t) = token {
        c.add_header("authorization", &format!("Bearer {t}"))
            .unwrap();
    }
    c
}

async fn action(c: &mut FlightClient, kind: &str) -> Result<Vec<u8>, FlightError> {
    let parts: Vec<bytes::Bytes> = c
        .do_action(Action::new(kind, ""))
        .await?
        .try_collect()
        .await?;
    Ok(parts.concat())
}

#[test]
fn tokens_decide_who_reads_what() {
    let (d, port) = auth_daemon("");
    seed(&d, 30);
    let rt = runtime();
    let q1 = q("1m");
    let want = local(&d, &q1);
    within(&rt, "the auth checks", async {
        // No token, an unknown token: UNAUTHENTICATED, saying what to send.
        for (token, says) in [(None, "no token"), (Some("nope"), "unknown token")] {
            let mut c = connect_as(port, token).await;
            let e = status_of(fetch(&mut c, json_ticket(&q1)).await.unwrap_err());
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
            assert!(e.message().contains(says), "{e:?}");
            let e = match c.list_flights("").await {
                Err(e) => e,
                Ok(s) => s.try_collect::<Vec<_>>().await.unwrap_err(),
            };
            assert_eq!(status_of(e).code(), tonic::Code::Unauthenticated);
        }
        // In scope: the same rows as the socket.
        let mut reader = connect_as(port, Some(READER)).await;
        let (got, _) = fetch(&mut reader, json_ticket(&q1)).await.unwrap();
        assert_eq!(got, want);
        let listed: Vec<FlightInfo> = reader
            .list_flights("")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(!listed.is_empty());
        // Out of scope: PERMISSION_DENIED naming the list to extend; listings hide it.
        let mut other = connect_as(port, Some(OTHER)).await;
        let e = status_of(fetch(&mut other, json_ticket(&q1)).await.unwrap_err());
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("`read` list"), "{e:?}");
        let e = status_of(
            other
                .get_flight_info(FlightDescriptor::new_cmd(json_ticket(&q1)))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let hidden: Vec<FlightInfo> = other
            .list_flights("")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(hidden.is_empty(), "{hidden:?}");
        let ds: serde_json::Value =
            serde_json::from_slice(&action(&mut other, "datasets").await.unwrap()).unwrap();
        assert_eq!(ds, serde_json::json!({}));
        // `stat` is for admins; it carries the per-principal counters.
        let e = status_of(action(&mut reader, "stat").await.unwrap_err());
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let mut ops = connect_as(port, Some(OPS)).await;
        let stat = String::from_utf8(action(&mut ops, "stat").await.unwrap()).unwrap();
        assert!(
            stat.contains("ringfeed_flight_principal_requests_total{principal=\"reader\"}"),
            "{stat}"
        );
        assert!(
            stat.contains("ringfeed_flight_principal_refused_total"),
            "{stat}"
        );
        // The handshake: Basic name:token in, the bearer token back.
        let mut hs = connect(port).await;
        let basic = base64_encode(&format!("reader:{READER}"));
        hs.add_header("authorization", &format!("Basic {basic}"))
            .unwrap();
        assert_eq!(hs.handshake("").await.unwrap(), READER.as_bytes());
        let mut wrong = connect(port).await;
        let basic = base64_encode(&format!("ops:{READER}"));
        wrong
            .add_header("authorization", &format!("Basic {basic}"))
            .unwrap();
        let e = status_of(wrong.handshake("").await.unwrap_err());
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("not \"ops\"'s"), "{e:?}");
        // Still serving, to the right token.
        let (got, _) = fetch(&mut connect_as(port, Some(READER)).await, json_ticket(&q1))
            .await
            .unwrap();
        assert_eq!(got, want);
    });
    d.client().ping().expect("the socket still answers");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn limits_refuse_with_a_retry_hint_and_streams_count_until_closed() {
    let (d, port) = auth_daemon("[limits.per_principal]\nrequests_per_s = 5\nstreams = 1\n");
    // ~12 MB of results, well past HTTP/2 windows: a stream stays open until read.
    seed(&d, 40_000);
    let rt = runtime();
    let q1 = q("1m");
    within(&rt, "the limit checks", async {
        // Streams: one open DoGet, the second refused until the first is dropped.
        let mut c = connect_as(port, Some(READER)).await;
        let mut first = c.do_get(Ticket::new(json_ticket(&q1))).await.unwrap();
        first.next().await.unwrap().unwrap(); // a batch taken, the rest pending
        let e = status_of(
            connect_as(port, Some(READER))
                .await
                .do_get(Ticket::new(json_ticket(&q1)))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("close a stream"), "{e:?}");
        drop(first);
        drop(c);
        tokio::time::sleep(Duration::from_millis(1100)).await; // refill the requests
                                                               // Requests: a burst of 5 a second, then RESOURCE_EXHAUSTED with retry-after-ms.
        let mut c = connect_as(port, Some(READER)).await;
        let mut refused = None;
        for _ in 0..20 {
            if let Err(e) = action(&mut c, "ping").await {
                refused = Some(status_of(e));
                break;
            }
        }
        let e = refused.expect("a burst over requests_per_s is refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("requests_per_s"), "{e:?}");
        let retry: u64 = e
            .metadata()
            .get(ringfeed_daemon::transport::flight::RETRY_AFTER_KEY)
            .expect("a retry hint")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0 && retry <= 1000, "{retry}");
        // Another principal has its own budget; after the hint, the first is served.
        action(&mut connect_as(port, Some(OPS)).await, "ping")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(retry + 50)).await;
        let (got, _) = fetch(&mut c, json_ticket(&q1)).await.unwrap();
        assert_eq!(got.num_rows(), 3 * 40_000);
    });
    d.client().ping().expect("the socket still answers");
}

#[test]
fn tokens_allow_a_remote_address() {
    let flight = format!(
        "[flight]\nlisten = \"0.0.0.0:0\"\n[[auth.tokens]]\nname = \"r\"\nsha256 = \"{}\"\nread = [\"*\"]",
        sha(READER)
    );
    assert!(
        run_daemon(&flight, &[]).is_none(),
        "tokens make a remote address safe to serve"
    );
    // A bad hash stops the start with the fix.
    let (st, err) = run_daemon("[[auth.tokens]]\nname = \"r\"\nsha256 = \"xyz\"", &[])
        .expect("a bad token hash is refused at start");
    assert!(!st.success());
    assert!(err.contains("--new-token r"), "{err}");
}

// ---- TLS ----

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made
/// with the `openssl` command (PEM files in `dir`: ca.pem, server.pem, server.key,
/// client.pem, client.key). `None` (and the test skips, saying why) without openssl.
fn make_certs(dir: &std::path::Path) -> Option<()> {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
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
    .concat())?;
    for (who, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
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
        .concat())?;
        run(&[
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
        ])?;
    }
    Some(())
}

fn has_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn connect_tls(
    port: u16,
    dir: &std::path::Path,
    client_cert: bool,
    token: &str,
) -> Result<FlightClient, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if client_cert {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(dir.join("client.pem")).unwrap(),
            std::fs::read(dir.join("client.key")).unwrap(),
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    let mut c = FlightClient::new_from_inner(
        FlightServiceClient::new(channel).max_decoding_message_size(64 << 20),
    );
    c.add_header("authorization", &format!("Bearer {token}"))
        .unwrap();
    Ok(c)
}

#[test]
fn tls_and_mutual_tls_serve_only_the_clients_they_should() {
    if !has_openssl() {
        eprintln!("skipped: no `openssl` command to make test certificates (scripts install it)");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path()).expect("openssl makes the certificates");
    let rt = runtime();
    for mutual in [false, true] {
        let port = free_port();
        let pem = |f: &str| certs.path().join(f).display().to_string();
        let d = Daemon::start_with(
            tempfile::tempdir().unwrap(),
            &format!(
                "chunk_rows = {CHUNK_ROWS}\n[flight]\nlisten = \"127.0.0.1:{port}\"\n\
                 [flight.tls]\ncert = {:?}\nkey = {:?}\n{}\
                 [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"*\"]\n",
                pem("server.pem"),
                pem("server.key"),
                if mutual {
                    format!("client_ca = {:?}\n", pem("ca.pem"))
                } else {
                    String::new()
                },
                sha(READER)
            ),
        );
        seed(&d, 30);
        let q1 = q("1m");
        let want = local(&d, &q1);
        within(&rt, "the TLS checks", async {
            // Plaintext to a TLS port: no answer.
            let mut plain = connect_as(port, Some(READER)).await;
            assert!(fetch(&mut plain, json_ticket(&q1)).await.is_err());
            // TLS with the CA (and, for mutual TLS, the client's certificate): served.
            let mut c = connect_tls(port, certs.path(), mutual, READER)
                .await
                .unwrap();
            let (got, _) = fetch(&mut c, json_ticket(&q1)).await.unwrap();
            assert_eq!(got, want);
            if mutual {
                // No client certificate: refused at the handshake (or the first call).
                let refused = match connect_tls(port, certs.path(), false, READER).await {
                    Err(_) => true,
                    Ok(mut c) => fetch(&mut c, json_ticket(&q1)).await.is_err(),
                };
                assert!(refused, "mutual TLS served a client without a certificate");
            }
        });
        d.client().ping().expect("the socket still answers");
    }
    // A key that is not a key stops the start, naming [flight.tls].
    std::fs::write(certs.path().join("bad.key"), "not a key").unwrap();
    let (st, err) = run_daemon(
        &format!(
            "[flight]\nlisten = \"127.0.0.1:0\"\n[flight.tls]\ncert = {:?}\nkey = {:?}",
            certs.path().join("server.pem"),
            certs.path().join("bad.key")
        ),
        &[],
    )
    .expect("a bad key is refused at start");
    assert!(!st.success());
    assert!(err.contains("[flight.tls]"), "{err}");
}

// ---- DoPut ----

const WRITER: &str = "writer-token-0123456789";

/// A Flight daemon in `dir` (kept across a kill -9) whose "writer" token may append to
/// `test` and "reader" only read, with small appends allowed.
fn put_daemon(dir: tempfile::TempDir, port: u16) -> Daemon {
    Daemon::start_with(
        dir,
        &format!(
            "chunk_rows = {CHUNK_ROWS}\nmax_append_bytes = \"256KiB\"\n[flight]\nlisten = \"127.0.0.1:{port}\"\n\
             [[auth.tokens]]\nname = \"writer\"\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = [\"test\"]\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"*\"]\n",
            sha(WRITER),
            sha(READER)
        ),
    )
}

/// DoPut of `batches` to path [dataset]: the acks' row counts, or the status.
async fn put(
    c: &mut FlightClient,
    dataset: &str,
    batches: Vec<RecordBatch>,
) -> Result<Vec<u64>, tonic::Status> {
    let data = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec![dataset.into()])))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let acks: Vec<arrow_flight::PutResult> = match c.do_put(data).await {
        Ok(s) => s.try_collect().await.map_err(status_of)?,
        Err(e) => return Err(status_of(e)),
    };
    Ok(acks
        .iter()
        .map(|a| {
            let v: serde_json::Value = serde_json::from_slice(&a.app_metadata).unwrap();
            v["rows"].as_u64().unwrap()
        })
        .collect())
}

#[test]
fn do_put_acks_durable_appends_refuses_bad_ones_and_survives_kill_9() {
    let port = free_port();
    let d = put_daemon(tempfile::tempdir().unwrap(), port);
    let rt = runtime();
    within(&rt, "the DoPut checks", async {
        let mut w = connect_as(port, Some(WRITER)).await;
        // Five batches, five acks, each once durable.
        let batches: Vec<RecordBatch> = (0..5).map(|k| bars(&["W"], k * 100, 100)).collect();
        assert_eq!(put(&mut w, "test", batches).await.unwrap(), vec![100; 5]);
        // Without write scope: PERMISSION_DENIED, nothing stored.
        let mut r = connect_as(port, Some(READER)).await;
        let e = put(&mut r, "test", vec![bars(&["R"], 0, 10)])
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        // A batch that breaks the row rules: refused whole, with the row named.
        let bad = bars(&["BAD"], 0, 10);
        let cols: Vec<arrow_array::ArrayRef> = bad
            .schema()
            .fields()
            .iter()
            .zip(bad.columns())
            .map(|(f, c)| match f.name().as_str() {
                "high" => std::sync::Arc::new(arrow_array::Float64Array::from(vec![-1.0; 10])) as _,
                _ => c.clone(),
            })
            .collect();
        let bad = RecordBatch::try_new(bad.schema(), cols).unwrap();
        let e = put(&mut w, "test", vec![bad]).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        // A batch over max_append_bytes: refused by size, the daemon unhurt.
        let big = bars(&["BIG"], 0, 20_000);
        let e = put(&mut w, "test", vec![big]).await.unwrap_err();
        assert!(
            matches!(
                e.code(),
                tonic::Code::OutOfRange
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::InvalidArgument
            ),
            "{e:?}"
        );
        // An unknown dataset: NOT_FOUND (a token for it would be needed anyway).
        let e = put(&mut w, "nope", vec![bars(&["W"], 0, 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.code(),
                tonic::Code::PermissionDenied | tonic::Code::NotFound
            ),
            "{e:?}"
        );
    });
    let syms = d.client().datasets().unwrap();
    let listed = serde_json::to_string(&syms).unwrap();
    assert!(
        listed.contains("\"W\"") && !listed.contains("\"BAD\"") && !listed.contains("\"R\""),
        "{listed}"
    );
    // kill -9, restart on the same data: every acknowledged row is there.
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = put_daemon(dir, port);
    let q1 = QuerySpec {
        symbols: vec!["W".into()],
        ..q("1m")
    };
    assert_eq!(local(&d, &q1).num_rows(), 500);
    let (got, _) = within(&rt, "a query after the restart", async {
        fetch(&mut connect_as(port, Some(READER)).await, json_ticket(&q1)).await
    })
    .unwrap();
    assert_eq!(got.num_rows(), 500);
}

// ---- subscribe tickets ----

fn subscribe_ticket(start_ns: i64, symbols: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "subscribe": {"dataset": "test", "timeframe": "1m", "start": start_ns, "symbols": symbols}
    }))
    .unwrap()
}

/// (ts, symbol) of a bar batch's rows.
fn keys(b: &RecordBatch) -> Vec<(i64, String)> {
    use arrow_array::cast::AsArray;
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let sym = arrow_cast::cast(
        b.column_by_name("symbol").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let sym = sym.as_string::<i32>();
    (0..b.num_rows())
        .map(|i| (ts.value(i), sym.value(i).to_string()))
        .collect()
}

#[test]
fn a_subscribe_ticket_streams_history_then_live_without_gap_or_duplicate() {
    let (d, port) = flight_daemon();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 0, 30)).unwrap();
    let rt = runtime();
    let got = within(&rt, "a subscription", async {
        let mut f = connect(port).await;
        let mut stream = f
            .do_get(Ticket::new(subscribe_ticket(T0 + 10 * MIN, "B")))
            .await
            .unwrap();
        // Live appends while the history streams: minutes 30..40, both symbols.
        let sock = d.socket.clone();
        let feeder = std::thread::spawn(move || {
            let mut c = ringfeed_client::Client::connect(Some(&sock)).unwrap();
            for m in 30..40 {
                c.append("test", &bars(&["A", "B"], m, 1)).unwrap();
            }
        });
        let mut got: Vec<(i64, String)> = Vec::new();
        while got.len() < 30 {
            let b = stream
                .next()
                .await
                .expect("the subscription goes on")
                .unwrap();
            got.extend(keys(&b));
        }
        feeder.join().unwrap();
        got
    });
    // B only, minutes 10..39, each once, in order.
    let want: Vec<(i64, String)> = (10..40).map(|m| (T0 + m * MIN, "B".to_string())).collect();
    assert_eq!(got, want);
    still_serves_a(&rt, &d, port);
}

/// Flight and the socket still answer a real query (of symbol A).
fn still_serves_a(rt: &tokio::runtime::Runtime, d: &Daemon, port: u16) {
    let q = QuerySpec {
        symbols: vec!["A".into()],
        ..q("1m")
    };
    let want = local(d, &q);
    let (got, _) = within(rt, "a query after the ordeal", async {
        fetch(&mut connect(port).await, json_ticket(&q)).await
    })
    .expect("Flight still answers");
    assert_eq!(got, want);
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_and_holds_nobody() {
    let (d, port) = flight_daemon();
    let mut c = d.client();
    c.append("test", &bars(&["A"], 0, 1)).unwrap();
    let rt = runtime();
    within(&rt, "a stalled subscriber", async {
        let mut slow = connect(port).await;
        let mut stream = slow
            .do_get(Ticket::new(subscribe_ticket(T0, "A")))
            .await
            .unwrap();
        stream.next().await.unwrap().unwrap(); // the history, then nothing read
                                               // More live batches than the backlog, and more bytes than HTTP/2's windows
                                               // hold, while it reads nothing; the writer is never held up.
        let t = std::time::Instant::now();
        let n = ringfeed_daemon::transport::flight::LIVE_BACKLOG as i64 + 100;
        for k in 0..n {
            c.append("test", &bars(&["A"], 1 + k * 1000, 1000)).unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "appends waited for the subscriber"
        );
        // Reading now: what was queued, then the cut, saying why.
        let (mut cut, mut rows) = (None, 0);
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await
        {
            match item {
                Ok(b) => rows += b.num_rows(),
                Err(e) => {
                    cut = Some(status_of(e));
                    break;
                }
            }
        }
        eprintln!("rows received before the cut: {rows} of {}", n * 1000);
        let e = cut.expect("a stalled subscriber is cut");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("behind"), "{e:?}");
        // Bad tickets: a clear INVALID_ARGUMENT.
        let bad =
            serde_json::to_vec(&serde_json::json!({"subscribe": {"dataset": "test"}})).unwrap();
        let e = status_of(
            connect(port)
                .await
                .do_get(Ticket::new(bad))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("subscribe"), "{e:?}");
    });
    still_serves_a(&rt, &d, port);
}
