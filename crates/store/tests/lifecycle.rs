//! A dataset's lifecycle: retention, trim and drop-dataset, including crashes at every
//! step (killed child processes: the test binary re-runs itself as the child).

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::RecordBatch;
use ringfeed_store::retention::RetentionSpec;
use ringfeed_store::schema::BarColumns;
use ringfeed_store::store::{DropDatasetError, TrimError};
use ringfeed_store::{BarStore, DatasetConfig, Query, StoreOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

const MIN: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2024-01-01.
const D0: i64 = 19_723;
/// Bars per symbol and day: one every 30 minutes.
const PER_DAY: i64 = 48;

/// A row as compared here: (symbol, ts) -> (open, high, low, close, volume).
type Rows = BTreeMap<(String, i64), [u64; 5]>;

fn bars(symbols: &[&str], first_day: i64, days: i64) -> RecordBatch {
    let mut c = BarColumns::default();
    for s in symbols {
        for d in first_day..first_day + days {
            for k in 0..PER_DAY {
                let ts = d * DAY + k * 30 * MIN;
                let p = 100.0 + ((ts / MIN) % 17) as f64 + s.len() as f64;
                c.ts.push(ts);
                c.symbol.push(s.to_string());
                c.open.push(p);
                c.high.push(p + 1.0);
                c.low.push(p - 1.0);
                c.close.push(p + 0.5);
                c.volume.push(1.0 + ((ts / MIN) % 5) as f64);
            }
        }
    }
    c.into_batch().unwrap()
}

fn config(retention: Option<&str>, rollups: Option<&str>) -> DatasetConfig {
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["1h".parse().unwrap(), "1d".parse().unwrap()];
    cfg.retention = retention.map(|r| r.parse().unwrap());
    cfg.rollup_retention = rollups.map(|r| r.parse().unwrap());
    cfg
}

fn rows_of(b: &RecordBatch) -> Rows {
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let sym = b.column_by_name("symbol").unwrap().as_string_view();
    let f = |n: &str| {
        b.column_by_name(n)
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone()
    };
    let cols = ["open", "high", "low", "close", "volume"].map(f);
    (0..b.num_rows())
        .map(|i| {
            (
                (sym.value(i).to_string(), ts.value(i)),
                cols.clone().map(|c| c.value(i).to_bits()),
            )
        })
        .collect()
}

fn query(st: &BarStore, tf: &str) -> Rows {
    rows_of(&st.query(&Query::new("d", tf.parse().unwrap())).unwrap())
}

/// Every stored timeframe's rows.
fn state(st: &BarStore) -> Vec<Rows> {
    ["1m", "1h", "1d"].iter().map(|tf| query(st, tf)).collect()
}

/// The `bucket` bars of base rows by a naive group-by (open first, high max, low min,
/// close last, volume sum), to compare with the stored rollups.
fn group_by(base: &Rows, bucket: i64) -> Rows {
    let mut out: Rows = BTreeMap::new();
    for ((s, ts), v) in base {
        let key = (s.clone(), ts - ts.rem_euclid(bucket));
        let f = v.map(f64::from_bits);
        out.entry(key)
            .and_modify(|o| {
                let g = o.map(f64::from_bits);
                *o = [g[0], g[1].max(f[1]), g[2].min(f[2]), f[3], g[4] + f[4]].map(f64::to_bits);
            })
            .or_insert(*v);
    }
    out
}

/// Equal maps, or a short account of the first difference.
#[track_caller]
fn assert_same(got: &Rows, want: &Rows, what: &str) {
    if got == want {
        return;
    }
    let only_got = got.keys().find(|k| !want.contains_key(*k));
    let only_want = want.keys().find(|k| !got.contains_key(*k));
    let differ = got
        .iter()
        .find(|(k, v)| want.get(*k).is_some_and(|w| w != *v));
    panic!(
        "{what}: {} rows vs {} wanted; first extra {only_got:?}, first missing {only_want:?}, first different {:?}",
        got.len(),
        want.len(),
        differ.map(|(k, _)| k)
    );
}

/// The stored rollups equal a group-by of the stored base rows (from the first day with
/// base rows on: rollups kept longer than the base bars have no base rows to compare).
#[track_caller]
fn assert_rollups_consistent(st: &BarStore) {
    let base = query(st, "1m");
    let from = first_day(&base).unwrap_or(i64::MAX) * DAY;
    for (tf, len) in [("1h", HOUR), ("1d", DAY)] {
        let stored: Rows = query(st, tf)
            .into_iter()
            .filter(|((_, ts), _)| *ts >= from)
            .collect();
        assert_same(&stored, &group_by(&base, len), tf);
    }
}

fn first_day(r: &Rows) -> Option<i64> {
    r.keys().map(|(_, ts)| ts.div_euclid(DAY)).min()
}

fn assert_fsck_clean(root: &Path) {
    let rep = ringfeed_store::fsck::check(root, &StoreOptions::default()).unwrap();
    assert_eq!(rep.problems(), 0, "fsck: {rep:?}");
}

#[test]
fn old_catalogs_load_and_retention_is_left_out_when_none() {
    let old = r#"{"base":"1m","rollups":["1h"],"session":null,"fsync":"always"}"#;
    let cfg: DatasetConfig = serde_json::from_str(old).unwrap();
    assert_eq!((cfg.retention, cfg.rollup_retention), (None, None));
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(!json.contains("retention"), "{json}");
    let with = config(Some("400d"), Some("10y"));
    let json = serde_json::to_string(&with).unwrap();
    assert!(json.contains(r#""retention":"400d""#), "{json}");
    assert!(json.contains(r#""rollup_retention":"10y""#), "{json}");
    assert_eq!(serde_json::from_str::<DatasetConfig>(&json).unwrap(), with);
    assert!(serde_json::from_str::<DatasetConfig>(&json.replace("400d", "400")).is_err());
}

#[test]
fn bad_retention_settings_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    let e = st
        .create_dataset("d", config(None, Some("1y")))
        .unwrap_err();
    assert!(e.to_string().contains("give a retention too"), "{e}");
    let e = st
        .create_dataset("d", config(Some("2y"), Some("30d")))
        .unwrap_err();
    assert!(e.to_string().contains("shorter than the retention"), "{e}");
    st.create_dataset("d", config(None, None)).unwrap();
    let e = st
        .set_retention("x", Some(RetentionSpec::days_of(3)), None)
        .unwrap_err();
    assert!(e.to_string().contains("datasets: d"), "{e}");
    st.set_retention("d", Some("26w".parse().unwrap()), None)
        .unwrap();
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(
        st.dataset("d").unwrap().config.retention.unwrap().days(),
        182
    );
}

#[test]
fn retention_drops_exactly_the_old_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    st.create_dataset("d", config(Some("30d"), None)).unwrap();
    // 2024-01-01 .. 2024-04-29 (120 days), both symbols.
    let all = bars(&["A", "BB"], D0, 120);
    st.upsert("d", &all).unwrap();
    let before = query(&st, "1m");
    let end = D0 + 120;
    // Write-down at the end: retention counts back 30 days from its midnight.
    let s = st.write_down(None, end).unwrap();
    let cut = end - 30;
    assert!(s.expired.wal_files > 0, "{s:?}");
    assert_eq!(s.expired.parts, 0, "nothing was cold yet: {s:?}");
    // Hot days before the cutoff were dropped directly: the data starts at the cutoff.
    let after = query(&st, "1m");
    let kept: Rows = before
        .iter()
        .filter(|((_, ts), _)| *ts >= cut * DAY)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(after, kept);
    assert_rollups_consistent(&st);
    let wal_days = std::fs::read_dir(dir.path().join("_hot/d")).map_or(0, |r| r.count());
    assert_eq!(wal_days, 0, "every WAL went");
    // Later: the cutoff moves inside March (compacted whole): nothing is dropped.
    let march_end = D0 + 31 + 29 + 30; // 2024-03-31
    assert!(cut <= march_end);
    let r = st
        .apply_retention(Some("d"), (march_end + 30) * DAY)
        .unwrap();
    assert!(
        r.is_empty(),
        "a partition straddling the cutoff stays whole: {r:?}"
    );
    assert_eq!(query(&st, "1m"), kept);
    // Once March ends before the cutoff, its parts (every timeframe) go.
    let r = st
        .apply_retention(Some("d"), (march_end + 31) * DAY + 1)
        .unwrap();
    assert_eq!(r.parts, 3, "March of 1m, 1h and 1d: {r:?}");
    let left = query(&st, "1m");
    assert_eq!(first_day(&left), Some(march_end + 1));
    assert_eq!(
        left,
        kept.iter()
            .filter(|((_, ts), _)| *ts >= (march_end + 1) * DAY)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Rows>()
    );
    assert_rollups_consistent(&st);
    drop(st);
    assert_fsck_clean(dir.path());
    // Reopened, the store answers the same.
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(query(&st, "1m"), left);
}

#[test]
fn rollups_are_kept_longer_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    st.create_dataset("d", config(Some("20d"), Some("60d")))
        .unwrap();
    st.upsert("d", &bars(&["A"], D0, 100)).unwrap();
    let full_h = query(&st, "1h");
    let full_m = query(&st, "1m");
    let now = (D0 + 100) * DAY;
    // All hot: days before the rollup cutoff are dropped, days between the cutoffs are
    // written down (their rollups need Parquet) and their base parts dropped.
    let s = st.apply_retention(None, now).unwrap();
    let (base_cut, roll_cut) = (D0 + 80, D0 + 40);
    assert!(s.wal_files >= 40, "{s:?}");
    let h = query(&st, "1h");
    assert_eq!(first_day(&h), Some(roll_cut));
    assert_eq!(
        h,
        full_h
            .iter()
            .filter(|((_, ts), _)| *ts >= roll_cut * DAY)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Rows>()
    );
    let m = query(&st, "1m");
    let first = first_day(&m).unwrap();
    assert!(
        first <= base_cut && first > roll_cut,
        "base starts at a partition holding the cutoff: {first}"
    );
    // Whatever is kept of the base is whole.
    assert_eq!(
        m,
        full_m
            .iter()
            .filter(|((_, ts), _)| *ts >= first * DAY)
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Rows>()
    );
    // Days between the cutoffs are base-less partitions of a single month (May 2024
    // holds base_cut): the part of a month before it is only in the rollups.
    let month_parts = &st.catalog().datasets["d"].cold["1m"];
    assert!(month_parts.iter().all(|p| p.last() >= base_cut));
    drop(st);
    assert_fsck_clean(dir.path());
}

#[test]
fn an_append_before_the_floor_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    st.create_dataset("d", config(Some("10d"), None)).unwrap();
    st.upsert("d", &bars(&["A"], D0, 30)).unwrap();
    st.apply_retention(None, (D0 + 30) * DAY).unwrap();
    assert_eq!(st.dataset("d").unwrap().hot_floor, Some(D0 + 20));
    // A backfill of older days: acknowledged rows survive a restart.
    let old = bars(&["A"], D0, 2);
    st.upsert("d", &old).unwrap();
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    let got = query(&st, "1m");
    for k in rows_of(&old).keys() {
        assert!(got.contains_key(k), "lost {k:?}");
    }
    assert_eq!(got.len() as i64, 12 * PER_DAY);
    assert_rollups_consistent(&st);
}

/// A store of symbols A and BB over 90 days: the first 60 written down (two compacted
/// months and days of March), the rest hot.
fn trim_store(dir: &Path) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    st.create_dataset("d", config(None, None)).unwrap();
    st.upsert("d", &bars(&["A", "BB"], D0, 90)).unwrap();
    st.write_down(None, D0 + 65).unwrap();
    st
}

#[test]
fn trim_of_one_symbol_inside_a_compacted_month() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = trim_store(dir.path());
    let before = query(&st, "1m");
    // 2024-02-15 10:15: inside February's compacted part; 10:00-10:59 straddles it.
    let t = (D0 + 45) * DAY + 10 * HOUR + 15 * MIN;
    let s = st.trim("d", Some("A"), t).unwrap();
    assert!(s.parts_rewritten > 0 && s.partial_day, "{s:?}");
    let want: Rows = before
        .iter()
        .filter(|((sym, ts), _)| sym != "A" || *ts >= t)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(query(&st, "1m"), want);
    // The 10:00 bar of A is rebuilt from the 10:30 row alone; BB's are untouched.
    assert_rollups_consistent(&st);
    let h = query(&st, "1h");
    let bar = h[&("A".to_string(), (D0 + 45) * DAY + 10 * HOUR)];
    assert_eq!(
        bar,
        want[&("A".to_string(), (D0 + 45) * DAY + 10 * HOUR + 30 * MIN)]
    );
    drop(st);
    assert_fsck_clean(dir.path());
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(query(&st, "1m"), want);
}

#[test]
fn trim_of_every_symbol_in_the_hot_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = trim_store(dir.path());
    let before = query(&st, "1m");
    // 2024-03-16 13:00: a hot day; every earlier day is dropped.
    let t = (D0 + 75) * DAY + 13 * HOUR;
    let s = st.trim("d", None, t).unwrap();
    assert!(s.written_down > 0 && s.parts_dropped > 0, "{s:?}");
    let want: Rows = before
        .iter()
        .filter(|((_, ts), _)| *ts >= t)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(query(&st, "1m"), want);
    assert_rollups_consistent(&st);
    // Only March's part (rewritten) and the day of the cut remain before April.
    let cold = &st.catalog().datasets["d"].cold["1m"];
    assert!(cold.iter().all(|p| p.max_ts >= t), "{cold:?}");
    // Trimming again is a no-op.
    let again = st.trim("d", None, t).unwrap();
    assert_eq!((again.parts_dropped, again.parts_rewritten), (0, 0));
    assert_eq!(query(&st, "1m"), want);
    let e = st.trim("d", Some("ZZ"), t).unwrap_err();
    assert!(matches!(e, TrimError::UnknownSymbol { .. }), "{e}");
    assert!(e.to_string().contains("symbols: A, BB"), "{e}");
    drop(st);
    assert_fsck_clean(dir.path());
}

#[test]
fn drop_dataset_then_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = trim_store(dir.path());
    st.create_dataset("other", config(None, None)).unwrap();
    let fp = st.footprint("d").unwrap();
    assert_eq!(fp.rows, 2 * 90 * PER_DAY as u64);
    assert_eq!(fp.days, 90);
    assert!(fp.bytes > 0);
    let gone = st.drop_dataset("d").unwrap();
    assert_eq!(gone, fp);
    assert!(!dir.path().join("_hot/d").exists());
    assert!(!dir.path().join("dataset=d").exists());
    assert!(st.query(&Query::new("d", "1m".parse().unwrap())).is_err());
    let e = st.drop_dataset("d").unwrap_err();
    assert!(matches!(e, DropDatasetError::UnknownDataset { .. }));
    assert!(e.to_string().contains("datasets: other"), "{e}");
    // The name is free: other settings, and none of the old rows.
    let mut cfg = DatasetConfig::new("30m".parse().unwrap());
    cfg.rollups = vec!["1h".parse().unwrap(), "1d".parse().unwrap()];
    st.create_dataset("d", cfg).unwrap();
    assert!(query(&st, "1h").is_empty());
    st.upsert("d", &bars(&["C"], D0 + 100, 1)).unwrap();
    assert_eq!(query(&st, "30m").len(), PER_DAY as usize);
    assert_eq!(query(&st, "1h").len(), 24);
    assert!(query(&st, "30m").keys().all(|(s, _)| s == "C"));
    assert!(
        st.catalog().dropped.is_empty(),
        "recreating clears the name"
    );
    drop(st);
    assert_fsck_clean(dir.path());
    // Only dropped names are cleaned up at open: a stranger's WALs are left alone.
    let stranger = dir.path().join("_hot/stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("2024-01-01.wal"), b"").unwrap();
    drop(BarStore::open(dir.path()).unwrap());
    assert!(stranger.join("2024-01-01.wal").exists());
}

// ---- crashes -------------------------------------------------------------------------

/// Child role: open the store at `RINGFEED_LIFE_CHILD` and run `RINGFEED_LIFE_OP` (a
/// failpoint in `RINGFEED_STORE_FAILPOINT` aborts it halfway).
#[test]
fn lifecycle_child() {
    let Ok(dir) = std::env::var("RINGFEED_LIFE_CHILD") else {
        return; // Not the child: nothing to do.
    };
    let mut st = BarStore::open(Path::new(&dir)).unwrap();
    run_op(&mut st, &std::env::var("RINGFEED_LIFE_OP").unwrap());
    println!("done");
}

fn run_op(st: &mut BarStore, op: &str) {
    match op {
        "retention" => {
            st.apply_retention(None, (D0 + 90) * DAY).unwrap();
        }
        "trim-all" => {
            st.trim("d", None, (D0 + 70) * DAY).unwrap();
        }
        "trim-symbol" => {
            st.trim("d", Some("A"), (D0 + 45) * DAY).unwrap();
        }
        "drop" => {
            st.drop_dataset("d").unwrap();
        }
        _ => panic!("unknown op {op}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let q = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &q);
        } else {
            std::fs::copy(&p, &q).unwrap();
        }
    }
}

/// The store's rows, or `None` when the dataset is gone.
fn state_or_gone(root: &Path) -> Option<Vec<Rows>> {
    let st = BarStore::open(root).unwrap();
    st.dataset("d")?;
    Some(state(&st))
}

#[test]
fn a_crash_at_any_lifecycle_step_leaves_old_or_new_state() {
    let failpoints = [
        "writedown:before_commit",
        "writedown:after_commit",
        "lifecycle:before_commit",
        "catalog:before_current",
        "catalog:after_current",
        "lifecycle:after_commit",
        "lifecycle:mid_remove",
    ];
    let ops = ["retention", "trim-all", "trim-symbol", "drop"];
    for op in ops {
        let seed = tempfile::tempdir().unwrap();
        {
            let mut st = BarStore::open(seed.path()).unwrap();
            let cfg = if op == "retention" {
                config(Some("30d"), Some("50d"))
            } else {
                config(None, None)
            };
            st.create_dataset("d", cfg).unwrap();
            st.upsert("d", &bars(&["A", "BB"], D0, 90)).unwrap();
            // Cold up to 2024-02-20 (retention: nothing is old at that time), hot after.
            st.write_down(None, D0 + 50).unwrap();
        }
        let old = state_or_gone(seed.path());
        // The new state: the op run whole on a copy.
        let done = tempfile::tempdir().unwrap();
        copy_dir(seed.path(), done.path());
        run_op(&mut BarStore::open(done.path()).unwrap(), op);
        let new = state_or_gone(done.path());
        assert_ne!(old, new, "{op} changes something");
        let mut fired = 0;
        for fp in failpoints {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(seed.path(), dir.path());
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "lifecycle_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("RINGFEED_LIFE_CHILD", dir.path())
                .env("RINGFEED_LIFE_OP", op)
                .env("RINGFEED_STORE_FAILPOINT", fp)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .output()
                .unwrap();
            let crashed = !out.status.success();
            fired += crashed as usize;
            if !crashed {
                // The op does not pass this point (e.g. no write-down needed).
                assert!(String::from_utf8_lossy(&out.stdout).contains("done"));
            }
            let got = state_or_gone(dir.path());
            assert!(
                got == old || got == new,
                "{op} at {fp}: a mix of old and new state ({:?} rows; old {:?}, new {:?})",
                got.as_ref()
                    .map(|g| g.iter().map(|r| r.len()).collect::<Vec<_>>()),
                old.as_ref()
                    .map(|g| g.iter().map(|r| r.len()).collect::<Vec<_>>()),
                new.as_ref()
                    .map(|g| g.iter().map(|r| r.len()).collect::<Vec<_>>()),
            );
            if got.is_some() {
                let st = BarStore::open(dir.path()).unwrap();
                assert_rollups_consistent(&st);
            }
            assert_fsck_clean(dir.path());
            // Running it again finishes it.
            let mut st = BarStore::open(dir.path()).unwrap();
            if got == old {
                run_op(&mut st, op);
            }
            drop(st);
            assert_eq!(state_or_gone(dir.path()), new, "{op} at {fp}: rerun");
            assert_fsck_clean(dir.path());
        }
        assert!(fired >= 3, "{op}: only {fired} failpoints fired");
    }
}
