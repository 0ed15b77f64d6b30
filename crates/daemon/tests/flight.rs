//! The Arrow Flight face, end to end: a real `ringfeedd` with `[flight]`
//! on loopback, and arrow-flight's own `FlightClient`. Every answer is
//! checked against the local socket's answer to the same query, every bad
//! input against its gRPC code and message, and after each ordeal the
//! daemon must still answer over Flight and over its socket.

mod common;
mod flight_support;

use arrow_flight::error::FlightError;
use arrow_flight::{Action, FlightClient, FlightDescriptor, FlightInfo, Ticket};
use common::*;
use flight_support::*;
use futures::{StreamExt, TryStreamExt};
use ringfeed_client::protocol::QuerySpec;
use std::process::Command;
use std::time::Duration;

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
        [
            "ping",
            "ready",
            "datasets",
            "changes",
            "stat",
            "delete",
            "write_down"
        ]
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
            .contains("ping, ready, datasets, changes, stat, delete, write_down"),
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
fn clients_that_leave_mid_stream_and_a_thousand_streams_leave_it_serving() {
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
    // 1,000 streams at once from one client, on one connection: each is either
    // the whole answer, or refused for the client's share with a clear status
    // (never a short answer).
    let (ok, refused) = within(&rt, "1,000 concurrent streams", async {
        let c = connect(port).await;
        let tasks: Vec<_> = (0..1000)
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
        "1,000 concurrent streams: {ok} whole answers, {refused} refused; daemon threads {threads_before} -> {threads_after}"
    );
    assert!(
        threads_after <= threads_before + 16,
        "{threads_before} -> {threads_after}"
    );
    assert!(ok >= 1, "{ok} whole answers, {refused} refused");
    assert_eq!(ok + refused, 1000);

    // 1,000 in a row on one connection: every one whole and equal.
    within(&rt, "1,000 serial streams", async {
        let mut c = connect(port).await;
        let t = json_ticket(&q_all);
        for i in 0..1000 {
            let (got, _) = fetch(&mut c, t.clone())
                .await
                .unwrap_or_else(|e| panic!("stream {i}: {e}"));
            if i % 100 == 0 {
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

#[test]
fn thousands_of_distinct_queries_keep_the_cache_and_shared_memory_bounded() {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("chunk_rows = {CHUNK_ROWS}\nmax_cached_results = 64\n[flight]\nlisten = \"127.0.0.1:{port}\""),
    );
    seed(&d, 600);
    let rt = runtime();
    let peak = within(&rt, "2,000 distinct queries", async {
        let mut c = connect(port).await;
        let mut peak = 0;
        for k in 0..2000i64 {
            // Each a different result: the end moves by a minute, the limit by one.
            let q = QuerySpec {
                symbols: vec!["AAA".into()],
                end: Some(ringfeed_client::TimeSpec::Nanos(T0 + (1 + k % 599) * MIN)),
                limit: Some(1 + (k / 599) as usize),
                ..q("1m")
            };
            let (got, _) = fetch(&mut c, json_ticket(&q)).await.unwrap();
            assert_eq!(got.num_rows() as i64, (1 + k % 599).min(1 + k / 599));
            if k % 100 == 0 {
                // Arenas, not their `@readers` companions.
                let n = d.arenas().iter().filter(|a| !a.contains('@')).count();
                peak = peak.max(n);
            }
        }
        peak
    });
    // Results beyond the cap are evicted: the arenas in /dev/shm stay near the cap (plus
    // topic rings), not one per query.
    assert!(peak <= 64 + 8, "{peak} arenas at the peak");
    still_serves(&rt, &d, port);
}
