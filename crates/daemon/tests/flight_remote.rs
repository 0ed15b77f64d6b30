//! `ringfeed-remote`, the Rust client of the Flight face, against a real `ringfeedd`:
//! the local client's answers, appends, deletes, write-downs and a replay, with a token;
//! typed errors for a bad URL, no daemon, a missing scope.

mod common;
mod flight_support;

use common::*;
use flight_support::*;
use ringfeed_client::{InvalidRows, QuerySpec, TimeSpec};
use ringfeed_remote::{RemoteClient, RemoteError, RemoteOptions};
use std::time::Duration;

fn token(t: &str) -> RemoteOptions {
    RemoteOptions {
        token: Some(t.into()),
        ..Default::default()
    }
}

#[test]
fn the_rust_remote_client_does_what_the_local_one_does() {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!(
            "[flight]\nlisten = \"127.0.0.1:{port}\"\n\
             [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = [\"*\"]\nadmin = true\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"*\"]\n",
            sha(OPS),
            sha(READER)
        ),
    );
    let url = format!("grpc://127.0.0.1:{port}");
    let mut ops = RemoteClient::connect(&url, token(OPS)).unwrap();
    ops.ping().unwrap();
    // Appends over DoPut, acknowledged once durable; the socket sees them.
    assert_eq!(
        ops.append("test", &bars(&["A", "B"], 0, 90), InvalidRows::Refuse)
            .unwrap(),
        180
    );
    let five = QuerySpec {
        symbols: vec!["A".into()],
        ..q("5m")
    };
    let remote: Vec<_> = ops.bars(&five).unwrap();
    let remote = arrow_select::concat::concat_batches(&remote[0].schema(), &remote).unwrap();
    assert_eq!(remote, local(&d, &five));
    assert_eq!(
        ops.ready(Some("test")).unwrap().datasets[0].symbols,
        vec!["A", "B"]
    );
    assert!(ops.datasets().unwrap()["test"].is_object());
    assert!(ops.stat().unwrap().contains("ringfeed_"));
    // A replay: history of B from minute 80, then live rows, no gap, no duplicate.
    let mut rp = ops
        .replay("test", "1m", TimeSpec::Nanos(T0 + 80 * MIN), &["B".into()])
        .unwrap();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 90, 5)).unwrap();
    let mut n = 0;
    while n < 15 {
        let b = rp
            .read(Duration::from_secs(20))
            .unwrap()
            .expect("the replay goes on");
        n += b.num_rows();
    }
    assert_eq!(n, 15);
    drop(rp);
    // Deletes and write-downs (admin).
    let text = ops
        .delete(
            "test",
            Some("A"),
            TimeSpec::Nanos(T0),
            TimeSpec::Nanos(T0 + 30 * MIN),
        )
        .unwrap();
    assert!(!text.is_empty());
    assert!(!ops.write_down(Some("test"), None, true).unwrap().is_empty());
    let a = local(
        &d,
        &QuerySpec {
            symbols: vec!["A".into()],
            ..q("1m")
        },
    );
    assert_eq!(a.num_rows(), 95 - 30);
    // Typed errors: a reader may not append; no daemon; not a URL.
    let mut reader = RemoteClient::connect(&url, token(READER)).unwrap();
    match reader.append("test", &bars(&["C"], 0, 1), InvalidRows::Refuse) {
        Err(RemoteError::Status { code, message, .. }) => {
            assert_eq!(code, tonic::Code::PermissionDenied);
            assert!(message.contains("`write` list"), "{message}");
        }
        other => panic!("expected PERMISSION_DENIED, got {other:?}"),
    }
    match reader.bars(&QuerySpec {
        dataset: "nope".into(),
        ..q("1m")
    }) {
        Err(RemoteError::Status { code, kind, .. }) => {
            assert_eq!(code, tonic::Code::NotFound);
            assert_eq!(kind.as_deref(), Some("unknown_dataset"));
        }
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    assert!(matches!(
        RemoteClient::connect(&format!("grpc://127.0.0.1:{}", free_port()), token(OPS)),
        Err(RemoteError::Connect { .. })
    ));
    assert!(matches!(
        RemoteClient::connect("http://x:1", RemoteOptions::default()),
        Err(RemoteError::Url(_))
    ));
}
