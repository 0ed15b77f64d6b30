//! The `ringfeed` binary, run for real against arenas in a private directory.

use ringfeed_arrow::{ohlcv_schema, RingOptions, StartAt};
use std::process::Command;

fn ringfeed(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args(args)
        .env("RINGFEED_SHM_DIR", dir)
        .output()
        .expect("run ringfeed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_lists_and_details_and_rm_removes() {
    let dir = std::env::temp_dir().join(format!("rf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The library reads the same variable; this test binary runs its tests in
    // one process, so keep every test in this file on the same directory.
    std::env::set_var("RINGFEED_SHM_DIR", &dir);

    let (ok, out, _) = ringfeed(&dir, &["inspect"]);
    assert!(ok);
    assert!(out.contains("no arenas"), "{out}");

    let mut w = ringfeed_arrow::Writer::create("cli.bars", &ohlcv_schema(), RingOptions::default())
        .unwrap();
    let mut r = ringfeed_arrow::Reader::open("cli.bars", StartAt::Oldest).unwrap();
    let batch = arrow_array::RecordBatch::new_empty(std::sync::Arc::new(ohlcv_schema()));
    w.write(&batch).unwrap();
    w.write(&batch).unwrap();
    let held = r.try_read().unwrap().unwrap();

    let (ok, out, _) = ringfeed(&dir, &["inspect"]);
    assert!(ok);
    assert!(out.contains("cli.bars") && out.contains("alive"), "{out}");
    assert!(
        out.contains("PUBLISHED") && out.contains("OLDEST_LEASE"),
        "{out}"
    );

    let (ok, out, err) = ringfeed(&dir, &["inspect", "cli.bars"]);
    assert!(ok, "{err}");
    for want in [
        "write_seq 2",
        "symbol",
        "Utf8View",
        "1 of 41 buffers pinned, oldest held ",
        "LEASE_AGE",
        "published  ",
        "active",
        "overwrite oldest",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    let (ok, _, err) = ringfeed(&dir, &["rm", "cli.bars"]);
    assert!(!ok);
    assert!(
        err.contains("writer") && err.contains("alive") && err.contains("--force"),
        "{err}"
    );

    let (ok, _, err) = ringfeed(&dir, &["inspect", "nope"]);
    assert!(!ok);
    assert!(err.contains("no arena named"), "{err}");

    // A writer that dies leaves a leftover; --stale removes it.
    drop(held);
    drop(r);
    let ring =
        ringfeed_shm::RingWriter::create("cli.dead", &ringfeed_shm::RingOptions::default(), b"")
            .unwrap();
    ring.simulate_death();
    let (ok, out, _) = ringfeed(&dir, &["inspect"]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.contains("cli.dead") && l.contains("gone")),
        "{out}"
    );
    let (ok, out, err) = ringfeed(&dir, &["rm", "--stale"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("removed cli.dead") && !out.contains("cli.bars"),
        "{out}"
    );
    let (ok, out, _) = ringfeed(&dir, &["rm", "--force", "cli.bars"]);
    assert!(ok);
    assert!(out.contains("removed cli.bars"));
    drop(w);
    let (_, out, _) = ringfeed(&dir, &["--help"]);
    assert!(out.contains("inspect") && out.contains("rm"));
    std::fs::remove_dir_all(&dir).unwrap();
}
