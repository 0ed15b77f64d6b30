//! Retention, trim and drop-dataset through a real daemon: the socket protocol and the
//! Rust client, cached results dropped, topics of a dropped dataset closed and created
//! anew, retention applied at the daemon's write-down.

use ringfeed_arrow::StartAt;
use ringfeed_client::protocol::{DatasetSpec, TimeSpec};
use std::time::Duration;

mod common;
use common::*;

const T0: i64 = 1_609_459_200_000_000_000; // 2021-01-01
const MIN: i64 = 60_000_000_000;

#[test]
fn trim_drops_cached_results_and_keeps_rollups_consistent() {
    let d = Daemon::start();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 0, 180)).unwrap();
    // Cache a result, then trim under it: the next answer is fresh, not the cached one.
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 360);
    assert!(c.bars(&q("1m")).unwrap().cached);
    let text = c
        .trim("test", Some("A"), TimeSpec::Nanos(T0 + 30 * MIN))
        .unwrap();
    assert!(text.contains("trimmed A of test"), "{text}");
    let after = c.bars(&q("1m")).unwrap();
    assert!(!after.cached, "the trim dropped the cached result");
    assert_eq!(after.rows, 330);
    // The 00:00 hour of A is rebuilt from minutes 30..59.
    let mut h = q("1h");
    h.symbols = vec!["A".into()];
    let hours = c.bars(&h).unwrap();
    assert_eq!(closes(&hours), vec![59.5, 119.5, 179.5]);
    let err = c.trim("nope", None, TimeSpec::Nanos(T0)).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_dataset", "{err}");
    let err = c.trim("test", Some("ZZ"), TimeSpec::Nanos(T0)).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_symbol", "{err}");
    // Every symbol: what is left still answers.
    c.trim("test", None, TimeSpec::Text("2021-01-01T02:00".into()))
        .unwrap();
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 120);
}

#[test]
fn drop_dataset_closes_its_topics_and_frees_the_name() {
    let d = Daemon::start();
    let mut c = d.client();
    let spec = DatasetSpec {
        dataset: "scratch".into(),
        base: "1m".into(),
        rollups: Some(vec!["5m".into()]),
        ..Default::default()
    };
    c.create_dataset(&spec).unwrap();
    let mut sub = c.subscribe("scratch", "1m", StartAt::Next).unwrap();
    c.append("scratch", &bars(&["A"], 0, 10)).unwrap();
    assert_eq!(
        sub.read(Duration::from_secs(10))
            .unwrap()
            .unwrap()
            .num_rows(),
        10
    );
    let err = c.drop_dataset("scratch", false).unwrap_err();
    assert_eq!(server_kind(&err), "bad_request", "{err}");
    assert!(err.to_string().contains("holds 10 rows"), "{err}");
    let text = c.drop_dataset("scratch", true).unwrap();
    assert!(
        text.starts_with("dropped dataset scratch: 10 rows"),
        "{text}"
    );
    // The old topic is closed: its subscriber is told, not left waiting on a stale ring.
    let end = sub.read(Duration::from_secs(10));
    assert!(end.is_err(), "{end:?}");
    let mut qs = q("1m");
    qs.dataset = "scratch".into();
    let err = c.bars(&qs).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_dataset", "{err}");
    let err = c.drop_dataset("scratch", true).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_dataset", "{err}");
    assert!(err.to_string().contains("test"), "{err}");
    // Recreated with other settings: a new topic, none of the old rows.
    let other = DatasetSpec {
        rollups: Some(vec![]),
        ..spec
    };
    c.create_dataset(&other).unwrap();
    let mut sub = c.subscribe("scratch", "1m", StartAt::Next).unwrap();
    assert_eq!(c.bars(&qs).unwrap().rows, 0);
    c.append("scratch", &bars(&["B"], 100, 3)).unwrap();
    assert_eq!(
        sub.read(Duration::from_secs(10))
            .unwrap()
            .unwrap()
            .num_rows(),
        3
    );
    assert_eq!(c.bars(&qs).unwrap().rows, 3);
    // The other dataset is untouched and the daemon is healthy.
    c.append("test", &bars(&["A"], 0, 5)).unwrap();
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 5);
}

#[test]
fn retention_is_applied_at_once_and_at_the_daemons_write_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(dir, "");
    let mut c = d.client();
    // 2021 is years older than any retention below.
    c.append("test", &bars(&["A"], 0, 120)).unwrap();
    let err = c.set_retention("test", Some("90"), None).unwrap_err();
    assert_eq!(server_kind(&err), "bad_request", "{err}");
    let err = c.set_retention("test", None, Some("1y")).unwrap_err();
    assert_eq!(server_kind(&err), "bad_request", "{err}");
    assert_eq!(
        c.bars(&q("1m")).unwrap().rows,
        120,
        "refusals change nothing"
    );
    let text = c.set_retention("test", Some("30d"), Some("100y")).unwrap();
    assert!(text.contains("rows are kept 30d, rollups 100y"), "{text}");
    assert_eq!(
        c.bars(&q("1m")).unwrap().rows,
        0,
        "the base bars are expired"
    );
    assert_eq!(
        c.bars(&q("1h")).unwrap().rows,
        2,
        "the rollups are kept longer"
    );
    // Appended again, the old day is dropped by the next write-down (retention first).
    c.set_retention("test", Some("30d"), None).unwrap();
    c.append("test", &bars(&["A"], 0, 10)).unwrap();
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 10);
    let text = c.write_down(Some("test"), None, false).unwrap();
    assert!(
        text.contains("wrote down 0 partitions"),
        "expired, not written down: {text}"
    );
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 0);
    assert_eq!(c.bars(&q("1h")).unwrap().rows, 0);
}
