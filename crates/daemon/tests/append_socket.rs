//! The issue's append cases through the real `ringfeedd` and its socket: the
//! 280-byte append of 2^33 Null rows and 300 random 1–4 byte mutations of a
//! valid stream are answered (`bad_request` or stored), never crash or wedge
//! the daemon; `health` says so, and every acknowledged row is there.

mod common;

use common::*;
use ringfeed_client::protocol::{Request, Response};
use ringfeed_client::{Client, InvalidRows};

fn start() -> (Daemon, Client) {
    let d = Daemon::start();
    let c = d.client();
    (d, c)
}

fn append_raw(c: &mut Client, payload: &[u8]) -> Result<Response, ringfeed_client::ClientError> {
    c.call(
        &Request::Append {
            dataset: "test".into(),
            invalid: InvalidRows::Skip,
        },
        payload,
    )
}

fn kind(e: &ringfeed_client::ClientError) -> String {
    match server_kind(e) {
        "" => format!("not a server error: {e}"),
        k => k.to_string(),
    }
}

/// The 1m minutes stored for `symbol`.
fn stored(c: &mut Client, symbol: &str) -> Vec<i64> {
    use arrow_array::cast::AsArray;
    let mut spec = q("1m");
    spec.symbols = vec![symbol.into()];
    let b = c.bars(&spec).unwrap();
    b.batches
        .iter()
        .flat_map(|x| {
            x.column_by_name("ts")
                .unwrap()
                .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                .values()
                .iter()
                .map(|t| (t - T0) / MIN)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_issues_append_cases_are_refused_and_the_daemon_keeps_serving() {
    let (_d, mut c) = start();
    assert!(c.health().unwrap().healthy);
    c.append("test", &bars(&["A"], 0, 5)).unwrap();

    // 2^33 rows of Null-typed ts and symbol, in a few hundred bytes.
    let p = null_stream(1 << 33);
    let e = append_raw(&mut c, &p).unwrap_err();
    assert_eq!(kind(&e), "bad_request", "{e}");
    let h = c.health().unwrap();
    assert!(h.healthy, "{h:?}");

    // 300 random 1-4 byte mutations of a valid stream.
    let valid = ipc(&[bars(&["M"], 0, 10)]);
    let mut x = 0x0123_4567_89AB_CDEFu64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let mut m = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % m.len() as u64) as usize;
            m[at] = next() as u8;
        }
        if let Err(e) = append_raw(&mut c, &m) {
            assert_eq!(kind(&e), "bad_request", "mutation {i}: {e}");
        }
    }
    // Still serving, nothing wedged, every acknowledged row there.
    let h = c.health().unwrap();
    assert!(h.healthy, "{h:?}");
    c.append("test", &bars(&["A"], 5, 1)).unwrap();
    assert_eq!(stored(&mut c, "A"), [0, 1, 2, 3, 4, 5]);
    let stat = c.call(&Request::Stat, &[]).unwrap().text.unwrap();
    assert!(stat.contains("ringfeed_store_recoveries_total 0"), "{stat}");
}
