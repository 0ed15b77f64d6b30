//! Calendar rollups kept on write (`1M`, `3M`, `1Y`): after every upsert, delete, trim,
//! write-down, compaction and reopen, the stored bars equal the same spans resampled on
//! read from a twin dataset that stores no calendar rollup (the read path is checked
//! against independent group-bys in `calendar.rs` and `spellings.rs`), `complete` flags
//! included. Crash tests kill a child writer between the fixed and the calendar frames.

mod common;

use common::{bars, ohlcv_batch, Bar};
use ringfeed_store::merge::DeleteRange;
use ringfeed_store::store::CreateDatasetError;
use ringfeed_store::timeframe::NANOS_PER_DAY;
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query, Timeframe};
use std::path::Path;
use std::process::{Command, Stdio};

const HOUR: i64 = 3_600_000_000_000;

fn tf(s: &str) -> Timeframe {
    s.parse().unwrap()
}

fn config(base: &str, rollups: &[&str], session: Option<&str>) -> DatasetConfig {
    let mut cfg = DatasetConfig::new(tf(base));
    cfg.rollups = rollups.iter().map(|r| tf(r)).collect();
    cfg.session = session.map(|s| s.parse().unwrap());
    cfg.fsync = FsyncPolicy::Never;
    cfg
}

/// Days since the epoch of a date.
fn day(y: i32, m: u32, d: u32) -> i64 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() - epoch).num_days()
}

/// Hourly bars of `syms` on days `days`, prices from a hash of (symbol, hour, salt).
fn hours(syms: &[&str], days: std::ops::Range<i64>, salt: u64) -> arrow_array::RecordBatch {
    let mut rows = Vec::new();
    for s in syms {
        for h in days.start * 24..days.end * 24 {
            let mut x = (h as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(salt ^ s.len() as u64 ^ (s.as_bytes()[0] as u64) << 32);
            x ^= x >> 29;
            let p = 100.0 + (x % 1000) as f64 / 10.0;
            let v = ((x >> 12) % 50) as f64 + 1.0;
            rows.push((*s, h * HOUR, [p, p + 1.0, p - 1.0, p + 0.5, v]));
        }
    }
    ohlcv_batch(rows)
}

/// The "cal" store: `cal` keeps calendar rollups, `ref` the same rows without them.
fn twins(root: &Path, base: &str, session: Option<&str>) -> BarStore {
    let mut st = BarStore::open(root).unwrap();
    let fixed: &[&str] = if base == "1h" { &["1d"] } else { &["1h", "1d"] };
    let mut with = fixed.to_vec();
    with.extend(["1M", "3M", "1Y"]);
    st.create_dataset("ref", config(base, fixed, session))
        .unwrap();
    st.create_dataset("cal", config(base, &with, session))
        .unwrap();
    st
}

fn both(st: &mut BarStore, f: impl Fn(&mut BarStore, &str)) {
    for ds in ["ref", "cal"] {
        f(st, ds);
    }
}

fn query(st: &BarStore, ds: &str, t: &str) -> Vec<Bar> {
    bars(&st.query(&Query::new(ds, tf(t))).unwrap())
}

/// Stored calendar bars == the same spans resampled on read, and a span that is not
/// stored (`2M`, `6M`) resampled from the stored months == from the days.
fn assert_agree(st: &BarStore, what: &str) {
    for t in ["1M", "3M", "1Y", "2M", "6M"] {
        let (got, want) = (query(st, "cal", t), query(st, "ref", t));
        assert!(!want.is_empty(), "{what} {t}: no bars to compare");
        assert_eq!(got.len(), want.len(), "{what} {t}: bar count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (&g.0, g.1, g.3),
                (&w.0, w.1, w.3),
                "{what} {t}: {g:?} vs {w:?}"
            );
            assert_eq!(g.2[..4], w.2[..4], "{what} {t}: {g:?} vs {w:?}");
            assert!(
                (g.2[4] - w.2[4]).abs() <= 1e-9 * w.2[4].max(1.0),
                "{what} {t}"
            );
        }
    }
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn stored_months_follow_every_write_delete_write_down_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = twins(dir.path(), "1h", None);
    let (a, b) = (["AAA"], ["BBB"]);
    // Out of order, in chunks that cross month ends, with gaps: AAA has no rows in May
    // and June 2024 until the end, BBB none before December 2023.
    let chunks: Vec<(&[&str], i64, i64)> = vec![
        (&a, day(2024, 2, 20), day(2024, 3, 12)),
        (&a, day(2023, 11, 1), day(2024, 2, 20)),
        (&b, day(2024, 1, 25), day(2024, 4, 2)),
        (&a, day(2024, 3, 12), day(2024, 5, 1)),
        (&b, day(2023, 12, 1), day(2024, 1, 25)),
        (&a, day(2024, 7, 1), day(2025, 1, 15)),
        (&b, day(2024, 4, 2), day(2025, 2, 3)),
    ];
    for (k, (syms, from, to)) in chunks.iter().enumerate() {
        let batch = hours(syms, *from..*to, k as u64);
        both(&mut st, |st, ds| {
            st.upsert(ds, &batch).unwrap();
        });
        assert_agree(&st, &format!("after chunk {k}"));
    }
    // The months are stored: hot frames of `1M` on the first day of each month.
    let stored = st.hot_days("cal", tf("1M"));
    assert!(stored.contains(&day(2024, 3, 1)), "{stored:?}");
    assert!(stored.iter().all(|d| {
        let date = chrono::DateTime::from_timestamp(d * 86_400, 0).unwrap();
        chrono::Datelike::day(&date) == 1
    }));
    // AAA's gap closes: its April bar stays open until July's rows arrive, then closes.
    let april = query(&st, "cal", "1M");
    assert!(april
        .iter()
        .any(|x| x.0 == "AAA" && x.1 == day(2024, 4, 1) * NANOS_PER_DAY && x.3));
    // A correction inside a month, and rows that fill AAA's gap.
    let fix = hours(&a, day(2024, 3, 5)..day(2024, 3, 6), 99);
    let gap = hours(&a, day(2024, 5, 1)..day(2024, 7, 1), 7);
    both(&mut st, |st, ds| {
        st.upsert(ds, &fix).unwrap();
        st.upsert(ds, &gap).unwrap();
    });
    assert_agree(&st, "after a correction and the gap");
    // Deletes: every row of AAA in August (its month bar goes), BBB's last 10 days
    // (its last month reopens), and a range across a year end.
    let deletes = [
        (Some("AAA"), day(2024, 8, 1), day(2024, 9, 1)),
        (Some("BBB"), day(2025, 1, 24), day(2025, 2, 3)),
        (None, day(2023, 12, 20), day(2024, 1, 10)),
    ];
    for (sym, from, to) in deletes {
        let range = DeleteRange {
            symbol: sym.map(str::to_string),
            start: from * NANOS_PER_DAY,
            end: to * NANOS_PER_DAY,
        };
        both(&mut st, |st, ds| {
            st.delete(ds, range.clone()).unwrap();
        });
        assert_agree(&st, &format!("after deleting {sym:?} {from}..{to}"));
    }
    let months = query(&st, "cal", "1M");
    assert!(!months
        .iter()
        .any(|x| x.0 == "AAA" && x.1 == day(2024, 8, 1) * NANOS_PER_DAY));
    assert!(months.iter().any(|x| x.0 == "BBB"));
    assert!(
        !months.iter().rfind(|x| x.0 == "BBB").unwrap().3,
        "BBB's last month is open again"
    );
    // Write-down with compaction of finished months, then writes into cold months.
    st.write_down(None, day(2024, 10, 1)).unwrap();
    assert_agree(&st, "after write-down");
    let files = files_under(dir.path());
    assert!(
        files
            .iter()
            .any(|f| f.contains("dataset=cal/tf=1mo/month=2024-03/")),
        "months in case-safe directories: {files:?}"
    );
    assert!(files.iter().any(|f| f.contains("dataset=cal/tf=3mo/")));
    assert!(files.iter().any(|f| f.contains("dataset=cal/tf=1y/")));
    assert!(!files
        .iter()
        .any(|f| f.contains("tf=1M") || f.contains("tf=1Y")));
    let late = hours(&b, day(2024, 2, 10)..day(2024, 2, 12), 1234);
    both(&mut st, |st, ds| {
        st.upsert(ds, &late).unwrap();
    });
    assert_agree(&st, "after a late correction in a compacted month");
    st.write_down(None, i64::MAX).unwrap();
    assert_agree(&st, "after writing everything down");
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_agree(&st, "after a reopen");
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_agree(&ro, "read-only");
}

#[test]
fn session_months_are_stored_across_dst() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = twins(dir.path(), "30m", Some("09:30-16:00 America/New_York"));
    let half = 30 * 60 * 1_000_000_000i64;
    let mut rows = Vec::new();
    // Half-hour bars around the clock, 2024-02-20 .. 2024-11-10 UTC, in two writes.
    for t in
        (day(2024, 2, 20) * NANOS_PER_DAY..day(2024, 11, 10) * NANOS_PER_DAY).step_by(half as usize)
    {
        let p = 100.0 + ((t / half) % 97) as f64 / 8.0;
        rows.push((
            "SPY",
            t,
            [
                p,
                p + 1.0,
                p - 1.0,
                p + 0.25,
                1.0 + ((t / half) % 11) as f64,
            ],
        ));
    }
    let split = rows.len() / 2;
    let (first, second) = (
        ohlcv_batch(rows[split..].to_vec()),
        ohlcv_batch(rows[..split].to_vec()),
    );
    both(&mut st, |st, ds| {
        st.upsert(ds, &first).unwrap();
    });
    assert_agree(&st, "session, second half first");
    both(&mut st, |st, ds| {
        st.upsert(ds, &second).unwrap();
    });
    assert_agree(&st, "session, all");
    // Labels are session opens: 14:30Z in winter, 13:30Z in summer.
    let months = query(&st, "cal", "1M");
    let first_open = months.first().unwrap().1;
    assert_eq!(first_open.rem_euclid(NANOS_PER_DAY), 14 * HOUR + HOUR / 2);
    let july = months
        .iter()
        .find(|m| m.1.div_euclid(NANOS_PER_DAY) == day(2024, 7, 1))
        .unwrap();
    assert_eq!(july.1.rem_euclid(NANOS_PER_DAY), 13 * HOUR + HOUR / 2);
    let range = DeleteRange {
        symbol: None,
        start: day(2024, 10, 15) * NANOS_PER_DAY,
        end: day(2024, 11, 10) * NANOS_PER_DAY,
    };
    both(&mut st, |st, ds| {
        st.delete(ds, range.clone()).unwrap();
    });
    assert_agree(&st, "session, after a delete");
}

#[test]
fn a_trim_rebuilds_the_month_across_the_cut() {
    for cut in [
        day(2024, 3, 10) * NANOS_PER_DAY,            // at midnight
        day(2024, 3, 10) * NANOS_PER_DAY + 5 * HOUR, // inside a day
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut st = twins(dir.path(), "1h", None);
        let batch = hours(&["AAA", "BBB"], day(2024, 1, 1)..day(2024, 5, 1), 3);
        both(&mut st, |st, ds| {
            st.upsert(ds, &batch).unwrap();
        });
        st.write_down(None, day(2024, 2, 15)).unwrap();
        both(&mut st, |st, ds| {
            st.trim(ds, Some("AAA"), cut).unwrap();
        });
        assert_agree(&st, "after trimming AAA");
        both(&mut st, |st, ds| {
            st.trim(ds, None, cut).unwrap();
        });
        assert_agree(&st, "after trimming all");
        // March keeps its label, built from the rows from the cut on.
        let march = query(&st, "cal", "1M");
        assert_eq!(march[0].1, day(2024, 3, 1) * NANOS_PER_DAY);
    }
}

#[test]
fn calendar_rollups_need_a_source_that_nests() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    // 7m bars do not divide a day: no month is made of them.
    let e = st
        .create_dataset("odd", config("7m", &["1M"], None))
        .unwrap_err();
    assert!(matches!(e, CreateDatasetError::Rollup { .. }), "{e:?}");
    assert!(e.to_string().contains("calendar rollup"), "{e}");
    // A calendar base is still refused; a 1M rollup over 1d (or 1m) is accepted.
    assert!(st
        .create_dataset("cal", config("1Y", &[], None))
        .unwrap_err()
        .to_string()
        .contains("base 1Y"));
    st.create_dataset("d", config("1d", &["1M", "1Y"], None))
        .unwrap();
    st.create_dataset("m", config("1m", &["1M"], None)).unwrap();
    assert_eq!(
        st.stored_timeframes("d"),
        vec![tf("1d"), tf("1M"), tf("1Y")]
    );
    // `12M` is `1Y`: kept once.
    st.create_dataset("y", config("1d", &["1Y", "12M"], None))
        .unwrap();
    assert_eq!(st.stored_timeframes("y"), vec![tf("1d"), tf("1Y")]);
}

// ---- crash tests: a child writer killed between the fixed and the calendar frames ----

/// Child role: write 2024-01-01 .. 2024-03-01, then (with the failpoint armed) March.
#[test]
fn calendar_crash_child() {
    let Ok(dir) = std::env::var("RINGFEED_CALENDAR_CHILD") else {
        return; // Not the child: nothing to do.
    };
    if std::env::var("RINGFEED_STORE_FAILPOINT").is_err() {
        let mut st = twins(Path::new(&dir), "1h", None);
        let batch = hours(&["AAA"], day(2024, 1, 1)..day(2024, 3, 1), 5);
        both(&mut st, |st, ds| {
            st.upsert(ds, &batch).unwrap();
        });
        return;
    }
    let mut st = BarStore::open(Path::new(&dir)).unwrap();
    st.upsert("cal", &crashed_batch()).unwrap(); // aborts at the failpoint
}

/// The write the child is killed in (the test gives it to the twin after the crash).
fn crashed_batch() -> arrow_array::RecordBatch {
    hours(&["AAA"], day(2024, 2, 20)..day(2024, 3, 20), 6)
}

fn calendar_child(dir: &Path, failpoint: Option<&str>) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "calendar_crash_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("RINGFEED_CALENDAR_CHILD", dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(fp) = failpoint {
        c.env("RINGFEED_STORE_FAILPOINT", fp);
    }
    c.output().unwrap()
}

#[test]
fn a_crash_before_or_during_the_calendar_frames_is_repaired_on_open() {
    for fp in ["upsert:before_calendar", "upsert:before_marker"] {
        let dir = tempfile::tempdir().unwrap();
        assert!(calendar_child(dir.path(), None).status.success());
        let out = calendar_child(dir.path(), Some(fp));
        assert!(!out.status.success(), "{fp}: the failpoint fired");
        let mut st = BarStore::open(dir.path()).unwrap();
        st.upsert("ref", &crashed_batch()).unwrap();
        assert!(
            st.rollups_repaired.iter().any(|(d, _)| d == "cal"),
            "{fp}: {:?}",
            st.rollups_repaired
        );
        // Every acknowledged row and the crashed write's rows (durable before the
        // failpoint) are there, and the months agree with the twin.
        let base = st.query(&Query::new("cal", tf("1h"))).unwrap();
        assert_eq!(
            base.num_rows() as i64,
            (day(2024, 3, 20) - day(2024, 1, 1)) * 24
        );
        assert_agree(&st, fp);
    }
}
