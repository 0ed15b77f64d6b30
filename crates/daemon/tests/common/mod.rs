//! What the daemon test binaries share: a real `ringfeedd` in a temporary
//! directory, and bar batches to feed it.
#![allow(dead_code)]

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::{Client, ClientError};
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
