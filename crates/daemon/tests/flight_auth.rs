//! The Flight face's security, end to end: bearer tokens and scopes, the Basic
//! handshake, per-principal limits, a remote address with tokens, TLS and mutual TLS
//! (certificates made with `openssl`). After each, the daemon still serves.

mod common;
mod flight_support;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{FlightClient, FlightDescriptor, FlightInfo, Ticket};
use common::*;
use flight_support::*;
use futures::{StreamExt, TryStreamExt};
use std::process::Command;
use std::time::Duration;

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
    common::certs::make_certs(certs.path()).expect("openssl makes the certificates");
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

#[test]
fn per_principal_counters_are_in_the_metrics_endpoint() {
    let (port, mport) = (free_port(), free_port());
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!(
            "metrics = \"127.0.0.1:{mport}\"\n[flight]\nlisten = \"127.0.0.1:{port}\"\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"*\"]\n",
            sha(READER)
        ),
    );
    let rt = runtime();
    within(&rt, "a few calls", async {
        let mut c = connect_as(port, Some(READER)).await;
        for _ in 0..3 {
            action(&mut c, "ping").await.unwrap();
        }
    });
    let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    assert!(
        text.contains("ringfeed_flight_principal_requests_total{principal=\"reader\"} 3"),
        "{text}"
    );
    d.client().ping().unwrap();
}
