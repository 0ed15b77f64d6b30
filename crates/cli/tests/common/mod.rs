//! What the CLI tests that drive a real `ringfeed serve` share.
#![allow(dead_code)]

use ringfeed_client::Client;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `ringfeed` with `args`: (exit code, stdout, stderr).
pub fn run_code<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args(args)
        .output()
        .expect("run ringfeed");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon child, killed if the test panics before stopping it (a leftover
/// `ringfeed serve` would hold the test harness's output pipe open).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `ringfeed serve` in a temporary directory with one dataset (1m, rolled up
/// to 5m), and a client connected to it.
pub struct Served {
    /// Holds the data dir, socket and arenas.
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub data: PathBuf,
    pub daemon: KillOnDrop,
}

/// Starts `ringfeed serve` with `dataset` configured; waits until it answers.
/// Sets RINGFEED_SHM_DIR for this process (one such test per test binary).
pub fn serve(dataset: &str, prefix: &str) -> (Served, Client) {
    let dir = tempfile::tempdir().unwrap();
    let shm = dir.path().join("shm");
    std::fs::create_dir_all(&shm).unwrap();
    std::env::set_var("RINGFEED_SHM_DIR", &shm);
    let sock = dir.path().join("rf.sock");
    let data = dir.path().join("data");
    let cfg = dir.path().join("rf.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nsocket = {sock:?}\n[datasets.{dataset}]\nbase = \"1m\"\nrollups = [\"5m\"]\n"
        ),
    )
    .unwrap();
    let daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ringfeed"))
            .args(["serve", "--arena-prefix", prefix, "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        match Client::connect(Some(&sock)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("ringfeed serve did not come up: {e}"),
        }
    };
    (
        Served {
            dir,
            sock,
            data,
            daemon,
        },
        c,
    )
}
