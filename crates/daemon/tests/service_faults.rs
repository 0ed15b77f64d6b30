//! Faults at the service core (issue 12, items 1, 2, 3, 7, 17, 19, 20): each
//! test drives a `Service` in-process, causes the fault, and ends by checking
//! that the service still works and that every acknowledged row is there.

mod common;

use common::*;
use ringfeed_arrow::{Reader, StartAt};
use ringfeed_client::protocol::{ErrorKind, QuerySpec, ReplaySpec, TimeSpec};
use ringfeed_client::InvalidRows;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[test]
fn a_tiny_append_declaring_2_pow_33_null_rows_is_refused_and_nothing_wedges() {
    let (s, _dir) = service();
    s.append("test", &[bars(&["A"], 0, 3)], InvalidRows::Refuse)
        .unwrap();
    let p = null_stream(1 << 33);
    assert!(p.len() < 400, "{} bytes", p.len());
    let e = s.append_ipc("test", &p, InvalidRows::Refuse).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
    assert!(e.message.contains("Null-typed"), "{e}");
    still_works(&s, "A", &[0, 1, 2], 3);
}

#[test]
fn random_mutations_of_a_valid_append_never_panic_and_the_service_keeps_working() {
    let (s, _dir) = service();
    let valid = ipc(&[bars(&["M"], 0, 20), bars(&["M"], 20, 5)]);
    let mut x = 0xDEAD_BEEF_CAFE_F00Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut refused, mut stored) = (0, 0);
    for i in 0..300 {
        let mut m = valid.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % m.len() as u64) as usize;
            m[at] = next() as u8;
        }
        match catch_unwind(AssertUnwindSafe(|| {
            s.append_ipc("test", &m, InvalidRows::Skip)
        })) {
            Ok(Ok(_)) => stored += 1,
            Ok(Err(e)) => {
                assert!(matches!(e.kind, ErrorKind::BadRequest), "mutation {i}: {e}");
                refused += 1;
            }
            Err(_) => panic!("mutation {i} panicked the service"),
        }
    }
    assert_eq!(refused + stored, 300);
    assert!(refused > 0);
    still_works(&s, "OK", &[], 0);
}

#[test]
fn a_panic_under_the_store_lock_reopens_the_store_and_keeps_every_row() {
    let (s, _dir) = service();
    s.append("test", &[bars(&["P"], 0, 10)], InvalidRows::Refuse)
        .unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| s.panic_while_holding_the_store()));
    assert!(r.is_err());
    // The next request recovers the store from disk instead of failing.
    let h = s.health();
    assert!(h.healthy, "{h:?}");
    assert_eq!(s.metrics().store_recoveries.load(Ordering::Relaxed), 1);
    still_works(&s, "P", &(0..10).collect::<Vec<_>>(), 10);
}

#[test]
fn health_reports_every_subsystem() {
    let (s, _dir) = service();
    let h = s.health();
    assert!(h.healthy, "{h:?}");
    let names: Vec<&str> = h.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "store",
            "ingest",
            "data_dir",
            "writable",
            "integrity",
            "cache",
            "topics"
        ]
    );
}

#[test]
fn a_multi_batch_append_is_stored_whole_or_not_at_all() {
    let (s, _dir) = service();
    let mut bad = bars(&["W"], 5, 2);
    // high < low in the second batch's rows.
    let cols: Vec<_> = bad
        .schema()
        .fields()
        .iter()
        .zip(bad.columns())
        .map(|(f, c)| {
            if f.name() == "high" {
                Arc::new(arrow_array::Float64Array::from(vec![0.0, 0.0])) as _
            } else {
                c.clone()
            }
        })
        .collect();
    bad = arrow_array::RecordBatch::try_new(bad.schema(), cols).unwrap();
    let e = s
        .append_ipc(
            "test",
            &ipc(&[bars(&["W"], 0, 5), bad]),
            InvalidRows::Refuse,
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{e}");
    assert!(
        e.message.contains("nothing of this append was stored"),
        "{e}"
    );
    // Nothing of the first batch either.
    let mut session = s.session();
    let r = s.query(&q("1m"), &mut session);
    assert!(r.is_err() || r.unwrap().rows == 0);
    still_works(&s, "W", &[], 0);
}

#[test]
fn rows_stored_when_publishing_fails_are_reported_and_published_later_in_order() {
    let (s, _dir) = service();
    let topic = ringfeed_shm::arena_path(&format!("{}.t.test.1m", s.config().arena_prefix));
    // Something that is not an arena where the topic ring must go: its
    // creation fails, as on a full /dev/shm.
    std::fs::create_dir_all(&topic).unwrap();
    let out = s
        .append("test", &[bars(&["U"], 0, 3)], InvalidRows::Refuse)
        .expect("rows stored: no error");
    assert_eq!(out.rows, 3);
    let why = out.report.unpublished.expect("the report says what failed");
    assert!(why.contains("all 3 rows were stored"), "{why}");
    assert!(!s.health().healthy);
    let mut session = s.session();
    assert_eq!(minutes(&s, &mut session, "U"), [0, 1, 2]);
    // A second append while the topic is still broken queues behind the first.
    let out = s
        .append("test", &[bars(&["U"], 3, 1)], InvalidRows::Refuse)
        .unwrap();
    assert!(out.report.unpublished.is_some());
    // The fault clears; the maintenance pass publishes the backlog in order.
    std::fs::remove_dir(&topic).unwrap();
    s.maintain();
    assert!(s.health().healthy);
    let mut r = Reader::open(&s.subscribe("test", "1m").unwrap(), StartAt::Oldest).unwrap();
    let mut seen = vec![];
    while let Some(b) = r.try_read().unwrap() {
        seen.extend(minutes_of(b.record_batch()));
    }
    assert_eq!(seen, [0, 1, 2, 3]);
    still_works(&s, "U", &[0, 1, 2, 3], 4);
}

fn minutes_of(b: &arrow_array::RecordBatch) -> Vec<i64> {
    use arrow_array::cast::AsArray;
    b.column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>()
        .values()
        .iter()
        .map(|t| (t - T0) / MIN)
        .collect()
}

#[test]
fn an_append_completes_while_a_replay_materialises_its_history() {
    let (s, _dir) = service();
    s.append("test", &[bars(&["R"], 0, 100)], InvalidRows::Refuse)
        .unwrap();
    let topic = s.subscribe("test", "1m").unwrap();
    let mut live = Reader::open(&topic, StartAt::Next).unwrap();
    let (inside_tx, inside_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    s.set_replay_hook(Some(Arc::new(move || {
        let _ = inside_tx.send(());
        // Safety net only: the test releases the replay long before.
        let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(60));
    })));
    let replay = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut session = s.session();
            let a = s
                .replay(
                    &ReplaySpec {
                        dataset: "test".into(),
                        timeframe: "1m".into(),
                        start: TimeSpec::Nanos(T0),
                        symbols: vec![],
                    },
                    &mut session,
                )
                .unwrap();
            let history: Vec<i64> = read_arena(&a.history).iter().flat_map(minutes_of).collect();
            (history, a.seam)
        })
    };
    inside_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the replay reached its materialisation");
    // The replay is paused between its store read and its copy into shared
    // memory. An append must not wait for it.
    let (done_tx, done_rx) = mpsc::channel();
    let appender = {
        let s = s.clone();
        std::thread::spawn(move || {
            let r = s.append("test", &[bars(&["R"], 100, 1)], InvalidRows::Refuse);
            let _ = done_tx.send(r.map(|o| o.rows));
        })
    };
    let appended = done_rx.recv_timeout(Duration::from_secs(60));
    go_tx.send(()).unwrap();
    assert_eq!(
        appended.expect("the append completed while the replay was paused"),
        Ok(1)
    );
    appender.join().unwrap();
    let (history, seam) = replay.join().unwrap();
    s.set_replay_hook(None);
    // The history is the store at the seam; the append is live, after it.
    assert_eq!(history, (0..100).collect::<Vec<_>>());
    let b = live.read(Duration::from_secs(10)).unwrap().unwrap();
    assert!(b.seq() >= seam, "live seq {} below seam {seam}", b.seq());
    assert_eq!(minutes_of(b.record_batch()), [100]);
    still_works(&s, "R", &(0..101).collect::<Vec<_>>(), 101);
}

#[test]
fn the_cache_caps_entries_refuses_busy_when_all_are_held_and_recovers() {
    let (s, _dir) = service_with(|l| l.max_entries = 4);
    s.append("test", &[bars(&["C"], 0, 50)], InvalidRows::Refuse)
        .unwrap();
    let spec = |end: i64| QuerySpec {
        end: Some(TimeSpec::Nanos(T0 + end * MIN)),
        ..q("1m")
    };
    let mut session = s.session();
    let held: Vec<_> = (1..=4)
        .map(|i| s.query(&spec(i), &mut session).unwrap())
        .collect();
    let e = s.query(&spec(5), &mut session).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy, "{e}");
    assert!(e.message.contains("release"), "{e}");
    // Released results are evicted for new ones; the cache never grows past 4.
    for a in &held {
        session.release(&a.arena).unwrap();
    }
    for i in 5..40 {
        let a = s.query(&spec(i), &mut session).unwrap();
        assert_eq!(a.rows, i as u64);
        session.release(&a.arena).unwrap();
        assert!(s.metrics().cache_entries.load(Ordering::Relaxed) <= 4);
    }
    // The budget counts what the arenas really occupy in shared memory.
    let prefix = format!("ringfeed.{}.q.", s.config().arena_prefix);
    let on_disk: u64 = std::fs::read_dir(shm_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(s.metrics().cache_bytes.load(Ordering::Relaxed), on_disk);
    still_works(&s, "C", &(0..50).collect::<Vec<_>>(), 50);
}

/// Not a test on its own: the child process of the next test, holding a
/// reader on the arena named by RF_HOLD_ARENA until it is killed.
#[test]
fn hold_an_arena_when_asked() {
    let Ok(name) = std::env::var("RF_HOLD_ARENA") else {
        return;
    };
    let _r = Reader::open(&name, StartAt::Oldest).unwrap();
    println!("attached");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_killed_reader_pins_no_result_after_maintenance() {
    use std::io::BufRead;
    let (s, _dir) = service_with(|l| {
        l.max_entries = 2;
        l.memory_budget = 0; // evict every unused result at once
    });
    s.append("test", &[bars(&["K"], 0, 10)], InvalidRows::Refuse)
        .unwrap();
    let mut session = s.session();
    let a = s.query(&q("1m"), &mut session).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["hold_an_arena_when_asked", "--exact", "--nocapture"])
        .env("RF_HOLD_ARENA", &a.arena)
        .env("RINGFEED_SHM_DIR", shm_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    assert!(out.lines().any(|l| l.is_ok_and(|l| l.contains("attached"))));
    session.release(&a.arena).unwrap();
    let path = ringfeed_shm::arena_path(&a.arena);
    // Released, but a reader maps it: kept.
    assert!(path.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead reader's row is freed and the result evicted.
    assert!(s.maintain() >= 1);
    assert!(
        !path.exists(),
        "the result of a dead reader is still pinned"
    );
    still_works(&s, "K", &(0..10).collect::<Vec<_>>(), 10);
}

#[test]
fn extreme_times_and_durations_are_refused_without_panicking() {
    let (s, _dir) = service();
    s.append("test", &[bars(&["X"], 0, 10)], InvalidRows::Refuse)
        .unwrap();
    let mut session = s.session();
    let times = [
        i64::MIN,
        i64::MIN + 1,
        -1,
        0,
        T0,
        i64::MAX - 1,
        i64::MAX,
        ringfeed_client::time::MAX_NS,
        ringfeed_client::time::MIN_NS,
    ];
    let tfs = [
        "1m", "1000000w", "1000000d", "1000000h", "1000w", "1001w", "7m",
    ];
    let offsets = [
        None,
        Some("1000000w"),
        Some("-1000000w"),
        Some("15m"),
        Some("-1000000d"),
    ];
    for &start in &times {
        for &end in &times {
            for tf in tfs {
                for off in offsets {
                    let spec = QuerySpec {
                        start: Some(TimeSpec::Nanos(start)),
                        end: Some(TimeSpec::Nanos(end)),
                        offset: off.map(Into::into),
                        limit: Some(usize::MAX),
                        ..q(tf)
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| s.query(&spec, &mut session)));
                    match r {
                        Ok(Ok(a)) => session.release(&a.arena).unwrap(),
                        Ok(Err(_)) => {}
                        Err(_) => panic!("query {spec:?} panicked"),
                    }
                }
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            s.delete(
                "test",
                Some("nobody".into()),
                &TimeSpec::Nanos(start),
                &TimeSpec::Int(i64::MAX),
            )
        }));
        assert!(r.is_ok(), "delete from {start} panicked");
    }
    for tf in tfs {
        assert!(catch_unwind(AssertUnwindSafe(|| s.subscribe("test", tf))).is_ok());
    }
    still_works(&s, "X", &(0..10).collect::<Vec<_>>(), 10);
}
