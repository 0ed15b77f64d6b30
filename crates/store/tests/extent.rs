//! `extent` (the daemon's `ready`) as the writer answers it, from its kept spans of the
//! first and last hot day of each timeframe, against the computation without them (every
//! day read in full, by `extent_read_in_full`), after random sequences of every write:
//! upserts in order, of older bars and of new symbols, deletes, trims, retention,
//! write-downs, reopens; and against a read-only opener.

mod common;

use common::ohlcv_batch;
use proptest::prelude::*;
use ringfeed_store::extent::TimeframeExtent;
use ringfeed_store::{BarStore, DatasetConfig, DeleteRange, FsyncPolicy, Timeframe};

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 1440 * MIN;
const SYMS: [&str; 4] = ["A", "B", "C", "D"];

/// The extent without kept spans: what `extent` computed before they existed (each end
/// day read in full).
fn reference(st: &BarStore, dataset: &str) -> Vec<TimeframeExtent> {
    st.extent_read_in_full(dataset)
        .expect("extent read in full")
        .expect("dataset")
}

#[derive(Clone, Debug)]
enum Step {
    /// Bars of `syms` (indices into SYMS) at minutes `from..from+n` of day `day`.
    Upsert {
        day: i64,
        from: i64,
        n: i64,
        syms: Vec<usize>,
    },
    /// Delete [day*DAY + from, +len minutes) of one symbol or all.
    Delete {
        day: i64,
        from: i64,
        len: i64,
        sym: Option<usize>,
    },
    Trim {
        day: i64,
        minute: i64,
        sym: Option<usize>,
    },
    Retention {
        keep_days: u32,
        now_day: i64,
    },
    WriteDown {
        before_day: i64,
    },
    Reopen,
    /// Ask for the extent (fills the kept spans) without a write.
    Extent,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..8i64, 0..1400i64, 1..40i64, proptest::collection::vec(0..4usize, 1..4))
            .prop_map(|(day, from, n, syms)| Step::Upsert { day, from, n, syms }),
        2 => (0..8i64, 0..1440i64, 1..3000i64, proptest::option::of(0..4usize))
            .prop_map(|(day, from, len, sym)| Step::Delete { day, from, len, sym }),
        1 => (0..8i64, 0..1440i64, proptest::option::of(0..4usize))
            .prop_map(|(day, minute, sym)| Step::Trim { day, minute, sym }),
        1 => (1..4u32, 0..10i64).prop_map(|(keep_days, now_day)| Step::Retention { keep_days, now_day }),
        1 => (0..9i64).prop_map(|before_day| Step::WriteDown { before_day }),
        1 => Just(Step::Reopen),
        3 => Just(Step::Extent),
    ]
}

fn run(st: &mut BarStore, dir: &std::path::Path, s: &Step) -> Option<BarStore> {
    // A trim names a stored symbol (an unknown one is refused): else every symbol.
    let known = |i: &Option<usize>| {
        i.map(|i| SYMS[i])
            .filter(|s| st.dataset("d").is_some_and(|e| e.symbols.contains(*s)))
    };
    match s {
        Step::Upsert { day, from, n, syms } => {
            let rows = (0..*n).flat_map(|m| {
                syms.iter().map(move |i| {
                    let t = day * DAY + ((from + m) % 1440) * MIN;
                    (SYMS[*i], t, [1.0, 2.0, 0.5, 1.5, 1.0])
                })
            });
            st.upsert("d", &ohlcv_batch(rows)).expect("upsert");
        }
        Step::Delete {
            day,
            from,
            len,
            sym,
        } => {
            let start = day * DAY + from * MIN;
            st.delete(
                "d",
                DeleteRange {
                    symbol: sym.map(|i| SYMS[i].to_string()),
                    start,
                    end: start + len * MIN,
                },
            )
            .expect("delete");
        }
        Step::Trim { day, minute, sym } => {
            let sym = known(sym);
            st.trim("d", sym, day * DAY + minute * MIN).expect("trim");
        }
        Step::Retention { keep_days, now_day } => {
            st.set_retention(
                "d",
                Some(ringfeed_store::retention::RetentionSpec::days_of(
                    *keep_days,
                )),
                None,
            )
            .expect("set retention");
            st.apply_retention(Some("d"), now_day * DAY)
                .expect("retention");
        }
        Step::WriteDown { before_day } => {
            st.write_down(Some("d"), *before_day).expect("write-down");
        }
        Step::Reopen => {
            // The old writer goes first (it holds the lock).
            let _ = std::mem::replace(st, BarStore::open_read_only(dir).expect("ro").into_inner());
            return Some(BarStore::open(dir).expect("reopen"));
        }
        Step::Extent => {
            st.extent("d").expect("extent");
        }
    }
    None
}

fn store(dir: &std::path::Path) -> BarStore {
    let mut st = BarStore::open(dir).expect("open");
    let mut cfg = DatasetConfig::new("1m".parse::<Timeframe>().unwrap());
    cfg.rollups = vec!["5m".parse().unwrap(), "1h".parse().unwrap()];
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("d", cfg).expect("create");
    st
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn kept_spans_match_full_reads(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut st = store(dir.path());
        for s in &steps {
            if let Some(next) = run(&mut st, dir.path(), s) {
                st = next;
            }
            let got = st.extent("d").expect("extent").expect("dataset");
            prop_assert_eq!(&got, &reference(&st, "d"), "after {:?}", s);
            // Asked twice: the kept answer.
            prop_assert_eq!(&st.extent("d").expect("extent").expect("dataset"), &got);
        }
        // A read-only opener reads everything in full: the same first and last bars.
        let ro = BarStore::open_read_only(dir.path()).expect("read-only");
        let ends = |e: Vec<TimeframeExtent>| -> Vec<(String, Option<i64>, Option<i64>)> {
            e.into_iter().map(|t| (t.timeframe, t.first_ts, t.last_ts)).collect()
        };
        prop_assert_eq!(
            ends(ro.extent("d").expect("extent").expect("dataset")),
            ends(st.extent("d").expect("extent").expect("dataset"))
        );
    }
}

/// The live-feed case the kept spans are for: appends to the newest day widen its span
/// frame by frame, a delete at its end shrinks it (a full read), an older bar on the first
/// day lowers the first, and dropping and re-creating the dataset forgets everything.
#[test]
fn live_day_widens_and_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = store(dir.path());
    let bar = |s: &str, t: i64| ohlcv_batch([(s, t, [1.0, 2.0, 0.5, 1.5, 1.0])]);
    st.upsert("d", &bar("A", DAY)).unwrap();
    st.upsert("d", &bar("A", 3 * DAY)).unwrap();
    let first = |st: &BarStore| {
        let e = st.extent("d").unwrap().unwrap();
        (e[0].first_ts, e[0].last_ts, e[2].first_ts, e[2].last_ts)
    };
    assert_eq!(
        first(&st),
        (Some(DAY), Some(3 * DAY), Some(DAY), Some(3 * DAY))
    );
    for m in 1..=30 {
        st.upsert("d", &bar("B", 3 * DAY + m * MIN)).unwrap();
        assert_eq!(first(&st).1, Some(3 * DAY + m * MIN));
        assert_eq!(st.extent("d").unwrap().unwrap(), reference(&st, "d"));
    }
    // 1h bars of the live day: one at 3*DAY.
    assert_eq!(first(&st).3, Some(3 * DAY));
    st.delete(
        "d",
        DeleteRange {
            symbol: None,
            start: 3 * DAY + 20 * MIN,
            end: 4 * DAY,
        },
    )
    .unwrap();
    assert_eq!(first(&st).1, Some(3 * DAY + 19 * MIN));
    st.upsert("d", &bar("C", DAY - 5 * MIN)).unwrap();
    assert_eq!(first(&st).0, Some(DAY - 5 * MIN));
    assert_eq!(st.extent("d").unwrap().unwrap(), reference(&st, "d"));
    st.drop_dataset("d").unwrap();
    assert_eq!(st.extent("d").unwrap(), None);
    let mut cfg = DatasetConfig::new("1m".parse::<Timeframe>().unwrap());
    cfg.rollups = vec!["5m".parse().unwrap(), "1h".parse().unwrap()];
    st.create_dataset("d", cfg).unwrap();
    st.upsert("d", &bar("Z", 3 * DAY + 2 * MIN)).unwrap();
    assert_eq!(first(&st).0, Some(3 * DAY + 2 * MIN));
    assert_eq!(first(&st).1, Some(3 * DAY + 2 * MIN));
    // Still answers a real query after all that.
    assert_eq!(st.extent("d").unwrap().unwrap(), reference(&st, "d"));
}
