//! The operational snapshot (`Service::ops`, the web page's operations view): topics
//! with their readers one by one, lag, leases and writer liveness; ingest, cache and
//! write-down figures; the per-dataset filter; and the host's other rings.

mod common;

use common::*;
use ringfeed_arrow::{Reader, RingOptions, StartAt, Writer};
use ringfeed_client::InvalidRows;

#[test]
fn a_reader_of_a_topic_shows_with_its_pid_and_lag_and_leaves_when_dropped() {
    let (s, _dir) = service();
    s.append("test", &[bars(&["A"], 0, 3)], InvalidRows::Refuse)
        .unwrap();
    let topic = s.subscribe("test", "1m").unwrap();
    let mut reader = Reader::open(&topic, StartAt::Next).unwrap();
    let ops = s.ops(|_| true);
    let t = ops
        .topics
        .iter()
        .find(|t| t.dataset == "test" && t.timeframe == "1m")
        .expect("the subscribed topic is listed");
    assert!(t.writer_alive, "{t:?}");
    assert_eq!(t.arena, topic);
    assert_eq!(t.backlog_rows, 0);
    let me = std::process::id();
    assert_eq!(t.readers.len(), 1, "{t:?}");
    assert_eq!((t.readers[0].pid, t.readers[0].lag), (me, 0));
    assert_eq!(ops.ingest.rows, 3);
    assert_eq!(ops.pid, me);
    // Write-down off: no next pass; the hot day is not due.
    assert_eq!(
        (ops.write_down.delay_seconds, ops.write_down.next_due_ms),
        (None, None)
    );
    let hot = &ops.write_down.hot[0];
    assert_eq!((hot.dataset.as_str(), hot.days, hot.due), ("test", 1, 0));
    assert_eq!(hot.oldest.as_deref(), Some("2021-01-01"));

    // Two appends the reader does not read: it is two batches behind; one read and held
    // batch is a lease.
    for m in 3..5 {
        s.append("test", &[bars(&["A"], m, 1)], InvalidRows::Refuse)
            .unwrap();
    }
    let reader_of = |ops: &ringfeed_daemon::service::OpsSnapshot| {
        ops.topics
            .iter()
            .find(|t| t.arena == topic)
            .map(|t| t.readers.clone())
            .unwrap_or_default()
    };
    assert_eq!(reader_of(&s.ops(|_| true))[0].lag, 2);
    let held = reader.read(std::time::Duration::from_secs(5)).unwrap();
    assert!(held.is_some());
    let r = reader_of(&s.ops(|_| true));
    assert_eq!((r[0].lag, r[0].leases), (1, 1), "{r:?}");
    assert!(r[0].lease_age_ns.is_some(), "{r:?}");
    assert!(s.ops(|_| true).ingest.published_batches >= 2);

    // A caller who may not see the dataset sees neither its topics nor its hot days.
    let hidden = s.ops(|d| d != "test");
    assert!(hidden.topics.is_empty() && hidden.write_down.hot.is_empty());

    drop(held);
    drop(reader);
    assert!(reader_of(&s.ops(|_| true)).is_empty());
    still_works(&s, "A", &[0, 1, 2, 3, 4], 5);
}

#[test]
fn the_hosts_other_rings_are_listed_with_their_writer_and_readers() {
    let (s, _dir) = service();
    let name = format!("ops-host-{}", std::process::id());
    let schema = bars(&["A"], 0, 1).schema();
    let w = Writer::create(&name, &schema, RingOptions::default()).unwrap();
    let _r = Reader::open(&name, StartAt::Next).unwrap();
    let ring = s
        .host_rings()
        .into_iter()
        .find(|r| r.name == name)
        .expect("listed");
    assert!(ring.writer_alive, "{ring:?}");
    assert_eq!((ring.state.as_str(), ring.readers), ("ready", 1));
    assert_eq!(ring.writer_pid, std::process::id());
    // The daemon's own arenas (its topics and results) are not "other" rings.
    s.subscribe("test", "1m").unwrap();
    let prefix = &s.config().arena_prefix;
    assert!(s
        .host_rings()
        .iter()
        .all(|r| !r.name.starts_with(prefix.as_str())));
    w.close();
    assert!(s.host_rings().iter().all(|r| r.name != name));
}
