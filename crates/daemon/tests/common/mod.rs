//! What the daemon test binaries share: a real `ringfeedd` in a temporary
//! directory, a `Service` over a temporary store (in-process), bar batches
//! and IPC payloads to feed them, and reading a result arena back.
#![allow(dead_code)]

pub mod certs;
pub mod node;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_arrow::{Reader, StartAt};
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::{Client, ClientError};
use ringfeed_daemon::service::{CacheLimits, ResultArena, Session};
use ringfeed_daemon::{Config, Service};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One arena directory for the whole test binary: the client library reads
/// RINGFEED_SHM_DIR from the (process-global) environment, and tests run in
/// parallel threads. Daemons tell their arenas apart by prefix.
pub fn shm_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // Arena dirs of earlier test runs whose process is gone (a killed
        // daemon's arenas stay behind: GBs over many runs).
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("rf-e2e-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = std::env::temp_dir().join(format!("rf-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::env::set_var("RINGFEED_SHM_DIR", &d);
        d
    })
    .clone()
}

/// A daemon's arena prefix, derived from its (unique) temp dir.
pub fn prefix_for(dir: &Path) -> String {
    let n = dir.file_name().unwrap().to_string_lossy();
    format!(
        "e2e{}",
        n.trim_start_matches('.')
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    )
}

pub const MIN: i64 = 60_000_000_000;
pub const T0: i64 = 1_609_459_200_000_000_000; // 2021-01-01T00:00:00Z

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub shm: PathBuf,
}

impl Daemon {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir)
    }

    pub fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, "")
    }

    /// Starts with `extra` top-level config lines (limits) added.
    pub fn start_with(dir: tempfile::TempDir, extra: &str) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// [`Daemon::start_with`], with `env` set in the daemon's environment.
    pub fn start_with_env(dir: tempfile::TempDir, extra: &str, env: &[(&str, &str)]) -> Self {
        let socket = dir.path().join("rf.sock");
        let shm = shm_dir();
        let cfg = dir.path().join("ringfeed.toml");
        std::fs::write(
            &cfg,
            format!(
                "data_dir = {:?}\nsocket = {:?}\narena_prefix = \"{prefix}\"\nmemory_budget = \"64MiB\"\n{extra}\n\
                 [datasets.test]\nbase = \"1m\"\nrollups = [\"5m\", \"1h\"]\n",
                dir.path().join("data"),
                socket,
                prefix = prefix_for(dir.path()),
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
            .arg("--config")
            .arg(&cfg)
            .env("RINGFEED_SHM_DIR", &shm)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn ringfeedd");
        let d = Daemon {
            child,
            dir,
            socket,
            shm,
        };
        let _ = &d.shm;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Client::connect(Some(&d.socket)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ringfeedd did not come up within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn client(&self) -> Client {
        Client::connect(Some(&self.socket)).unwrap()
    }

    /// Arenas of this daemon (by its prefix).
    pub fn arenas(&self) -> Vec<String> {
        let prefix = format!("ringfeed.{}.", prefix_for(self.dir.path()));
        let mut v: Vec<String> = std::fs::read_dir(&self.shm)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        v.sort();
        v
    }

    pub fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "ringfeedd did not exit after {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its arenas (the daemon may have been killed before closing them);
        // a mapping the test still holds stays valid.
        let mine = format!("ringfeed.{}", prefix_for(self.dir.path()));
        for e in std::fs::read_dir(&self.shm).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&mine)
                && matches!(name.as_bytes().get(mine.len()), Some(b'.' | b'@'))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// `n` one-minute bars per symbol starting at minute `from`; close = minute index.
pub fn bars(symbols: &[&str], from: i64, n: i64) -> RecordBatch {
    let (mut ts, mut sym, mut px) = (vec![], vec![], vec![]);
    for m in from..from + n {
        for s in symbols {
            ts.push(T0 + m * MIN);
            sym.push(*s);
            px.push(m as f64);
        }
    }
    let f = |v: &Vec<f64>, d: f64| {
        Arc::new(Float64Array::from_iter_values(v.iter().map(|x| x + d))) as ArrayRef
    };
    RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
        ),
        ("symbol", Arc::new(StringViewArray::from(sym)) as ArrayRef),
        ("open", f(&px, 0.0)),
        ("high", f(&px, 1.0)),
        (
            "low",
            Arc::new(Float64Array::from_iter_values(px.iter().map(|x| x * 0.5))) as ArrayRef,
        ),
        ("close", f(&px, 0.5)),
        ("volume", f(&px, 0.0).slice(0, px.len())),
    ])
    .unwrap()
}

pub fn q(tf: &str) -> QuerySpec {
    QuerySpec {
        dataset: "test".into(),
        timeframe: tf.into(),
        ..Default::default()
    }
}

pub fn closes(b: &ringfeed_client::Bars) -> Vec<f64> {
    b.batches
        .iter()
        .flat_map(|x| {
            x.column_by_name("close")
                .unwrap()
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// The daemon's error kind of a refusal ("" for other errors).
pub fn server_kind(e: &ClientError) -> &str {
    match e {
        ClientError::Server { kind, .. } => kind.as_str(),
        _ => "",
    }
}

// In-process service.

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
            ..Default::default()
        },
    );
    let mut l = CacheLimits::from_config(&cfg);
    limits(&mut l);
    (Service::open_with(cfg, l).unwrap(), dir)
}

pub fn service() -> (Arc<Service>, tempfile::TempDir) {
    service_with(|_| {})
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

/// A stream declaring `rows` rows of Null-typed `ts` and `symbol`: the
/// issue's 280-byte append (2^33 rows) once `rows` is patched in.
pub fn null_stream(rows: i64) -> Vec<u8> {
    const MARK: i64 = 12_345;
    let n: ArrayRef = Arc::new(arrow_array::NullArray::new(MARK as usize));
    let b = RecordBatch::try_from_iter([("ts", n.clone()), ("symbol", n)]).unwrap();
    let mut p = ipc(&[b]);
    let (from, to) = (MARK.to_le_bytes(), rows.to_le_bytes());
    let mut patched = 0;
    for i in 0..p.len() - 8 {
        if p[i..i + 8] == from {
            p[i..i + 8].copy_from_slice(&to);
            patched += 1;
        }
    }
    assert!(patched >= 3, "row count and both field nodes patched");
    p
}

/// One raw protocol frame: `u32` header length, JSON header, `u64` payload
/// length, payload.
pub fn frame(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    v.extend_from_slice(payload);
    v
}
