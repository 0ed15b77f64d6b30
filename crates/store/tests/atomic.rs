//! A write is all or nothing (ringfeed issue 12, item 19): an append whose rollup frames,
//! or whose later days, find no space is cut back whole. The error is honest: no row of it
//! is served, the WAL files are byte for byte as before, a restart shows none of it, and
//! the next write works. When the cut itself fails, the store turns read-only until it
//! is finished.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use ringfeed_store::perms::{WriteFault, ENOSPC};
use ringfeed_store::schema::BarColumns;
use ringfeed_store::store::{AppendError, WriteError};
use ringfeed_store::wal::WalError;
use ringfeed_store::{
    fsck, BarStore, DatasetConfig, DeleteRange, FsyncPolicy, Query, RowPolicy, StoreOptions,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 1440;
/// `EIO`, what a dying disk answers.
const EIO: i32 = 5;

/// One bar of `sym` per minute of `mins`, whose close is the minute.
fn bars(sym: &str, mins: impl IntoIterator<Item = i64>) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    for i in mins {
        c.ts.push(i * MIN);
        c.symbol.push(sym.into());
        for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
            v.push(i as f64);
        }
        c.volume.push(1.0);
    }
    c.into_batch().unwrap()
}

fn config() -> DatasetConfig {
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["5m".parse().unwrap(), "1h".parse().unwrap()];
    cfg.fsync = FsyncPolicy::Always;
    cfg
}

/// A writer with a fault switch, dataset `d`, and one-row appends of `X` at minutes 0..10.
fn store(dir: &Path) -> (BarStore, WriteFault) {
    let fault = WriteFault::default();
    let opts = StoreOptions {
        fault: Some(fault.clone()),
        ..StoreOptions::default()
    };
    let mut st = BarStore::open_with(dir, opts).unwrap();
    st.create_dataset("d", config()).unwrap();
    for i in 0..10 {
        st.append("d", &bars("X", [i]), &RowPolicy::default())
            .unwrap();
    }
    (st, fault)
}

/// Every hot WAL file and its bytes.
fn wals(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.join("_hot")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `(symbol, minute, close)` of every stored row of `tf`, with the `complete` flag for
/// rollups: the whole visible state of a timeframe.
fn rows(st: &BarStore, tf: &str) -> Vec<(String, i64, f64, Option<bool>)> {
    let b = st.query(&Query::new("d", tf.parse().unwrap())).unwrap();
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let close = b
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>();
    let sym = b.column_by_name("symbol").unwrap();
    let sym =
        arrow_cast::display::ArrayFormatter::try_new(sym.as_ref(), &Default::default()).unwrap();
    let done = b.column_by_name("complete").map(|c| c.as_boolean().clone());
    (0..b.num_rows())
        .map(|i| {
            (
                sym.value(i).to_string(),
                ts.value(i) / MIN,
                close.value(i),
                done.as_ref().map(|d| d.value(i)),
            )
        })
        .collect()
}

/// Everything a client can see: the base bars and both rollups.
type View = [Vec<(String, i64, f64, Option<bool>)>; 3];

fn view(st: &BarStore) -> View {
    [rows(st, "1m"), rows(st, "5m"), rows(st, "1h")]
}

/// A store that only ever got the appends that succeeded: what the failed one must
/// leave behind.
fn reference(appends: &[arrow_array::RecordBatch]) -> View {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = store(dir.path());
    for b in appends {
        st.append("d", b, &RowPolicy::default()).unwrap();
    }
    view(&st)
}

fn is_full_disk_wal_error(e: &AppendError) -> bool {
    matches!(
        e,
        AppendError::Write(WriteError::Wal(WalError::DiskFull { .. }))
    )
}

#[test]
fn a_failed_rollup_frame_write_undoes_the_whole_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, fault) = store(dir.path());
    let before = wals(dir.path());
    let seen = view(&st);
    let version = st.catalog().version;

    // The base frame of minute 10 lands; the 1h rollup frame after it finds no space.
    fault.set_for(Some(ENOSPC), &dir.path().join("_hot/d/1h"));
    let err = st
        .append("d", &bars("X", [10]), &RowPolicy::default())
        .unwrap_err();
    assert!(is_full_disk_wal_error(&err), "{err:?}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert_eq!(view(&st), seen, "a refused append left rows behind");
    assert_eq!(wals(dir.path()), before, "the WAL files changed");
    assert_eq!(st.catalog().version, version);
    assert_eq!(st.read_only_reason(), None);
    drop(st);

    // A restart shows none of it, and has nothing to repair.
    fault.set(None);
    let mut st = BarStore::open(dir.path()).unwrap();
    assert_eq!(view(&st), seen);
    assert!(st.recovered.is_empty(), "{:?}", st.recovered);
    assert!(st.rollups_repaired.is_empty(), "{:?}", st.rollups_repaired);
    assert_eq!(wals(dir.path()), before);
    // And the next append works.
    st.append("d", &bars("X", [10]), &RowPolicy::default())
        .unwrap();
    let want = reference(&[bars("X", [10])]);
    assert_eq!(view(&st), want);
    drop(st);
    assert_eq!(view(&BarStore::open(dir.path()).unwrap()), want);
    let rep = fsck::check(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(rep.problems(), 0, "{:#?}", rep.findings);
}

#[test]
fn the_writer_goes_on_from_the_state_before_a_failed_append() {
    // No restart: the writer's own view (WAL lengths, cached days) must be put back too.
    // The next append is as long as the refused one, so a cached day that still held the
    // refused row would look current.
    let dir = tempfile::tempdir().unwrap();
    let (mut st, fault) = store(dir.path());
    fault.set_for(Some(ENOSPC), &dir.path().join("_hot/d/5m"));
    for _ in 0..3 {
        let err = st
            .append("d", &bars("X", [10]), &RowPolicy::default())
            .unwrap_err();
        assert!(is_full_disk_wal_error(&err), "{err:?}");
    }
    fault.set(None);
    st.append("d", &bars("X", [11]), &RowPolicy::default())
        .unwrap();
    st.append("d", &bars("X", [12]), &RowPolicy::default())
        .unwrap();
    let want = reference(&[bars("X", [11]), bars("X", [12])]);
    assert_eq!(view(&st), want);
    drop(st);
    assert_eq!(view(&BarStore::open(dir.path()).unwrap()), want);
}

#[test]
fn an_append_over_several_days_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, fault) = store(dir.path());
    let before = wals(dir.path());
    let seen = view(&st);
    // One batch over three days, with a symbol new to the dataset: the first two days'
    // frames land, the third day's base WAL finds no space.
    let batch = arrow_select::concat::concat_batches(
        &bars("X", [0]).schema(),
        &[
            bars("X", [20, 21]),
            bars("N", [DAY + 5, 2 * DAY + 7]),
            bars("X", [DAY + 1, 2 * DAY + 3]),
        ],
    )
    .unwrap();
    let third = st.wal_path("d", "1m".parse().unwrap(), 2);
    fault.set_for(Some(ENOSPC), &third);
    let err = st.append("d", &batch, &RowPolicy::default()).unwrap_err();
    assert!(is_full_disk_wal_error(&err), "{err:?}");
    assert_eq!(view(&st), seen);
    assert_eq!(wals(dir.path()), before, "days 1 and 2 were not cut back");
    assert!(
        !st.catalog().datasets["d"].symbols.contains("N"),
        "the new symbol stayed listed"
    );
    assert_eq!(st.hot_days("d", "1m".parse().unwrap()), vec![0]);

    fault.set(None);
    let s = st.append("d", &batch, &RowPolicy::default()).unwrap();
    assert_eq!((s.write.rows, s.write.days), (6, 3));
    let want = reference(&[batch]);
    assert_eq!(view(&st), want);
    drop(st);
    assert_eq!(view(&BarStore::open(dir.path()).unwrap()), want);
}

#[test]
fn a_failed_delete_is_undone_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, fault) = store(dir.path());
    let before = wals(dir.path());
    let seen = view(&st);
    fault.set_for(Some(ENOSPC), &dir.path().join("_hot/d/5m"));
    let range = DeleteRange {
        symbol: Some("X".into()),
        start: 3 * MIN,
        end: 6 * MIN,
    };
    assert!(st.delete("d", range.clone()).is_err());
    assert_eq!(view(&st), seen);
    assert_eq!(wals(dir.path()), before);
    fault.set(None);
    assert_eq!(st.delete("d", range).unwrap(), 1);
    assert_eq!(rows(&st, "1m").len(), 7);
}

#[test]
fn an_undo_that_fails_turns_the_store_read_only_until_it_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, fault) = store(dir.path());
    let before = wals(dir.path());
    let seen = view(&st);
    fault.set_for(Some(ENOSPC), &dir.path().join("_hot/d/1h"));
    fault.set_undo(Some(EIO));
    let err = st
        .append("d", &bars("X", [10]), &RowPolicy::default())
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Write(WriteError::NotUndone { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("disk is full") && msg.contains("may be stored") && msg.contains("read-only"),
        "{msg}"
    );
    let reason = st.read_only_reason().expect("read-only").to_string();
    assert!(reason.contains("cutting back"), "{reason}");
    // Reads serve the disk as it is (the base frame is there); writes are refused.
    assert_eq!(rows(&st, "1m").len(), 11);
    let refused = st
        .append("d", &bars("X", [11]), &RowPolicy::default())
        .unwrap_err();
    assert!(
        matches!(refused, AppendError::Unwritable { .. }),
        "{refused:?}"
    );
    // The disk still fails: so does the retry.
    assert!(!st.retry_writable());
    assert!(st.read_only_reason().unwrap().contains("still fails"));

    // Fixed: the retry finishes the undo first, and the store is as before the append.
    fault.set(None);
    fault.set_undo(None);
    assert!(st.retry_writable(), "{:?}", st.read_only_reason());
    assert_eq!(view(&st), seen);
    assert_eq!(wals(dir.path()), before);
    st.append("d", &bars("X", [11]), &RowPolicy::default())
        .unwrap();
    let want = reference(&[bars("X", [11])]);
    assert_eq!(view(&st), want);
    drop(st);
    assert_eq!(view(&BarStore::open(dir.path()).unwrap()), want);
}
