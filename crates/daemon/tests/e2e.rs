//! The real `ringfeedd` binary in a temporary directory, driven by the Rust client.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_arrow::StartAt;
use ringfeed_client::protocol::{QuerySpec, Request, TimeSpec};
use ringfeed_client::{Client, ClientError};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn append_query_subscribe_rollups_cache_and_clean_shutdown() {
    let mut d = Daemon::start();
    let mut c = d.client();
    c.ping().unwrap();

    // Subscribe before appending: 1m and 5m topics.
    let mut sub1 = c.subscribe("test", "1m", StartAt::Next).unwrap();
    let mut sub5 = c.subscribe("test", "5m", StartAt::Next).unwrap();

    assert_eq!(
        c.append("test", &bars(&["AAA", "BBB"], 0, 60)).unwrap(),
        120
    );

    let got = sub1
        .read(Duration::from_secs(10))
        .unwrap()
        .expect("1m batch");
    assert_eq!(got.num_rows(), 120);
    assert!(got.is_zero_copy());
    let r5 = sub5
        .read(Duration::from_secs(10))
        .unwrap()
        .expect("5m rollup batch");
    assert_eq!(r5.num_rows(), 2 * 12, "twelve 5m bars per symbol");
    let complete = r5.column_by_name("complete").unwrap().as_boolean();
    assert!(complete.value(0), "a closed 5m bucket is complete");

    // Query 1m for one symbol, with a range.
    let mut one = q("1m");
    one.symbols = vec!["AAA".into()];
    one.start = Some(TimeSpec::Text("2021-01-01 00:10".into()));
    one.end = Some(TimeSpec::Nanos(T0 + 20 * MIN));
    let b = c.bars(&one).unwrap();
    assert_eq!(b.rows, 10);
    assert_eq!(
        closes(&b),
        (10..20).map(|m| m as f64 + 0.5).collect::<Vec<_>>()
    );
    assert!(b.batches.iter().all(|x| x.is_zero_copy()));
    assert!(!b.cached);

    // The same query again maps the same arena.
    let b2 = c.bars(&one).unwrap();
    assert!(b2.cached);
    assert_eq!(b2.arena, b.arena);

    // A second client, too.
    let mut c2 = d.client();
    let b3 = c2.bars(&one).unwrap();
    assert_eq!(b3.arena, b.arena);

    // Resample on read: 15m from 1m; 1h from the stored rollup.
    let b15 = c
        .bars(&{
            let mut x = q("15m");
            x.symbols = vec!["BBB".into()];
            x
        })
        .unwrap();
    assert_eq!(b15.rows, 4);
    assert_eq!(
        closes(&b15),
        vec![14.5, 29.5, 44.5, 59.5],
        "close = last close of the bucket"
    );
    let h = c.bars(&q("1h")).unwrap();
    assert_eq!(h.rows, 2);

    // Live append extends the open hour: the 1h subscriber sees the updated bar.
    let mut sub60 = c.subscribe("test", "1h", StartAt::Next).unwrap();
    c.append("test", &bars(&["AAA"], 60, 5)).unwrap();
    let u = sub60
        .read(Duration::from_secs(10))
        .unwrap()
        .expect("1h update");
    // The first row at 01:00 closes the 00:00 hour, so both bars are published.
    assert_eq!(
        bar_states(&u),
        vec![(0, 59.5, true), (60, 64.5, false)],
        "the 00:00 hour is now complete; the 01:00 hour is still open"
    );

    // Errors are clear and the daemon keeps serving.
    let err = c
        .bars(&QuerySpec {
            dataset: "nope".into(),
            timeframe: "1m".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { kind, message } if kind == "unknown_dataset" && message.contains("test")),
        "{err}"
    );
    let mut inverted = q("1m");
    inverted.start = Some(TimeSpec::Nanos(T0 + 10));
    inverted.end = Some(TimeSpec::Nanos(T0));
    let err = c.bars(&inverted).unwrap_err().to_string();
    assert!(err.contains("is not before end"), "{err}");
    let err = c.bars(&q("7 parsecs")).unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { kind, .. } if kind == "bad_timeframe"),
        "{err}"
    );
    let err = c
        .subscribe("test", "3m", StartAt::Next)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no live topic"), "{err}");

    let stat = c.stat().unwrap();
    for want in [
        "ringfeed_queries_total",
        "ringfeed_cache_hits_total 2",
        "topic=\"test/1m\"",
    ] {
        assert!(stat.contains(want), "missing {want:?} in:\n{stat}");
    }
    assert!(
        d.arenas().iter().any(|a| a.ends_with(".t.test.1m")),
        "{:?}",
        d.arenas()
    );

    // SIGTERM: clean shutdown removes its arenas and the socket.
    drop((sub1, sub5, sub60, got, r5, u));
    // SAFETY-free: kill(1) from the shell sends SIGTERM.
    assert!(Command::new("kill")
        .arg(d.child.id().to_string())
        .status()
        .unwrap()
        .success());
    let st = d.wait_exit("SIGTERM");
    assert!(st.success(), "{st:?}");
    assert!(!d.socket.exists());
    assert!(d.arenas().is_empty(), "{:?}", d.arenas());
    // Batches mapped before the shutdown stay readable.
    assert_eq!(
        closes(&b),
        (10..20).map(|m| m as f64 + 0.5).collect::<Vec<_>>()
    );
}

#[test]
fn malformed_messages_do_not_wedge_the_daemon() {
    let d = Daemon::start();
    for i in 0..1000u32 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        let junk: Vec<u8> = match i % 4 {
            0 => b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            1 => {
                let mut v = 7u32.to_le_bytes().to_vec();
                v.extend_from_slice(b"{\"op\":1");
                v.extend_from_slice(&0u64.to_le_bytes());
                v
            }
            2 => u32::MAX.to_le_bytes().to_vec(),
            _ => (0..(i % 97)).map(|k| (k * 31 + i) as u8).collect(),
        };
        let _ = s.write_all(&junk);
        // Half the time hang up at once (a client that disconnects mid-request).
        if i % 2 == 0 {
            drop(s);
        } else {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
    // Not wedged: it answers once it has seen the junk connections close. Until then
    // this client may count as having too many open (`busy`, the per-client limit), which
    // a loaded machine makes last a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut c = loop {
        let mut c = d.client();
        match c.ping() {
            Ok(()) => break c,
            Err(ClientError::Server { kind, .. })
                if kind == "busy" && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("the daemon does not answer after 1000 malformed requests: {e}"),
        }
    };
    assert_eq!(c.append("test", &bars(&["X"], 0, 3)).unwrap(), 3);
    assert!(c.stat().unwrap().contains("ringfeed_bad_requests_total"));
}

#[test]
fn kill_9_then_restart_keeps_acknowledged_rows() {
    let mut d = Daemon::start();
    let mut c = d.client();
    c.append("test", &bars(&["K"], 0, 30)).unwrap();
    let _sub = c.subscribe("test", "1m", StartAt::Next).unwrap();
    d.child.kill().unwrap();
    d.wait_exit("SIGKILL");
    drop(c);
    // Restart over the same data dir and socket: stale socket and arenas are reclaimed.
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_in(dir);
    let mut c = d2.client();
    let b = c.bars(&q("1m")).unwrap();
    assert_eq!(b.rows, 30, "every acknowledged row survived the kill");
    c.subscribe("test", "1m", StartAt::Next).unwrap();
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start();
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .args(["--socket"])
        .arg(&d.socket)
        .arg("--data-dir")
        .arg(d.dir.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert!(Path::new(&d.socket).exists());
    // Another socket but the same data directory: the store's writer lock refuses it,
    // naming the daemon that holds it, and the refused daemon leaves no socket behind.
    let other = d.dir.path().join("other.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--socket")
        .arg(&other)
        .arg("--data-dir")
        .arg(d.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already open for writing")
            && err.contains(&format!("pid {} (ringfeedd)", d.child.id())),
        "{err}"
    );
    assert!(!other.exists(), "the refused daemon removed its socket");
    // The first daemon is unaffected.
    d.client().stat().unwrap();
}

/// Minutes (close - 0.5) of every row of `b` for `symbol`, in order.
fn minutes_of(b: &RecordBatch, symbol: &str) -> Vec<i64> {
    let sym = b.column_by_name("symbol").unwrap().as_string_view();
    let close = b
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>();
    (0..b.num_rows())
        .filter(|&i| sym.value(i) == symbol)
        .map(|i| (close.value(i) - 0.5) as i64)
        .collect()
}

#[test]
fn replay_from_a_time_continues_live_without_gap_or_duplicate() {
    let d = Daemon::start();
    let mut c = d.client();
    // History: minutes 0..100 already stored.
    c.append("test", &bars(&["R"], 0, 100)).unwrap();

    // A feed appends minutes 100..400 one at a time while replays start mid-stream.
    const END: i64 = 400;
    let socket = d.socket.clone();
    let feed = std::thread::spawn(move || {
        let mut c = Client::connect(Some(&socket)).unwrap();
        for m in 100..END {
            c.append("test", &bars(&["R"], m, 1)).unwrap();
            if m % 16 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });

    // Several subscribers join at different moments of the feed; each must see
    // every minute from its start exactly once, in order.
    let mut seams = vec![];
    for (k, from) in [0i64, 50, 120].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(30 * k as u64));
        let mut r = c
            .replay("test", "1m", TimeSpec::Nanos(T0 + from * MIN), &[])
            .unwrap();
        seams.push((r.seam(), r.history_rows()));
        let mut seen = vec![];
        while seen.last() != Some(&(END - 1)) {
            let b = r
                .read(Duration::from_secs(20))
                .unwrap()
                .unwrap_or_else(|| panic!("replay from {from} stalled after {:?}", seen.last()));
            seen.extend(minutes_of(&b, "R"));
        }
        assert_eq!(
            seen,
            (from..END).collect::<Vec<_>>(),
            "replay from minute {from} (seam {:?})",
            seams.last()
        );
    }
    feed.join().unwrap();
    assert!(
        seams.iter().any(|&(_, h)| h > 100),
        "some replay started mid-feed (seams {seams:?})"
    );

    // A rollup topic: history bars then live updates; the last version of each
    // 5m bar equals what the store holds once the feed is done.
    let mut r = c
        .replay(
            "test",
            "5m",
            TimeSpec::Text("2021-01-01".into()),
            &["R".into()],
        )
        .unwrap();
    c.append("test", &bars(&["R"], END, 7)).unwrap();
    let mut last: std::collections::BTreeMap<i64, (f64, bool)> = Default::default();
    while last.keys().next_back() != Some(&(END + 5)) {
        let b = r.read(Duration::from_secs(20)).unwrap().expect("5m bar");
        for (minute, close, done) in bar_states(&b) {
            last.insert(minute, (close, done));
        }
    }
    let stored = c.bars(&q("5m")).unwrap();
    let want: Vec<f64> = closes(&stored);
    let got: Vec<f64> = last.values().map(|v| v.0).collect();
    assert_eq!(got, want);
    assert_eq!(got.len() as i64, (END + 7 + 4) / 5);
    assert!(
        !last.values().last().unwrap().1,
        "the last 5m bar is still open"
    );

    // Bad requests get typed errors.
    let err = c
        .replay("test", "3m", TimeSpec::Nanos(T0), &[])
        .err()
        .unwrap();
    assert!(
        matches!(&err, ClientError::Server { kind, .. } if kind == "bad_timeframe"),
        "{err}"
    );
    let err = c
        .replay("test", "1m", TimeSpec::Text("someday".into()), &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
}

#[test]
fn kill_9_mid_ingest_loses_nothing_acknowledged() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let mut d = Daemon::start();
    let socket = d.socket.clone();
    let acked = Arc::new(AtomicI64::new(0));
    let feeder = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(Some(&socket)).unwrap();
            let mut m = 0;
            // Append until the daemon dies under us; count what it acknowledged.
            while c.append("test", &bars(&["K", "L"], m, 50)).is_ok() {
                m += 50;
                acked.store(m, Ordering::Relaxed);
            }
            m
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "feed too slow");
        std::thread::sleep(Duration::from_millis(1));
    }
    d.child.kill().unwrap();
    d.wait_exit("SIGKILL");
    let acked = feeder.join().unwrap();

    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_in(dir);
    let mut c = d2.client();
    for s in ["K", "L"] {
        let mut one = q("1m");
        one.symbols = vec![s.into()];
        let got: Vec<i64> = closes(&c.bars(&one).unwrap())
            .iter()
            .map(|x| (x - 0.5) as i64)
            .collect();
        let n = got.len() as i64;
        assert!(
            n >= acked && n <= acked + 50,
            "{s}: {n} minutes stored, {acked} acknowledged"
        );
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "{s}: no holes");
        // The acknowledged minutes' 5m rollups are there and right.
        let mut five = q("5m");
        five.symbols = vec![s.into()];
        five.end = Some(TimeSpec::Nanos(T0 + acked * MIN));
        let c5 = closes(&c.bars(&five).unwrap());
        assert_eq!(
            c5,
            (0..acked / 5)
                .map(|b| (b * 5 + 4) as f64 + 0.5)
                .collect::<Vec<_>>()
        );
    }
    // And it keeps ingesting after the restart.
    assert_eq!(c.append("test", &bars(&["K"], acked + 50, 1)).unwrap(), 1);
}

#[test]
fn appends_invalidate_exactly_the_cached_results_they_change() {
    let d = Daemon::start();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 0, 60 * 24 * 40))
        .unwrap(); // 40 days
    let sym = |s: &str, end: Option<i64>| {
        let mut x = q("1m");
        x.symbols = vec![s.into()];
        x.end = end.map(|m| TimeSpec::Nanos(T0 + m * MIN));
        x
    };
    let a_all = c.bars(&sym("A", None)).unwrap();
    let b_all = c.bars(&sym("B", None)).unwrap();
    let a_old = c.bars(&sym("A", Some(60 * 24 * 2))).unwrap(); // the first two days
    assert!(!a_all.cached && !b_all.cached && !a_old.cached);
    assert_eq!(a_all.batches.len(), 1 + (a_all.rows as usize - 1) / 262_144);

    // Correct A's last bar (close = its low: a value no bar of `bars()` has).
    let last = 60 * 24 * 40 - 1;
    let corrected = last as f64 * 0.5;
    let mut fix = bars(&["A"], last, 1);
    fix = RecordBatch::try_new(
        fix.schema(),
        fix.columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if fix.schema().field(i).name() == "close" {
                    Arc::new(Float64Array::from(vec![corrected])) as ArrayRef
                } else {
                    c.clone()
                }
            })
            .collect(),
    )
    .unwrap();
    c.append("test", &fix).unwrap();

    let a_new = c.bars(&sym("A", None)).unwrap();
    assert!(!a_new.cached, "A's cached result was invalidated");
    assert_ne!(a_new.arena, a_all.arena);
    assert_eq!(*closes(&a_new).last().unwrap(), corrected);
    // The old answer, still mapped, keeps its data.
    assert_eq!(*closes(&a_all).last().unwrap(), last as f64 + 0.5);
    // Results the append cannot change stay cached.
    let b_again = c.bars(&sym("B", None)).unwrap();
    assert!(b_again.cached && b_again.arena == b_all.arena);
    let a_old_again = c.bars(&sym("A", Some(60 * 24 * 2))).unwrap();
    assert!(a_old_again.cached && a_old_again.arena == a_old.arena);

    // Once its readers are gone, the stale arena is closed on the next cache event.
    let stale = a_all.arena.clone();
    drop(a_all);
    c.bars(&sym("B", Some(10))).unwrap();
    assert!(
        !d.arenas().iter().any(|a| a.ends_with(&stale)),
        "{stale} still in {:?}",
        d.arenas()
    );
}

/// `(minute, close, complete)` of each bar of a rollup publication.
fn bar_states(b: &RecordBatch) -> Vec<(i64, f64, bool)> {
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let close = b
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>();
    let done = b.column_by_name("complete").unwrap().as_boolean();
    (0..b.num_rows())
        .map(|i| ((ts.value(i) - T0) / MIN, close.value(i), done.value(i)))
        .collect()
}

#[test]
fn a_gap_closes_the_open_rollup_bar_live_and_in_cached_results() {
    let d = Daemon::start();
    let mut c = d.client();
    let mut sub5 = c.subscribe("test", "5m", StartAt::Next).unwrap();
    let mut sub60 = c.subscribe("test", "1h", StartAt::Next).unwrap();
    let next = |r: &mut ringfeed_arrow::Reader| {
        bar_states(&r.read(Duration::from_secs(10)).unwrap().expect("batch"))
    };

    // 00:00-00:02: the 00:00 buckets are open.
    c.append("test", &bars(&["AAA"], 0, 3)).unwrap();
    assert_eq!(next(&mut sub5), vec![(0, 2.5, false)]);
    assert_eq!(next(&mut sub60), vec![(0, 2.5, false)]);
    let mut early = q("5m");
    early.end = Some(TimeSpec::Nanos(T0 + 30 * MIN));
    let before = c.bars(&early).unwrap();
    assert_eq!(bar_states(&before.batches[0]), vec![(0, 2.5, false)]);

    // 01:00 after a gap: the 00:00 bars close, and subscribers are told so.
    c.append("test", &bars(&["AAA"], 60, 1)).unwrap();
    assert_eq!(next(&mut sub5), vec![(0, 2.5, true), (60, 60.5, false)]);
    assert_eq!(next(&mut sub60), vec![(0, 2.5, true), (60, 60.5, false)]);
    // A cached result that ends before the new row was invalidated by the flag flip.
    let after = c.bars(&early).unwrap();
    assert!(!after.cached, "the cached 00:00-00:30 result went stale");
    assert_eq!(bar_states(&after.batches[0]), vec![(0, 2.5, true)]);

    // The next day's first row closes the last bars of the day before.
    c.append("test", &bars(&["AAA"], 1440 + 30, 1)).unwrap();
    assert_eq!(
        next(&mut sub5),
        vec![(60, 60.5, true), (1440 + 30, 1470.5, false)]
    );
    assert_eq!(
        next(&mut sub60),
        vec![(60, 60.5, true), (1440, 1470.5, false)]
    );
    // What was published is what the store holds.
    let stored = c.bars(&q("5m")).unwrap();
    let all: Vec<_> = stored.batches.iter().flat_map(|b| bar_states(b)).collect();
    assert_eq!(
        all,
        vec![(0, 2.5, true), (60, 60.5, true), (1440 + 30, 1470.5, false)]
    );
}

#[test]
fn limits_give_clear_errors_and_the_daemon_keeps_serving() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "max_result_bytes = \"16KiB\"\nmax_pending_per_client = 2\nmax_connections = 3\nmax_connections_per_client = 2\nmax_append_bytes = \"64KiB\"",
    );
    let mut c = d.client();
    assert_eq!(c.append("test", &bars(&["X"], 0, 600)).unwrap(), 600);

    // Result size: 600 rows of 1m are over 16 KiB; a limit brings them under.
    let err = c.bars(&q("1m")).unwrap_err();
    assert_eq!(server_kind(&err), "too_large", "{err}");
    assert!(err.to_string().contains("max_result_bytes"), "{err}");
    let mut few = q("1m");
    few.limit = Some(10);
    assert_eq!(c.bars(&few).unwrap().rows, 10);

    // Unreleased results per client: a raw client that never releases.
    let mut raw = d.client();
    let mut arenas = vec![];
    for n in 1..=2 {
        let mut spec = q("1m");
        spec.limit = Some(n);
        arenas.push(raw.call(&Request::Query(spec), &[]).unwrap().arena.unwrap());
    }
    let err = raw.call(&Request::Query(few.clone()), &[]).unwrap_err();
    assert_eq!(server_kind(&err), "too_many_pending", "{err}");
    assert!(err.to_string().contains("release some first"), "{err}");
    raw.call(
        &Request::Release {
            arena: arenas.pop().unwrap(),
        },
        &[],
    )
    .unwrap();
    raw.call(&Request::Query(few.clone()), &[]).unwrap();
    // Other clients are not limited by this one's holdings.
    assert_eq!(c.bars(&few).unwrap().rows, 10);

    // Connections: c and raw are this process's share of two; a third is
    // told why and to retry, and gets in once one of them is closed.
    let err = Client::connect(Some(&d.socket))
        .and_then(|mut c3| c3.ping())
        .unwrap_err();
    assert_eq!(server_kind(&err), "busy", "{err}");
    assert!(
        err.to_string().contains("max_connections_per_client"),
        "{err}"
    );
    drop(raw);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match d.client().ping() {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(server_kind(&e), "busy", "{e}");
                assert!(
                    Instant::now() < deadline,
                    "a freed connection slot was not reused"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    // An append over max_append_bytes gets the reason (not a broken pipe), and
    // the connection stays usable; nothing of it is stored.
    let err = c.append("test", &bars(&["Y"], 0, 5000)).unwrap_err();
    assert_eq!(server_kind(&err), "too_large", "{err}");
    assert!(err.to_string().contains("max_append_bytes"), "{err}");
    c.ping().unwrap();
    let mut y = q("1m");
    y.symbols = vec!["Y".into()];
    let err = c.bars(&y).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_symbol", "{err}");
    assert!(c.stat().unwrap().contains("ringfeed_bad_requests_total 1"));
}

#[test]
fn no_config_defaults_metrics_endpoint_socket_mode_and_sigint() {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // A free port for the metrics endpoint (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env("XDG_RUNTIME_DIR", &run)
        .env("RINGFEED_SHM_DIR", shm_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let socket = run.join("ringfeed.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = loop {
        if let Ok(c) = Client::connect(Some(&socket)) {
            break c;
        }
        assert!(Instant::now() < deadline, "ringfeedd did not come up");
        assert!(child.try_wait().unwrap().is_none(), "ringfeedd exited");
        std::thread::sleep(Duration::from_millis(20));
    };
    c.ping().unwrap();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is private to its user");
    assert!(
        dir.path().join("ringfeed-data").is_dir(),
        "default data dir"
    );
    assert_eq!(c.datasets().unwrap(), serde_json::json!({}));

    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("/metrics");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // Connections count every face: the client and this scrape.
    for want in ["ringfeed_queries_total 0", "ringfeed_connections 2"] {
        assert!(page.contains(want), "missing {want:?} in:\n{page}");
    }
    assert!(get("/nope").starts_with("HTTP/1.1 404"));

    drop(c);
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "ringfeedd ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "{st:?}");
    assert!(!socket.exists(), "SIGINT removes the socket");
}

/// Parquet part files of `tf` (two days of January 2021: one compacted month part once
/// written down) and hot WALs (one per day, every timeframe in it).
fn tiers(data: &Path, tf: &str) -> (usize, usize) {
    fn count(p: &Path, ext: &str) -> usize {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        count(&p, ext)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == ext))
                    }
                })
                .sum()
        })
    }
    let cold = count(&data.join(format!("dataset=test/tf={tf}")), "parquet");
    (cold, count(&data.join("_hot/test"), "wal"))
}

/// End-of-day write-down (DESIGN §3): a daemon moves every finished day to Parquet, at
/// start and after each UTC midnight; queries answer the same before and after, and a
/// correction to a written-down day still wins.
#[test]
fn finished_days_are_written_down_to_parquet_and_read_back_the_same() {
    // Two days of bars (2021-01-01 and -02), appended with write-down off: all hot.
    let mut d = Daemon::start_with(tempfile::tempdir().unwrap(), "write_down_delay = \"off\"");
    let data = d.dir.path().join("data");
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 1400, 100)).unwrap();
    let before_1m = closes(&c.bars(&q("1m")).unwrap());
    let before_1h = closes(&c.bars(&q("1h")).unwrap());
    assert_eq!(before_1m.len(), 200);
    assert_eq!(tiers(&data, "1m"), (0, 2), "hot only");
    drop(c);
    assert!(Command::new("kill")
        .arg(d.child.id().to_string())
        .status()
        .unwrap()
        .success());
    assert!(d.wait_exit("SIGTERM").success());

    // Restart with the default delay: the pass at start writes both days down.
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_in(dir);
    let mut c = d2.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The base and both rollups (one pass moves them all; the files change one
    // timeframe at a time, so wait for the last one before judging).
    while ["1m", "5m", "1h"]
        .iter()
        .any(|tf| tiers(&data, tf) != (1, 0))
    {
        assert!(
            Instant::now() < deadline,
            "no write-down within 60 s: 1m {:?}, 5m {:?}, 1h {:?}",
            tiers(&data, "1m"),
            tiers(&data, "5m"),
            tiers(&data, "1h")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The pass counts itself once it returns, just after its last file moved.
    let counted = |s: &str| {
        s.contains("ringfeed_write_downs_total 1")
            && s.contains("ringfeed_written_down_partitions_total 6")
    };
    let mut stat = c.stat().unwrap();
    while !counted(&stat) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stat = c.stat().unwrap();
    }
    assert!(counted(&stat), "{stat}");
    assert_eq!(closes(&c.bars(&q("1m")).unwrap()), before_1m);
    assert_eq!(closes(&c.bars(&q("1h")).unwrap()), before_1h);
    // A write-down asked for over the socket: bad requests are clear errors.
    let err = c.write_down(Some("nope"), None, false).unwrap_err();
    assert_eq!(server_kind(&err), "unknown_dataset", "{err}");
    let err = c.write_down(None, Some("yesterday"), false).unwrap_err();
    assert_eq!(server_kind(&err), "bad_request", "{err}");
    let nothing = c.write_down(Some("test"), None, false).unwrap();
    assert!(nothing.contains("wrote down 0 partitions"), "{nothing}");
    // A delete through the daemon reaches the written-down days too; bad ones are errors.
    let err = c
        .delete("nope", None, TimeSpec::Nanos(T0), TimeSpec::Nanos(T0 + MIN))
        .unwrap_err();
    assert_eq!(server_kind(&err), "unknown_dataset", "{err}");
    let err = c
        .delete("test", None, TimeSpec::Nanos(T0 + MIN), TimeSpec::Nanos(T0))
        .unwrap_err();
    assert_eq!(server_kind(&err), "bad_request", "{err}");
    let text = c
        .delete(
            "test",
            Some("B"),
            TimeSpec::Nanos(T0 + 1400 * MIN),
            TimeSpec::Nanos(T0 + 1500 * MIN),
        )
        .unwrap();
    assert_eq!(text, "deleted from 2 days of test");
    assert_eq!(
        c.bars(&q("1m")).unwrap().rows,
        100,
        "only A's bars are left"
    );

    // A late correction to a written-down day lands hot and wins over the Parquet copy.
    let mut fix = bars(&["A"], 1410, 1);
    // close = its low: a value no bar of `bars()` has.
    let corrected = 1410.0 * 0.5;
    fix = RecordBatch::try_new(
        fix.schema(),
        fix.columns()
            .iter()
            .zip(fix.schema().fields())
            .map(|(col, f)| {
                if f.name() == "close" {
                    Arc::new(Float64Array::from(vec![corrected])) as ArrayRef
                } else {
                    col.clone()
                }
            })
            .collect(),
    )
    .unwrap();
    c.append("test", &fix).unwrap();
    let after = closes(&c.bars(&q("1m")).unwrap());
    assert_eq!(after.len(), 100);
    assert_eq!(after.iter().filter(|v| **v == corrected).count(), 1);
    assert_eq!(
        tiers(&data, "1m"),
        (1, 2),
        "the delete and the correction are hot"
    );
}

/// `ready`, the op added once in the service and once per face: extents per stored
/// timeframe, hot days, symbols; an unknown dataset is a typed error.
#[test]
fn ready_reports_how_far_each_timeframe_goes() {
    let d = Daemon::start();
    let mut c = d.client();
    let empty = c.ready(Some("test")).unwrap();
    assert!(empty.ready);
    assert_eq!(empty.datasets.len(), 1);
    let tfs = &empty.datasets[0].timeframes;
    assert_eq!(
        tfs.iter().map(|t| t.timeframe.as_str()).collect::<Vec<_>>(),
        ["1m", "5m", "1h"]
    );
    assert!(tfs
        .iter()
        .all(|t| t.first_ts.is_none() && t.hot_days.is_empty()));

    // 70 minutes of A and B on day one, and one bar of A on day two.
    c.append("test", &bars(&["A", "B"], 0, 70)).unwrap();
    c.append("test", &bars(&["A"], 1440 + 5, 1)).unwrap();
    let r = c.ready(None).unwrap();
    let ds = &r.datasets[0];
    assert_eq!(ds.dataset, "test");
    assert_eq!(ds.base, "1m");
    assert_eq!(ds.symbols, ["A", "B"]);
    let by = |tf: &str| ds.timeframes.iter().find(|t| t.timeframe == tf).unwrap();
    assert_eq!(by("1m").first_ts, Some(T0));
    assert_eq!(by("1m").last_ts, Some(T0 + 1445 * MIN));
    assert_eq!(by("1m").hot_days, ["2021-01-01", "2021-01-02"]);
    assert_eq!(by("5m").last_ts, Some(T0 + 1445 * MIN));
    assert_eq!(by("1h").first_ts, Some(T0));
    assert_eq!(by("1h").last_ts, Some(T0 + 1440 * MIN));
    assert_eq!(by("1m").cold_days, 0);

    let err = c.ready(Some("nope")).unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { kind, .. } if kind == "unknown_dataset"),
        "{err}"
    );
}

/// A client outlives a daemon restart: the first call after it reconnects.
#[test]
fn a_client_reconnects_after_a_daemon_restart() {
    let mut d = Daemon::start();
    let mut c = d.client();
    c.append("test", &bars(&["A"], 0, 3)).unwrap();
    // SIGTERM: a clean stop, then a new daemon on the same socket and data.
    let pid = d.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    d.wait_exit("SIGTERM");
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_in(dir);
    // The old connection is dead; the call reopens it and succeeds.
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 3);
    c.ping().unwrap();
    drop(d2);
}

/// Every face takes the same symbol-list forms, and a live subscription with
/// symbols delivers only their rows.
#[test]
fn symbol_lists_and_live_symbol_filters() {
    let d = Daemon::start();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B", "C"], 0, 5)).unwrap();
    for symbols in [
        vec!["A,B".to_string()],
        vec!["A".into(), "B".into()],
        vec![" A , B ".into()],
    ] {
        let mut spec = q("1m");
        spec.symbols = symbols.clone();
        assert_eq!(c.bars(&spec).unwrap().rows, 10, "{symbols:?}");
    }
    // Over the raw protocol, a string works too.
    let resp = c
        .call(
            &serde_json::from_str::<Request>(
                r#"{"op":"query","dataset":"test","timeframe":"1m","symbols":"C,A"}"#,
            )
            .unwrap(),
            &[],
        )
        .unwrap();
    assert_eq!(resp.rows, Some(10));
    if let Some(a) = resp.arena {
        c.call(&Request::Release { arena: a }, &[]).unwrap();
    }

    let mut r = c
        .replay(
            "test",
            "1m",
            TimeSpec::Nanos(T0 + 4 * MIN),
            &["B".to_string()],
        )
        .unwrap();
    let syms = |b: &ringfeed_arrow::Batch| -> Vec<String> {
        let c = b.column_by_name("symbol").unwrap();
        let c = arrow_cast_views(c);
        c.iter().map(|v| v.unwrap().to_string()).collect()
    };
    let h = r.read(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(syms(&h), ["B"]);
    // A live batch of A, B and C: only B's row comes through; a batch of A alone is skipped.
    c.append("test", &bars(&["A"], 5, 1)).unwrap();
    c.append("test", &bars(&["A", "B", "C"], 6, 1)).unwrap();
    let live = r.read(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(syms(&live), ["B"]);
    assert_eq!(
        live.column_by_name("close")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        6.5
    );
    assert!(r.read(Duration::from_millis(200)).unwrap().is_none());
}

fn arrow_cast_views(c: &ArrayRef) -> StringViewArray {
    c.as_string_view().clone()
}

/// Client appends go through the store's row rules (issue: `append` stored high < low,
/// NaN and negative prices, off-grid bars and ms integers read as ns). By default a bad
/// row refuses the whole append; `Skip` stores the good rows and reports the bad ones;
/// `Keep` stores them flagged. A non-timestamp ts is refused whatever the policy.
#[test]
fn appends_are_checked_by_the_store_row_rules() {
    use arrow_array::Int64Array;
    use ringfeed_client::InvalidRows;
    let d = Daemon::start();
    let mut c = d.client();
    let good = bars(&["A"], 0, 4);
    let with = |col: &str, row: usize, v: f64| -> RecordBatch {
        let cols = good
            .columns()
            .iter()
            .zip(good.schema().fields())
            .map(|(a, f)| {
                if f.name() == col {
                    let mut v2: Vec<f64> = a.as_primitive::<Float64Type>().values().to_vec();
                    v2[row] = v;
                    Arc::new(Float64Array::from(v2)) as ArrayRef
                } else {
                    a.clone()
                }
            })
            .collect();
        RecordBatch::try_new(good.schema(), cols).unwrap()
    };
    for (bad, why) in [
        (with("high", 1, -5.0), "high"),
        (with("close", 2, f64::NAN), "close"),
        (with("open", 0, -1.0), "open"),
        (with("volume", 3, -2.0), "volume"),
    ] {
        let err = c.append("test", &bad).unwrap_err();
        assert!(
            matches!(&err, ClientError::Server { kind, message } if kind == "bad_request" && message.contains(why) && message.contains("nothing of this append was stored")),
            "{why}: {err}"
        );
    }
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 0, "nothing half-stored");

    // Off the 1m grid: 00:02:17.
    let mut ts: Vec<i64> = (0..4).map(|m| T0 + m * MIN).collect();
    ts[2] += 17_000_000_000;
    let mut cols = good.columns().to_vec();
    cols[0] = Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC"));
    let off_grid = RecordBatch::try_new(good.schema(), cols).unwrap();
    let err = c.append("test", &off_grid).unwrap_err().to_string();
    assert!(err.contains("append:3") && err.contains("grid"), "{err}");

    // An Int64 ts (ms) is refused, never read as ns (it became 1970-01-01 00:27 before).
    let ms: Vec<i64> = (0..4).map(|m| (T0 + m * MIN) / 1_000_000).collect();
    let mut cols = good.columns().to_vec();
    cols[0] = Arc::new(Int64Array::from(ms));
    let fields: Vec<_> = good
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "ts" {
                Arc::new(arrow_schema::Field::new(
                    "ts",
                    arrow_schema::DataType::Int64,
                    false,
                ))
            } else {
                f.clone()
            }
        })
        .collect();
    let int_ts = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), cols).unwrap();
    for invalid in [InvalidRows::Refuse, InvalidRows::Skip, InvalidRows::Keep] {
        let err = c
            .append_with("test", std::slice::from_ref(&int_ts), invalid)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ts") && err.contains("timestamp"), "{err}");
    }
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 0);

    // Skip: the good rows are stored, the report names the bad one.
    let r = c
        .append_with("test", &[with("high", 1, -5.0)], InvalidRows::Skip)
        .unwrap();
    assert_eq!((r.rows_read, r.rows_stored, r.rejected), (4, 3, 1), "{r:?}");
    assert!(r.rejects[0].starts_with("append:2:"), "{r:?}");
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 3);
    // Keep: stored, flagged.
    let r = c
        .append_with("test", &[with("high", 1, -5.0)], InvalidRows::Keep)
        .unwrap();
    assert_eq!((r.rows_stored, r.flagged), (4, 1), "{r:?}");
    assert_eq!(c.bars(&q("1m")).unwrap().rows, 4);
}

/// A dataset is created through the running daemon (before, the only way was to
/// edit its TOML and restart it, while the append error pointed at `ringfeed
/// ingest`, which the daemon's lock refuses).
#[test]
fn datasets_are_created_through_the_daemon() {
    use ringfeed_client::protocol::DatasetSpec;
    let d = Daemon::start();
    let mut c = d.client();
    let err = c.append("fresh", &bars(&["A"], 0, 5)).unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { kind, message } if kind == "unknown_dataset" && message.contains("--create")),
        "{err}"
    );
    let spec = DatasetSpec {
        dataset: "fresh".into(),
        base: "1m".into(),
        rollups: Some(vec!["5m".into(), "1h".into()]),
        fsync: Some("never".into()),
        ..Default::default()
    };
    let text = c.create_dataset(&spec).unwrap();
    assert!(
        text.contains("created dataset fresh (1m, 5m, 1h)"),
        "{text}"
    );
    // Idempotent; other settings for the name are refused.
    assert!(c.create_dataset(&spec).unwrap().contains("exists"));
    let other = DatasetSpec {
        rollups: Some(vec!["15m".into()]),
        ..spec.clone()
    };
    let err = c.create_dataset(&other).unwrap_err();
    assert!(
        matches!(&err, ClientError::Server { kind, .. } if kind == "bad_request"),
        "{err}"
    );
    for (bad, kind) in [
        (
            DatasetSpec {
                dataset: "../x".into(),
                ..spec.clone()
            },
            "bad_request",
        ),
        (
            DatasetSpec {
                dataset: "y".into(),
                base: "7 parsecs".into(),
                ..spec.clone()
            },
            "bad_timeframe",
        ),
        (
            DatasetSpec {
                dataset: "z".into(),
                rollups: Some(vec!["90s".into()]),
                ..spec.clone()
            },
            "bad_request",
        ),
    ] {
        let err = c.create_dataset(&bad).unwrap_err();
        assert_eq!(server_kind(&err), kind, "{err}");
    }
    // Usable at once: live rollup topic, append, query.
    let mut sub5 = c.subscribe("fresh", "5m", StartAt::Next).unwrap();
    assert_eq!(c.append("fresh", &bars(&["A"], 0, 10)).unwrap(), 10);
    assert_eq!(
        c.bars(&QuerySpec {
            dataset: "fresh".into(),
            timeframe: "5m".into(),
            ..Default::default()
        })
        .unwrap()
        .rows,
        2
    );
    assert!(sub5.read(Duration::from_secs(10)).unwrap().is_some());
    let r = c.ready(Some("fresh")).unwrap();
    assert_eq!(r.datasets[0].timeframes.len(), 3);
}

/// SIGTERM stops the daemon even when its socket file was removed from under it
/// (it used to block in accept() forever: the waker connected to the socket path).
#[test]
fn sigterm_stops_the_daemon_after_its_socket_file_is_gone() {
    let mut d = Daemon::start();
    std::fs::remove_file(&d.socket).unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(d.wait_exit("SIGTERM without a socket file").success());
}

/// Concurrent first subscribers to one topic share one ring (it is created once, under
/// the topics lock): before, a losing creator's close could unlink the winner's file,
/// leaving the topic without an arena for the daemon's lifetime.
#[test]
fn concurrent_first_subscribers_share_one_topic_ring() {
    let d = Daemon::start();
    let socket = d.socket.clone();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (socket, barrier) = (socket.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(Some(&socket)).unwrap();
                barrier.wait();
                c.subscribe("test", "5m", StartAt::Next).unwrap()
            })
        })
        .collect();
    let mut readers: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    let name = readers[0].ring().name().to_string();
    assert!(readers.iter().all(|r| r.ring().name() == name));
    assert!(
        d.arenas().iter().any(|a| a.ends_with(&name) || *a == name),
        "{:?}",
        d.arenas()
    );
    let mut c = d.client();
    c.append("test", &bars(&["A"], 0, 5)).unwrap();
    for r in &mut readers {
        let b = r
            .read(Duration::from_secs(10))
            .unwrap()
            .expect("every subscriber sees the bar");
        assert_eq!(b.num_rows(), 1);
    }
}

/// `ringfeedd --socket prices.csv` used to delete the CSV (issue 12 #16): only a stale
/// socket is removed; anything else is refused and left alone.
#[test]
fn a_socket_path_holding_a_file_is_refused_and_the_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("prices.csv");
    std::fs::write(&csv, "ts,close\n1,2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeedd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--socket")
        .arg(&csv)
        .arg("--arena-prefix")
        .arg("notsock")
        .env("RINGFEED_SHM_DIR", shm_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "ts,close\n1,2\n");
}
