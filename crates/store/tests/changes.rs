//! The per-dataset change log: what each write records, paging, reopening, damage,
//! compaction, and a crash between the log write and the data write.

use ringfeed_store::changes::{Change, ChangeKind, ChangesError, ChangesSince};
use ringfeed_store::perms::{WriteFault, ENOSPC};
use ringfeed_store::{BarStore, DatasetConfig, DeleteRange, FsyncPolicy, Query, StoreOptions};
use std::path::Path;

mod common;
use common::ohlcv_batch;

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 86_400_000_000_000;

fn bar(s: &str, t: i64) -> (String, i64, [f64; 5]) {
    (s.to_string(), t, [1.0, 2.0, 0.5, 1.5, 10.0])
}

fn store(dir: &Path) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["1h".parse().unwrap()];
    st.create_dataset("d", cfg).unwrap();
    st
}

fn all(st: &BarStore) -> ChangesSince {
    st.changes_since("d", 0, usize::MAX).unwrap()
}

fn rows(st: &BarStore) -> usize {
    st.query(&Query::new("d", "1m".parse().unwrap()))
        .unwrap()
        .num_rows()
}

fn entry(seq: u64, kind: ChangeKind, sym: Option<&str>, start: i64, end: i64) -> Change {
    Change {
        seq,
        kind,
        symbol: sym.map(str::to_string),
        start,
        end,
    }
}

fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("_changes").join("d.log")
}

#[test]
fn in_order_appends_log_nothing_and_older_bars_log_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    let c = all(&st);
    assert_eq!((c.first_seq, c.next_seq, c.changes.len()), (0, 0, 0));
    assert_eq!(c.log_id.len(), 32);
    st.upsert("d", &ohlcv_batch((0..10).map(|i| bar("X", i * MIN))))
        .unwrap();
    st.upsert("d", &ohlcv_batch([bar("X", 10 * MIN)])).unwrap();
    // The newest bar updated in place: a follower's inclusive resume sees it.
    st.upsert("d", &ohlcv_batch([bar("X", 10 * MIN)])).unwrap();
    assert!(all(&st).changes.is_empty());
    // An older bar, through the validated road (append calls upsert).
    let policy = ringfeed_store::RowPolicy::default();
    st.append("d", &ohlcv_batch([bar("X", 3 * MIN)]), &policy)
        .unwrap();
    let c = all(&st);
    assert_eq!(
        c.changes,
        vec![entry(
            0,
            ChangeKind::Rewrite,
            Some("X"),
            3 * MIN,
            3 * MIN + 1
        )]
    );
    assert_eq!(c.next_seq, 1);
    // A batch from below the newest to after it: one entry over all its rows.
    st.upsert("d", &ohlcv_batch([bar("X", 5 * MIN), bar("X", 12 * MIN)]))
        .unwrap();
    let c = st.changes_since("d", 1, 10).unwrap();
    assert_eq!(
        c.changes,
        vec![entry(
            1,
            ChangeKind::Rewrite,
            Some("X"),
            5 * MIN,
            12 * MIN + 1
        )]
    );
    // The newest was raised to 12 min: 11 min is below it now.
    st.upsert("d", &ohlcv_batch([bar("X", 11 * MIN)])).unwrap();
    assert_eq!(all(&st).next_seq, 3);
}

#[test]
fn only_symbols_that_went_below_their_newest_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    st.upsert(
        "d",
        &ohlcv_batch(
            ["A", "B"]
                .iter()
                .flat_map(|s| (0..5).map(|i| bar(s, i * MIN))),
        ),
    )
    .unwrap();
    let batch = ohlcv_batch([
        bar("A", 2 * MIN), // below A's newest (4 min)
        bar("A", 7 * MIN),
        bar("B", 4 * MIN), // at B's newest: not logged
        bar("B", 9 * MIN),
        bar("C", 0), // a new symbol: nothing older to hide
    ]);
    st.upsert("d", &batch).unwrap();
    assert_eq!(
        all(&st).changes,
        vec![entry(
            0,
            ChangeKind::Rewrite,
            Some("A"),
            2 * MIN,
            7 * MIN + 1
        )]
    );
}

#[test]
fn the_newest_bars_are_read_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut st = store(dir.path());
        st.upsert("d", &ohlcv_batch((0..5).map(|i| bar("X", DAY + i * MIN))))
            .unwrap();
        st.write_down(None, i64::MAX).unwrap(); // the newest bar is cold now
    }
    let mut st = BarStore::open(dir.path()).unwrap();
    st.upsert("d", &ohlcv_batch([bar("X", DAY + 4 * MIN)]))
        .unwrap();
    assert!(all(&st).changes.is_empty());
    st.upsert("d", &ohlcv_batch([bar("X", 0)])).unwrap();
    assert_eq!(
        all(&st).changes,
        vec![entry(0, ChangeKind::Rewrite, Some("X"), 0, 1)]
    );
}

#[test]
fn delete_and_trim_log_removes_and_retention_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    let batch = ohlcv_batch(
        ["A", "B"]
            .iter()
            .flat_map(|s| (0..4).map(move |d| bar(s, d * DAY + 5 * MIN))),
    );
    st.upsert("d", &batch).unwrap();
    // An empty range changes nothing and logs nothing.
    st.delete(
        "d",
        DeleteRange {
            symbol: Some("A".into()),
            start: 5,
            end: 5,
        },
    )
    .unwrap();
    assert!(all(&st).changes.is_empty());
    st.delete(
        "d",
        DeleteRange {
            symbol: None,
            start: 3 * DAY,
            end: 3 * DAY + 10 * MIN,
        },
    )
    .unwrap();
    // A trim inside a day (its last step is a delete) logs one entry, from the start.
    st.trim("d", Some("A"), DAY + 10 * MIN).unwrap();
    st.trim("d", None, DAY).unwrap();
    let c = all(&st);
    assert_eq!(
        c.changes,
        vec![
            entry(0, ChangeKind::Remove, None, 3 * DAY, 3 * DAY + 10 * MIN),
            entry(1, ChangeKind::Remove, Some("A"), i64::MIN, DAY + 10 * MIN),
            entry(2, ChangeKind::Remove, None, i64::MIN, DAY),
        ]
    );
    assert_eq!(rows(&st), 3); // B day 1, A day 2, B day 2
                              // Retention is each host's own: not logged.
    st.set_retention("d", Some("1d".parse().unwrap()), None)
        .unwrap();
    let dropped = st.apply_retention(Some("d"), 10 * DAY).unwrap();
    assert!(!dropped.is_empty());
    assert_eq!(all(&st).next_seq, 3);
}

#[test]
fn changes_since_filters_pages_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    for i in 0..7 {
        let range = DeleteRange {
            symbol: Some(format!("S{i}")),
            start: i,
            end: i + 1,
        };
        st.delete("d", range).unwrap();
    }
    let c = st.changes_since("d", 4, 100).unwrap();
    assert_eq!(
        c.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(c.next_seq, 7);
    let c = st.changes_since("d", 2, 2).unwrap();
    assert_eq!(c.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(c.next_seq, 4);
    // Past the end: nothing, next_seq stays the log's.
    let c = st.changes_since("d", 7, 10).unwrap();
    assert_eq!((c.changes.len(), c.next_seq), (0, 7));
    let c = st.changes_since("d", 99, 10).unwrap();
    assert_eq!((c.changes.len(), c.next_seq), (0, 7));
    // Paging by one reads each entry once.
    let (mut since, mut seen) = (0, Vec::new());
    loop {
        let p = st.changes_since("d", since, 1).unwrap();
        if p.changes.is_empty() {
            break;
        }
        seen.extend(p.changes.iter().map(|c| c.seq));
        since = p.next_seq;
    }
    assert_eq!(seen, (0..7).collect::<Vec<u64>>());
    match st.changes_since("nope", 0, 1) {
        Err(e @ ChangesError::UnknownDataset { .. }) => {
            assert!(e.to_string().contains("datasets: d"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

fn del(st: &mut BarStore, sym: Option<&str>, start: i64, end: i64) {
    let range = DeleteRange {
        symbol: sym.map(str::to_string),
        start,
        end,
    };
    st.delete("d", range).unwrap();
}

#[test]
fn entries_and_log_id_persist_and_readers_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    del(&mut st, Some("X"), 0, 10);
    let before = all(&st);
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.changes_since("d", 0, 10).unwrap(), before);
    // The reader rereads the file when the writer appended.
    del(&mut st, None, 5, 6);
    assert_eq!(ro.changes_since("d", 0, 10).unwrap(), all(&st));
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(all(&st), ro.changes_since("d", 0, 10).unwrap());
    assert_eq!(all(&st).log_id, before.log_id);
    assert_eq!(all(&st).next_seq, 2);
}

#[test]
fn a_torn_tail_is_cut_and_the_seqs_continue() {
    for tear in ["truncate", "garbage"] {
        let dir = tempfile::tempdir().unwrap();
        let mut st = store(dir.path());
        for i in 0..3 {
            del(&mut st, Some("X"), i, i + 1);
        }
        let id = all(&st).log_id;
        drop(st);
        let p = log_path(dir.path());
        let bytes = std::fs::read(&p).unwrap();
        match tear {
            "truncate" => std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap(),
            _ => {
                let mut b = bytes.clone();
                b.extend_from_slice(b"\x00\xffnot a line\n{\"seq\":9}\tzz");
                std::fs::write(&p, b).unwrap();
            }
        }
        // A reader serves the valid lines and changes nothing.
        let ro = BarStore::open_read_only(dir.path()).unwrap();
        let want = if tear == "truncate" { 2 } else { 3 };
        assert_eq!(ro.changes_since("d", 0, 10).unwrap().changes.len(), want);
        let mut st = BarStore::open(dir.path()).unwrap();
        let c = all(&st);
        assert_eq!((c.log_id.as_str(), c.next_seq), (id.as_str(), want as u64));
        del(&mut st, Some("Y"), 7, 8);
        drop(st);
        let st = BarStore::open(dir.path()).unwrap();
        let c = all(&st);
        assert_eq!(c.changes.len(), want + 1, "{tear}");
        assert_eq!(c.changes.last().unwrap().seq, want as u64);
        assert_eq!(c.changes.last().unwrap().symbol.as_deref(), Some("Y"));
    }
}

#[test]
fn a_damaged_log_is_moved_aside_and_restarted_with_a_new_id() {
    for damage in ["header", "middle", "random"] {
        let dir = tempfile::tempdir().unwrap();
        let mut st = store(dir.path());
        for i in 0..3 {
            del(&mut st, Some("X"), i, i + 1);
        }
        let id = all(&st).log_id;
        drop(st);
        let p = log_path(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        match damage {
            "header" => bytes[5] ^= 0x01,
            "middle" => {
                let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 3;
                bytes[second] ^= 0x40;
            }
            _ => {
                bytes = (0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect()
            }
        }
        std::fs::write(&p, &bytes).unwrap();
        // A reader says what is wrong and who fixes it; no panic.
        let ro = BarStore::open_read_only(dir.path()).unwrap();
        let e = ro.changes_since("d", 0, 10).unwrap_err();
        assert!(matches!(e, ChangesError::Corrupt { .. }), "{damage}: {e}");
        let mut st = BarStore::open(dir.path()).unwrap();
        let c = all(&st);
        assert_ne!(c.log_id, id, "{damage}");
        assert_eq!((c.first_seq, c.next_seq, c.changes.len()), (0, 0, 0));
        let aside = dir.path().join("_changes").join("d.log.corrupt-0");
        assert_eq!(std::fs::read(&aside).unwrap(), bytes);
        // The store still works, and the new log takes entries.
        del(&mut st, None, 0, 1);
        assert_eq!(all(&st).next_seq, 1);
        st.upsert("d", &ohlcv_batch([bar("X", 0)])).unwrap();
        assert_eq!(rows(&st), 1);
        assert_eq!(
            ro.changes_since("d", 0, 10).unwrap().log_id,
            all(&st).log_id
        );
    }
}

#[test]
fn drop_and_create_starts_a_new_log_and_old_stores_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    del(&mut st, None, 0, 1);
    let id = all(&st).log_id;
    st.drop_dataset("d").unwrap();
    assert!(!log_path(dir.path()).exists());
    assert!(st.changes_since("d", 0, 1).is_err());
    st.create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    let c = all(&st);
    assert_ne!(c.log_id, id);
    assert_eq!((c.first_seq, c.next_seq, c.changes.len()), (0, 0, 0));
    // Creating it again with the same config is a no-op: the log stays.
    del(&mut st, None, 0, 1);
    st.create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    assert_eq!(all(&st).next_seq, 1);
    st.upsert("d", &ohlcv_batch([bar("X", 0)])).unwrap();
    drop(st);
    // A store from before change logs: no `_changes` at all.
    std::fs::remove_dir_all(dir.path().join("_changes")).unwrap();
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    let e = ro.changes_since("d", 0, 1).unwrap_err();
    assert!(matches!(e, ChangesError::Missing { .. }), "{e}");
    let st = BarStore::open(dir.path()).unwrap();
    assert!(log_path(dir.path()).exists());
    let c = all(&st);
    assert_eq!((c.next_seq, c.changes.len()), (0, 0));
    assert_ne!(c.log_id, id);
    assert_eq!(rows(&st), 1);
    // A log left by a dataset the catalog no longer lists is removed at open.
    std::fs::write(dir.path().join("_changes").join("gone.log"), b"x").unwrap();
    drop(st);
    let _st = BarStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("_changes").join("gone.log").exists());
}

#[test]
fn a_full_disk_refuses_the_write_before_any_row_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let fault = WriteFault::default();
    let opts = StoreOptions {
        fault: Some(fault.clone()),
        ..StoreOptions::default()
    };
    let mut st = BarStore::open_with(dir.path(), opts).unwrap();
    st.create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    st.upsert("d", &ohlcv_batch((0..5).map(|i| bar("X", i * MIN))))
        .unwrap();
    fault.set_for(Some(ENOSPC), &dir.path().join("_changes"));
    let e = st.upsert("d", &ohlcv_batch([bar("X", -MIN)])).unwrap_err();
    assert!(e.to_string().contains("change log"), "{e}");
    assert!(e.to_string().contains("disk is full"), "{e}");
    let range = DeleteRange {
        symbol: None,
        start: 0,
        end: 2 * MIN,
    };
    assert!(st.delete("d", range.clone()).is_err());
    assert!(st.trim("d", None, MIN).is_err());
    // In-order appends write no log entry: they go on.
    st.upsert("d", &ohlcv_batch([bar("X", 5 * MIN)])).unwrap();
    assert_eq!(rows(&st), 6);
    fault.set(None);
    st.delete("d", range).unwrap();
    assert_eq!(rows(&st), 4);
    let c = all(&st);
    assert_eq!(
        c.changes,
        vec![entry(0, ChangeKind::Remove, None, 0, 2 * MIN)]
    );
}

/// Whether `[start, end)` of `sym` is covered by the union of `by`'s ranges of `sym` or
/// of every symbol.
fn covered(by: &[Change], sym: Option<&str>, start: i64, end: i64) -> bool {
    let mut iv: Vec<(i64, i64)> = by
        .iter()
        .filter(|c| c.symbol.is_none() || (sym.is_some() && c.symbol.as_deref() == sym))
        .map(|c| (c.start, c.end))
        .collect();
    iv.sort();
    let mut at = start;
    for (a, b) in iv {
        if a > at {
            break;
        }
        at = at.max(b);
        if at >= end {
            return true;
        }
    }
    at >= end
}

fn check_against(original: &[Change], c: &ChangesSince, since: u64) {
    for w in c.changes.windows(2) {
        assert!(w[0].seq <= w[1].seq, "seqs in order");
        if w[0].seq == w[1].seq {
            assert!(w[0].seq < c.first_seq, "only merged entries share a seq");
        }
    }
    assert!(c.changes.iter().all(|x| x.seq >= since));
    for o in original.iter().filter(|o| o.seq >= since) {
        assert!(
            covered(&c.changes, o.symbol.as_deref(), o.start, o.end),
            "{o:?} not covered since {since}: {:?}",
            c.changes
        );
    }
}

mod compaction {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn merged_entries_cover_every_original_range(
            ops in prop::collection::vec((0usize..4, -50i64..50, 1i64..30), 1..60),
            keep in 2usize..12,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut st = store(dir.path());
            st.set_changes_keep(keep);
            let syms = [Some("A"), Some("B"), Some("C"), None];
            let mut original = Vec::new();
            for (i, (s, start, len)) in ops.iter().enumerate() {
                del(&mut st, syms[*s], *start, start + len);
                original.push(entry(i as u64, ChangeKind::Remove, syms[*s], *start, start + len));
            }
            let c = all(&st);
            prop_assert_eq!(c.next_seq, ops.len() as u64);
            prop_assert!(c.changes.len() <= keep + 4, "{} entries over cap {}", c.changes.len(), keep);
            if ops.len() > keep {
                prop_assert!(c.first_seq > 0);
                let merged = c.changes.iter().filter(|x| x.seq < c.first_seq).count();
                prop_assert!(c.changes[..merged].iter().all(|x| x.seq == c.first_seq - 1));
            }
            for since in 0..=ops.len() as u64 {
                let page = st.changes_since("d", since, usize::MAX).unwrap();
                check_against(&original, &page, since);
                // Entries at or after first_seq are the originals.
                for x in page.changes.iter().filter(|x| x.seq >= c.first_seq) {
                    prop_assert_eq!(x, &original[x.seq as usize]);
                }
            }
            // Paging with a small limit gives the same entries.
            let (mut since, mut paged) = (0, Vec::new());
            loop {
                let p = st.changes_since("d", since, 2).unwrap();
                if p.changes.is_empty() { break; }
                prop_assert!(p.next_seq > since || since == 0 && p.next_seq > 0);
                paged.extend(p.changes);
                since = p.next_seq;
            }
            prop_assert_eq!(&paged, &c.changes);
            drop(st);
            let st = BarStore::open(dir.path()).unwrap();
            prop_assert_eq!(all(&st), c.clone());
            let ro = BarStore::open_read_only(dir.path()).unwrap();
            prop_assert_eq!(ro.changes_since("d", 0, usize::MAX).unwrap(), c);
        }
    }
}

#[test]
fn a_merged_group_is_never_split_by_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    st.set_changes_keep(4);
    for (i, s) in ["A", "B", "C", "D", "E"].iter().enumerate() {
        del(&mut st, Some(s), i as i64, i as i64 + 1);
    }
    let c = all(&st);
    // Merged: A, B (seq 1); then C, D, E.
    assert_eq!(c.first_seq, 2);
    assert_eq!(
        c.changes.iter().map(|x| x.seq).collect::<Vec<_>>(),
        [1, 1, 2, 3, 4]
    );
    // A limit of 1 still returns the whole first group.
    let p = st.changes_since("d", 0, 1).unwrap();
    assert_eq!((p.changes.len(), p.next_seq), (2, 2));
    // A limit that would end inside it stops before it.
    let p = st.changes_since("d", 0, 3).unwrap();
    assert_eq!((p.changes.len(), p.next_seq), (3, 3));
}

#[test]
fn every_fsync_policy_logs_the_same() {
    for fsync in [
        FsyncPolicy::Always,
        FsyncPolicy::EveryMillis(50),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut st = BarStore::open(dir.path()).unwrap();
        let mut cfg = DatasetConfig::new("1m".parse().unwrap());
        cfg.fsync = fsync;
        st.create_dataset("d", cfg).unwrap();
        st.upsert("d", &ohlcv_batch([bar("X", MIN)])).unwrap();
        st.upsert("d", &ohlcv_batch([bar("X", 0)])).unwrap();
        drop(st);
        let st = BarStore::open(dir.path()).unwrap();
        assert_eq!(all(&st).changes.len(), 1, "{fsync}");
    }
}

/// Child role for the crash test: store bars, then delete some of them with the process
/// set to abort between the change-log write and the data write.
#[test]
fn changes_crash_child() {
    let Ok(dir) = std::env::var("RINGFEED_CHANGES_CHILD") else {
        return; // Not the child: nothing to do.
    };
    let mut st = BarStore::open(Path::new(&dir)).unwrap();
    let range = DeleteRange {
        symbol: Some("X".into()),
        start: 0,
        end: 5 * MIN,
    };
    st.delete("d", range).unwrap();
    println!("deleted");
}

#[test]
fn a_crash_after_the_log_write_leaves_the_entry_and_the_old_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut st = store(dir.path());
        st.upsert("d", &ohlcv_batch((0..10).map(|i| bar("X", i * MIN))))
            .unwrap();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "changes_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RINGFEED_CHANGES_CHILD", dir.path())
        .env("RINGFEED_STORE_FAILPOINT", "changes:after_record")
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("deleted"));
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(rows(&st), 10, "the data is as before the delete");
    assert_eq!(
        all(&st).changes,
        vec![entry(0, ChangeKind::Remove, Some("X"), 0, 5 * MIN)]
    );
}
