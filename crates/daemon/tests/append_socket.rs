//! The issue's append cases through the real `ringfeedd` and its socket: the
//! 280-byte append of 2^33 Null rows and 300 random 1–4 byte mutations of a
//! valid stream are answered (`bad_request` or stored), never crash or wedge
//! the daemon; `health` says so, and every acknowledged row is there.

mod common;

use common::*;
use ringfeed_client::protocol::{Request, Response};
use ringfeed_client::{Client, InvalidRows};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The daemon, and the directory it serves (removed after it is killed).
struct Daemon(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start() -> (Daemon, Client) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rf.sock");
    let cfg = dir.path().join("ringfeed.toml");
    let prefix: String = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"sock{prefix}\"\n[datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\n",
            dir.path().join("data"),
            socket,
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--config")
        .arg(&cfg)
        .env("RINGFEED_SHM_DIR", shm_dir())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child, dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(Some(&socket)) {
            Ok(c) => return (d, c),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("ringfeedd did not come up: {e}"),
        }
    }
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
    match e {
        ringfeed_client::ClientError::Server { kind, .. } => kind.to_string(),
        other => format!("not a server error: {other}"),
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
    let n: arrow_array::ArrayRef = Arc::new(arrow_array::NullArray::new(12_345));
    let b = arrow_array::RecordBatch::try_from_iter([("ts", n.clone()), ("symbol", n)]).unwrap();
    let mut p = ipc(&[b]);
    for i in 0..p.len() - 8 {
        if p[i..i + 8] == 12_345i64.to_le_bytes() {
            p[i..i + 8].copy_from_slice(&(1i64 << 33).to_le_bytes());
        }
    }
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
