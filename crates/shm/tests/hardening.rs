//! What a buggy (or hostile) client can no longer do to a ring: scribble
//! pins into reader rows, truncate the reader table, open the arena file for
//! writing, plant or share files under an arena's name, or replace a live
//! writer's arena.

use ringfeed_shm::layout::{row_state, ReaderRow, ROWS_OFF};
use ringfeed_shm::{
    inspect, table_path, CreateError, OpenError, ReadError, RingOptions, RingReader, RingWriter,
    StartAt,
};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "hard-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A small ring with exactly one spare buffer: any buffer wrongly held
/// pinned makes the writer fail with `AllLeased`.
fn tight() -> RingOptions {
    RingOptions {
        slots: 2,
        slot_bytes: 4096,
        max_readers: 2,
        leases_per_reader: 1,
        buffers: Some(3),
        ..RingOptions::default()
    }
}

/// Byte offset of row `i`'s pin for buffer `b` in the reader table.
fn pin_off(w: &RingWriter, i: u32, b: u32) -> u64 {
    let o = w.geometry().layout();
    ROWS_OFF + o.reader_stride * i as u64 + std::mem::size_of::<ReaderRow>() as u64 + 4 * b as u64
}

fn table(name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(table_path(name))
        .unwrap()
}

/// Publishes `n` batches; each must succeed. Returns the last seq.
fn publish_n(w: &mut RingWriter, n: u64) -> u64 {
    let mut last = 0;
    for k in 0..n {
        last = w
            .publish(&k.to_le_bytes(), 1, 0)
            .unwrap_or_else(|e| panic!("publish {k} failed: {e}"));
    }
    last
}

#[test]
fn the_arena_file_is_read_only_and_the_table_is_separate() {
    let name = unique("modes");
    let w = RingWriter::create(&name, &tight(), b"m").unwrap();
    let md = std::fs::metadata(w.path()).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o400);
    let tmd = std::fs::metadata(table_path(&name)).unwrap();
    assert_eq!(tmd.permissions().mode() & 0o777, 0o600);
    assert_eq!(tmd.len(), w.geometry().layout().readers_len);
    // Not listed as an arena of its own.
    let names = ringfeed_shm::list_arenas().unwrap();
    assert!(names.contains(&name));
    assert!(!names.iter().any(|n| n.contains("@readers")));
    drop(w);
    assert!(!table_path(&name).exists(), "close removes the table too");
}

#[test]
fn a_scribbled_free_row_never_freezes_publishing_and_inspect_shows_it() {
    let name = unique("free-pins");
    let mut w = RingWriter::create(&name, &tight(), b"m").unwrap();
    let t = table(&name);
    // Pin every buffer in row 1, which nobody owns.
    for b in 0..3 {
        t.write_all_at(&7u32.to_ne_bytes(), pin_off(&w, 1, b))
            .unwrap();
    }
    // inspect (read-only) reports it before anyone repairs it.
    let info = inspect(&name).unwrap();
    let bad = info
        .readers
        .iter()
        .find(|r| r.row == 1)
        .expect("row 1 reported");
    assert_eq!(bad.problem, Some("pins in a FREE row"));
    assert_eq!(bad.state, row_state::FREE);
    assert_eq!(info.leased_buffers, 0, "a bad row's pins lease nothing");
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    publish_n(&mut w, 20);
    // Nobody owned the row, so the writer's sweep took its lock and cleared it.
    let mut pin = [0u8; 4];
    t.read_exact_at(&mut pin, pin_off(&w, 1, 0)).unwrap();
    assert_eq!(pin, [0; 4]);
    // The ring still works: the reader sees the newest batches in order.
    let mut seen = Vec::new();
    loop {
        match r.try_read() {
            Ok(Some(l)) => seen.push(l.seq()),
            Ok(None) => break,
            Err(ReadError::Lagged { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(seen.last(), Some(&20));
}

#[test]
fn a_live_reader_pinning_more_than_its_share_is_ignored_after_a_sweep() {
    let name = unique("greedy");
    let mut w = RingWriter::create(&name, &tight(), b"m").unwrap();
    let r = RingReader::open(&name, StartAt::Oldest).unwrap();
    let row = r.readers()[0].row;
    let t = table(&name);
    for b in 0..3 {
        t.write_all_at(&1u32.to_ne_bytes(), pin_off(&w, row, b))
            .unwrap();
    }
    // The sweep at the next claim finds the row broken; its pins stop counting.
    publish_n(&mut w, 10);
    assert_eq!(w.bad_rows(), 1);
    let info = inspect(&name).unwrap();
    let bad = info.readers.iter().find(|i| i.row == row).unwrap();
    assert_eq!(bad.problem, Some("more pins than leases_per_reader"));
    drop(r);
}

#[test]
fn a_truncated_reader_table_is_rebuilt_and_its_readers_detached() {
    let name = unique("trunc");
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"m").unwrap();
    let mut old = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"one", 1, 0).unwrap();
    assert_eq!(old.try_read().unwrap().unwrap().bytes(), b"one");
    // Another process truncates the table (the writer would die of SIGBUS
    // on its next touch of a row without the guard).
    let st = std::process::Command::new("truncate")
        .args(["-s", "0"])
        .arg(table_path(&name))
        .status()
        .expect("run truncate(1)");
    assert!(st.success());
    let mut acked = Vec::new();
    for k in 0..20u64 {
        acked.push(w.publish(&k.to_le_bytes(), 1, 0).unwrap());
    }
    assert_eq!(w.table_rebuilds(), 1);
    assert_eq!(
        std::fs::metadata(table_path(&name)).unwrap().len(),
        w.geometry().layout().readers_len
    );
    // The old reader learns it is detached instead of crashing.
    assert!(matches!(old.try_read(), Err(ReadError::Detached { .. })));
    drop(old);
    // A new reader works and sees every batch still in the ring.
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    let mut got = Vec::new();
    while let Some(l) = r.read(Duration::from_millis(50)).unwrap() {
        got.push(u64::from_le_bytes(l.bytes().try_into().unwrap()));
    }
    assert_eq!(got, (12..20).collect::<Vec<_>>());
    assert_eq!(*acked.last().unwrap(), 21);
}

#[test]
fn force_never_replaces_a_live_writer() {
    let name = unique("live");
    let mut w = RingWriter::create(&name, &tight(), b"m").unwrap();
    let opts = RingOptions {
        force: true,
        ..tight()
    };
    match RingWriter::create(&name, &opts, b"m") {
        Err(CreateError::AlreadyExists {
            writer_alive: true, ..
        }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("force replaced a live writer's arena"),
    }
    publish_n(&mut w, 3);
    // A leftover (dead writer) is replaced with force.
    w.simulate_death();
    let w2 = RingWriter::create(&name, &opts, b"m").unwrap();
    drop(w2);
}

#[test]
fn files_others_may_write_are_refused() {
    let name = unique("mode");
    let w = RingWriter::create(&name, &tight(), b"m").unwrap();
    std::fs::set_permissions(table_path(&name), PermissionsExt::from_mode(0o666)).unwrap();
    let err = RingReader::open(&name, StartAt::Oldest)
        .err()
        .expect("refused");
    assert!(matches!(err, OpenError::UnsafeFile { .. }), "{err}");
    assert!(err.to_string().contains("others may write"), "{err}");
    std::fs::set_permissions(table_path(&name), PermissionsExt::from_mode(0o600)).unwrap();
    RingReader::open(&name, StartAt::Oldest).unwrap();
    drop(w);
}

#[test]
fn files_of_another_user_are_refused_by_readers_and_writers() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to chown a file to another user");
        return;
    }
    let name = unique("foreign");
    let w = RingWriter::create(&name, &tight(), b"m").unwrap();
    std::os::unix::fs::chown(w.path(), Some(4242), None).unwrap();
    let err = RingReader::open(&name, StartAt::Oldest)
        .err()
        .expect("refused");
    assert!(
        matches!(err, OpenError::ForeignOwner { owner: 4242, .. }),
        "{err}"
    );
    drop(w);
    // A file planted at a predictable name by another user: never used or replaced.
    let planted = unique("planted");
    let p = ringfeed_shm::arena_path(&planted);
    std::fs::write(&p, b"not yours").unwrap();
    std::os::unix::fs::chown(&p, Some(4242), None).unwrap();
    let opts = RingOptions {
        force: true,
        ..tight()
    };
    match RingWriter::create(&planted, &opts, b"m") {
        Err(CreateError::UnsafeFile { owner: 4242, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("replaced another user's file"),
    }
    assert_eq!(std::fs::metadata(&p).unwrap().uid(), 4242);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn leftovers_of_either_file_are_found_and_a_missing_table_hides_no_live_writer() {
    let name = unique("orphan");
    let w = RingWriter::create(&name, &tight(), b"m").unwrap();
    std::fs::remove_file(table_path(&name)).unwrap();
    // inspect still sees the live writer (so `rm --stale` and daemons leave it alone).
    let info = inspect(&name).unwrap();
    assert!(info.writer_alive);
    assert!(info
        .table_problem
        .as_deref()
        .unwrap()
        .contains("does not exist"));
    assert!(RingWriter::create(
        &name,
        &RingOptions {
            force: true,
            ..tight()
        },
        b"m"
    )
    .is_err());
    drop(w);
    // A table whose arena is gone is listed under its arena's name and removable.
    let orphan = unique("orphan-table");
    std::fs::write(table_path(&orphan), b"left over").unwrap();
    assert!(ringfeed_shm::list_arenas().unwrap().contains(&orphan));
    assert!(matches!(inspect(&orphan), Err(OpenError::NotFound { .. })));
    ringfeed_shm::remove(&orphan).unwrap();
    assert!(!table_path(&orphan).exists());
}
