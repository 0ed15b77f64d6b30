//! Append cost, before and after the checked decode (issue 12 item 1), in
//! one run: `cargo test --release -p ringfeed-daemon --test append_bench --
//! --ignored --nocapture`. Prints, for a small append (one bar):
//! - the decode alone: arrow-ipc's `StreamReader` (the daemon's old path)
//!   against `decode_append_payload` (the new one), interleaved;
//! - the service's whole append (decode, store, publish): old decode +
//!   `Service::append` against `Service::append_ipc`, interleaved;
//! - the round trip of `Client::append` to a `ringfeedd` (the new path).
//!
//! Nothing is asserted about time.

mod common;

use common::*;
use ringfeed_client::InvalidRows;
use ringfeed_daemon::service::decode_append_payload;
use std::time::{Duration, Instant};

fn old_decode(p: &[u8]) -> Vec<arrow_array::RecordBatch> {
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(p), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn micros(mut v: Vec<Duration>) -> String {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    format!(
        "median {:.1} us, p99 {:.1} us, mean {:.1} us",
        v[v.len() / 2].as_secs_f64() * 1e6,
        v[v.len() * 99 / 100].as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    )
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn append_round_trip_before_and_after_the_checked_decode() {
    const N: i64 = 3000;
    let payloads: Vec<Vec<u8>> = (0..2 * N).map(|m| ipc(&[bars(&["B"], m, 1)])).collect();
    let (mut old, mut new) = (vec![], vec![]);
    for p in &payloads {
        let t = Instant::now();
        std::hint::black_box(old_decode(p));
        old.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(decode_append_payload(p).unwrap());
        new.push(t.elapsed());
    }
    println!("decode, old (StreamReader):        {}", micros(old));
    println!("decode, new (decode_append_payload): {}", micros(new));

    let (s, _dir) = service();
    let (mut old, mut new) = (vec![], vec![]);
    for (i, p) in payloads.iter().enumerate() {
        let t = Instant::now();
        if i % 2 == 0 {
            s.append("test", &old_decode(p), InvalidRows::Refuse)
                .unwrap();
            old.push(t.elapsed());
        } else {
            s.append_ipc("test", p, InvalidRows::Refuse).unwrap();
            new.push(t.elapsed());
        }
    }
    println!("service append, old decode:        {}", micros(old));
    println!("service append, new (append_ipc):  {}", micros(new));
    drop(s);

    // Client::append to the real daemon.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rf.sock");
    let cfg = dir.path().join("ringfeed.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"bench{}\"\n[datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\nfsync = \"never\"\n",
            dir.path().join("data"),
            socket,
            std::process::id()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--config")
        .arg(&cfg)
        .env("RINGFEED_SHM_DIR", shm_dir())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = loop {
        match ringfeed_client::Client::connect(Some(&socket)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("ringfeedd did not come up: {e}"),
        }
    };
    let mut rt = vec![];
    for m in 0..N {
        let b = bars(&["B"], m, 1);
        let t = Instant::now();
        c.append("test", &b).unwrap();
        rt.push(t.elapsed());
    }
    println!("Client::append round trip (new):   {}", micros(rt));
    let _ = child.kill();
    let _ = child.wait();
}
