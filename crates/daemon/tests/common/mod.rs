//! What the service tests share: a service over a temporary store, bars,
//! IPC payloads, and reading a result arena back.
#![allow(dead_code)]

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_arrow::{Reader, StartAt};
use ringfeed_client::protocol::QuerySpec;
use ringfeed_daemon::service::{CacheLimits, ResultArena, Session};
use ringfeed_daemon::{Config, Service};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const MIN: i64 = 60_000_000_000;
pub const T0: i64 = 1_609_459_200_000_000_000; // 2021-01-01T00:00:00Z

/// One arena directory per test binary (RINGFEED_SHM_DIR is process-global).
pub fn shm_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rf-svc-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var("RINGFEED_SHM_DIR", &d);
        d
    })
    .clone()
}

/// A service over a new temporary store with dataset `test` (1m, rollups 5m
/// and 1h), and the temp dir that holds it.
pub fn service_with(limits: impl FnOnce(&mut CacheLimits)) -> (Arc<Service>, tempfile::TempDir) {
    shm_dir();
    let dir = tempfile::tempdir().unwrap();
    let prefix: String = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        arena_prefix: format!("svc{prefix}"),
        write_down_delay: None,
        ..Config::default()
    };
    cfg.datasets.insert(
        "test".into(),
        ringfeed_daemon::config::DatasetToml {
            base: "1m".into(),
            rollups: Some(vec!["5m".into(), "1h".into()]),
            fsync: Some("never".into()),
        },
    );
    let mut l = CacheLimits::from_config(&cfg);
    limits(&mut l);
    (Service::open_with(cfg, l).unwrap(), dir)
}

pub fn service() -> (Arc<Service>, tempfile::TempDir) {
    service_with(|_| {})
}

/// `n` one-minute bars per symbol from minute `from`; close = minute + 0.5.
pub fn bars(symbols: &[&str], from: i64, n: i64) -> RecordBatch {
    let (mut ts, mut sym, mut px) = (vec![], vec![], vec![]);
    for m in from..from + n {
        for s in symbols {
            ts.push(T0 + m * MIN);
            sym.push(*s);
            px.push(m as f64);
        }
    }
    let f = |d: f64| Arc::new(Float64Array::from_iter_values(px.iter().map(|x| x + d))) as ArrayRef;
    RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
        ),
        ("symbol", Arc::new(StringViewArray::from(sym)) as ArrayRef),
        ("open", f(0.0)),
        ("high", f(1.0)),
        (
            "low",
            Arc::new(Float64Array::from_iter_values(px.iter().map(|x| x * 0.5))) as ArrayRef,
        ),
        ("close", f(0.5)),
        ("volume", f(0.0)),
    ])
    .unwrap()
}

/// An Arrow IPC stream of `batches` (what `Client::append` sends).
pub fn ipc(batches: &[RecordBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w =
        arrow_ipc::writer::StreamWriter::try_new(&mut out, batches[0].schema_ref()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    drop(w);
    out
}

pub fn q(tf: &str) -> QuerySpec {
    QuerySpec {
        dataset: "test".into(),
        timeframe: tf.into(),
        ..Default::default()
    }
}

/// Every batch of a result arena.
pub fn read_arena(a: &ResultArena) -> Vec<RecordBatch> {
    let mut r = Reader::open(&a.arena, StartAt::Oldest).unwrap();
    let mut out = vec![];
    while out.len() < a.batches as usize {
        match r.read(Duration::from_secs(10)).unwrap() {
            Some(b) => out.push(b.into_record_batch()),
            None => panic!("result arena {} ended early", a.arena),
        }
    }
    out
}

/// The 1m closes stored for `symbol`, by a real query (released after).
pub fn minutes(s: &Service, session: &mut Session, symbol: &str) -> Vec<i64> {
    use arrow_array::cast::AsArray;
    let mut spec = q("1m");
    spec.symbols = vec![symbol.into()];
    let a = s.query(&spec, session).unwrap();
    let out = read_arena(&a)
        .iter()
        .flat_map(|b| {
            b.column_by_name("ts")
                .unwrap()
                .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                .values()
                .iter()
                .map(|t| (t - T0) / MIN)
                .collect::<Vec<_>>()
        })
        .collect();
    session.release(&a.arena).unwrap();
    out
}

/// The service still works: an append is stored and a query sees it with
/// every earlier acknowledged minute of `symbol`.
pub fn still_works(s: &Service, symbol: &str, acknowledged: &[i64], next: i64) {
    let mut session = s.session();
    let out = s
        .append("test", &[bars(&[symbol], next, 1)], Default::default())
        .expect("an append after the fault");
    assert_eq!(out.rows, 1);
    let mut want = acknowledged.to_vec();
    want.push(next);
    assert_eq!(minutes(s, &mut session, symbol), want);
    let h = s.health();
    assert!(h.healthy, "{h:?}");
}
