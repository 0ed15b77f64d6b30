//! Follower daemons (issue 16): real `ringfeedd` binaries on loopback, each with its own
//! data dir, arena prefix and Flight port. A follower catches up a year, follows a live
//! feed, survives kill -9 of either side, chains, and refuses what it should; at the
//! end of each test the stores are compared row for row through their sockets (every
//! stored timeframe, `complete` flags included) and the follower answers a real query.

mod common;

use arrow_array::{ArrayRef, RecordBatch};
use common::node::*;
use common::*;
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::{Client, TimeSpec};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `minutes` 1m bars of `symbols` from minute `from`, prices shifted by `bump` (a later
/// version of the same bars).
fn bars_v(symbols: &[&str], from: i64, minutes: i64, bump: f64) -> RecordBatch {
    let b = bars(symbols, from, minutes);
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(b.schema().fields())
        .map(|(c, f)| match f.name().as_str() {
            "close" | "high" | "volume" => {
                let v = c
                    .as_any()
                    .downcast_ref::<arrow_array::Float64Array>()
                    .unwrap();
                Arc::new(arrow_array::Float64Array::from_iter_values(
                    v.values().iter().map(|x| x + bump),
                )) as ArrayRef
            }
            _ => c.clone(),
        })
        .collect();
    RecordBatch::try_new(b.schema(), cols).unwrap()
}

#[test]
fn a_follower_catches_up_a_year_then_follows_a_live_feed() {
    const YEAR: i64 = 365 * 1440;
    let p = Node::new(None, "");
    // A year of 1m bars (525,600 rows; two symbols take ~100 s in a debug build, mostly
    // the row-for-row comparisons), a month per append.
    let mut c = p.client();
    let t = Instant::now();
    for m in 0..12 {
        let from = m * YEAR / 12;
        let n = (m + 1) * YEAR / 12 - from;
        c.append("test", &bars_v(&["AAA"], from, n, 0.0)).unwrap();
    }
    let ingest = t.elapsed();
    let f = Node::follower(&p, &["test"], "");
    let t = Instant::now();
    converge(&p, &f, 300);
    eprintln!(
        "primary ingest of {YEAR} rows: {ingest:?}; follower catch-up: {:?}",
        t.elapsed()
    );
    assert_eq!(count(&f, "1m"), YEAR as usize);
    // Live: the follower republishes into its own topic, as a primary does.
    let mut topic = f
        .client()
        .subscribe("test", "1m", ringfeed_arrow::StartAt::Next)
        .unwrap();
    for i in 0..40 {
        // A new bar, and the one before it corrected (the unfinished bar grows).
        c.append("test", &bars_v(&["AAA", "BBB"], YEAR + i, 1, 0.0))
            .unwrap();
        if i > 0 {
            c.append("test", &bars_v(&["AAA"], YEAR + i - 1, 1, 7.0))
                .unwrap();
        }
    }
    converge(&p, &f, 60);
    let mut live = 0;
    while let Ok(Some(b)) = topic.read(Duration::from_millis(500)) {
        live += b.record_batch().num_rows();
    }
    assert!(
        live >= 80,
        "the follower's own 1m topic carried the live rows ({live})"
    );
    // Its metrics and health say it follows.
    let stat = f.client().stat().unwrap();
    assert!(
        metric(&stat, "ringfeed_follow_rows_total{dataset=\"test\"}").unwrap() >= YEAR as f64,
        "{stat}"
    );
    assert_eq!(
        metric(&stat, "ringfeed_follow_connected{dataset=\"test\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&stat, "ringfeed_follow_lag_rows{dataset=\"test\"}"),
        Some(0.0)
    );
    let h = f.client().health().unwrap();
    assert!(h.healthy, "{h:?}");
    assert!(
        h.checks
            .iter()
            .any(|c| c.name == "follow test" && c.detail.contains("following")),
        "{h:?}"
    );
    still_answers(&p, &f);
}

/// A feed that appends a minute of three symbols at a time to the primary, and updates
/// the newest bar (the unfinished bar), riding out the primary's restarts.
struct Feed {
    stop: Arc<AtomicBool>,
    minute: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feed {
    fn start(socket: PathBuf, from: i64) -> Feed {
        let stop = Arc::new(AtomicBool::new(false));
        let minute = Arc::new(AtomicI64::new(from));
        let (s, m) = (stop.clone(), minute.clone());
        let thread = std::thread::spawn(move || {
            let mut c: Option<Client> = None;
            while !s.load(Ordering::Relaxed) {
                let cur = m.load(Ordering::Relaxed);
                let Some(client) = c.as_mut() else {
                    c = Client::connect(Some(&socket)).ok();
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                // The newest bar is appended, then updated (it grows until its minute ends).
                let ok = client
                    .append("test", &bars_v(&["AAA", "BBB", "CCC"], cur, 1, 0.0))
                    .is_ok()
                    && client
                        .append("test", &bars_v(&["BBB"], cur, 1, 3.0))
                        .is_ok();
                if ok {
                    m.store(cur + 1, Ordering::Relaxed);
                } else {
                    c = None; // the primary went away: reconnect and send the minute again
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Feed {
            stop,
            minute,
            thread: Some(thread),
        }
    }

    /// Waits until the feed has appended `n` more minutes.
    fn advance(&self, n: i64) {
        let want = self.minute.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.minute.load(Ordering::Relaxed) < want {
            assert!(Instant::now() < deadline, "the feed stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
    }
}

#[test]
fn kill_9_of_the_primary_and_of_the_follower_mid_stream_loses_and_duplicates_nothing() {
    const KILLS: usize = 3;
    let mut p = Node::new(None, "");
    // Three days of history, then a live feed from there.
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 0, 3 * 1440, 0.0))
        .unwrap();
    let mut f = Node::follower(&p, &["test"], "");
    let feed = Feed::start(p.socket.clone(), 3 * 1440);
    for round in 0..KILLS {
        feed.advance(20);
        f.kill9();
        feed.advance(10);
        f.start();
        feed.advance(20);
        p.kill9();
        std::thread::sleep(Duration::from_millis(300));
        p.start();
        eprintln!("round {round}: both killed and restarted");
    }
    feed.advance(20);
    feed.stop();
    converge(&p, &f, 120);
    // Row for row, `complete` flags included (the 5m and 1h rows carry them).
    let five = rows(&f, "test", "5m");
    assert!(five.column_by_name("complete").is_some());
    assert_eq!(five, rows(&p, "test", "5m"));
    let stat = f.client().stat().unwrap();
    assert!(
        metric(&stat, "ringfeed_follow_reconnects_total{dataset=\"test\"}").unwrap() >= 1.0,
        "{stat}\n{}",
        tail(&f.log())
    );
    still_answers(&p, &f);
}

#[test]
fn a_chain_of_three_holds_the_same_rows() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars_v(&["AAA", "BBB"], 0, 2 * 1440, 0.0))
        .unwrap();
    let b = Node::follower(&p, &["test"], "");
    let c = Node::follower(&b, &["test"], "");
    converge(&p, &c, 120);
    let mut client = p.client();
    for i in 0..30 {
        client
            .append("test", &bars_v(&["AAA", "BBB"], 2 * 1440 + i, 1, 0.0))
            .unwrap();
    }
    converge(&p, &b, 60);
    converge(&p, &c, 60);
    // The middle link refuses local writes too.
    let e = b
        .client()
        .append("test", &bars(&["AAA"], 0, 1))
        .unwrap_err();
    assert_eq!(server_kind(&e), "followed");
    still_answers(&p, &c);
}

#[test]
fn a_follower_refuses_local_writes_naming_its_primary() {
    let p = Node::new(None, "");
    p.client().append("test", &bars(&["AAA"], 0, 120)).unwrap();
    let f = Node::follower(&p, &["test"], "");
    converge(&p, &f, 60);
    let mut c = f.client();
    let e = c.append("test", &bars(&["AAA"], 500, 1)).unwrap_err();
    assert_eq!(server_kind(&e), "followed", "{e}");
    assert!(e.to_string().contains(&p.url()), "{e}");
    let e = c
        .delete(
            "test",
            None,
            TimeSpec::Nanos(T0),
            TimeSpec::Nanos(T0 + 60 * MIN),
        )
        .unwrap_err();
    assert_eq!(server_kind(&e), "followed", "{e}");
    // Over Flight too: FAILED_PRECONDITION, the same words.
    let mut remote = ringfeed_remote::RemoteClient::connect(
        &f.url(),
        ringfeed_remote::RemoteOptions {
            token: Some(OPS.into()),
            ..Default::default()
        },
    )
    .unwrap();
    match remote.append("test", &bars(&["AAA"], 500, 1), Default::default()) {
        Err(ringfeed_remote::RemoteError::Status {
            code,
            message,
            kind,
        }) => {
            assert_eq!(code, tonic::Code::FailedPrecondition);
            assert_eq!(kind.as_deref(), Some("followed"));
            assert!(message.contains(&p.url()), "{message}");
        }
        other => panic!("a DoPut to a followed dataset: {other:?}"),
    }
    // Nothing of it was stored; the follower still follows and answers.
    p.client().append("test", &bars(&["AAA"], 120, 5)).unwrap();
    converge(&p, &f, 60);
    still_answers(&p, &f);
}

#[test]
fn a_dataset_the_token_may_not_read_is_refused_and_logged_and_the_others_followed() {
    let p = Node::new(None, "");
    p.client().append("test", &bars(&["AAA"], 0, 120)).unwrap();
    p.client()
        .append("secret", &bars(&["AAA"], 0, 120))
        .unwrap();
    let f = Node::follower(&p, &["secret", "test"], "");
    converge(&p, &f, 60);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f.log().contains("PermissionDenied") {
        assert!(Instant::now() < deadline, "no clear log line:\n{}", f.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = f.log();
    let line = log
        .lines()
        .find(|l| l.contains("PermissionDenied"))
        .unwrap();
    assert!(
        line.contains("secret") && line.contains("read scope"),
        "{line}"
    );
    // Logged once, not once per retry.
    std::thread::sleep(Backoff::MAX + Duration::from_secs(1));
    assert_eq!(
        f.log().matches("PermissionDenied").count(),
        1,
        "{}",
        f.log()
    );
    let h = f.client().health().unwrap();
    let check = h
        .checks
        .iter()
        .find(|c| c.name == "follow secret")
        .expect("a follow check");
    assert!(
        !check.ok && check.detail.contains("read scope"),
        "{check:?}"
    );
    // No local copy of `secret` holds the primary's rows.
    let q = QuerySpec {
        dataset: "secret".into(),
        timeframe: "1m".into(),
        ..Default::default()
    };
    assert!(f.client().bars(&q).map(|b| b.rows == 0).unwrap_or(true));
    still_answers(&p, &f);
}

use ringfeed_daemon::follow::backoff::Backoff;

#[test]
fn a_follower_whose_primary_is_down_serves_what_it_has_and_catches_up_when_it_returns() {
    let mut p = Node::new(None, "");
    p.client().append("test", &bars(&["AAA"], 0, 300)).unwrap();
    let mut f = Node::follower(&p, &["test"], "");
    converge(&p, &f, 60);
    // Both stop; the follower starts while the primary is down.
    p.kill9();
    f.kill9();
    let before = f.log().len();
    f.start();
    let held = f
        .client()
        .bars(&QuerySpec {
            symbols: vec!["AAA".into()],
            ..q("1m")
        })
        .unwrap();
    assert_eq!(held.rows, 300, "the follower serves what it has");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = f.client().health().unwrap();
        let c = h.checks.iter().find(|c| c.name == "follow test").cloned();
        if c.as_ref()
            .is_some_and(|c| c.ok && c.detail.contains("not connected"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The primary returns with more rows: the follower catches up on its own.
    p.start();
    p.client()
        .append("test", &bars(&["AAA", "BBB"], 300, 60))
        .unwrap();
    converge(&p, &f, 60);
    let log = f.log()[before..].to_string();
    assert_eq!(
        log.matches("the primary is unreachable").count(),
        1,
        "logged once:\n{log}"
    );
    still_answers(&p, &f);
}

/// The follower's numbers for docs/benchmarks.md ("Followers"), in one run:
/// `cargo test --release -p ringfeed-daemon --test follow -- --ignored --nocapture follow_bench`.
/// Prints the primary's own ingest rate, a cold year's catch-up and a one-hour outage's
/// (rows/s), and the live lag p50/p99 in ms and rows, beside the primary's own
/// publish -> local subscriber latency measured on the same appends. Nothing is asserted
/// about time.
#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn follow_bench() {
    const SYMBOLS: usize = 3;
    // FOLLOW_BENCH_DAYS shortens the "year" for a quick run.
    let days: i64 = std::env::var("FOLLOW_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(365);
    let year = days * 1440;
    let names: Vec<String> = (0..SYMBOLS).map(|i| format!("S{i:03}")).collect();
    let syms: Vec<&str> = names.iter().map(String::as_str).collect();
    let p = Node::new(None, "");
    let mut c = p.client();
    // The primary's own ingest rate: a year of 1m bars, a month per append.
    let t = Instant::now();
    for m in 0..12 {
        let from = m * year / 12;
        c.append(
            "test",
            &bars_v(&syms, from, (m + 1) * year / 12 - from, 0.0),
        )
        .unwrap();
    }
    let rows = (year as usize * SYMBOLS) as f64;
    let ingest = rows / t.elapsed().as_secs_f64();
    println!("primary ingest (socket appends, a month each): {rows} rows at {ingest:.0} rows/s");
    // A cold year: a new follower, from its start until it has stored the history.
    let t = Instant::now();
    let mut f = Node::follower_of(&p, &["test"], "");
    if let Ok(v) = std::env::var("FOLLOW_BENCH_RUST_LOG") {
        f.env.push(("RUST_LOG".into(), v));
    }
    f.start();
    let caught_up = |f: &Node, want: f64| {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let s = f.client().stat().unwrap();
            let done = metric(&s, "ringfeed_follow_rows_total{dataset=\"test\"}").unwrap_or(0.0);
            if done >= want && metric(&s, "ringfeed_follow_lag_rows{dataset=\"test\"}") == Some(0.0)
            {
                return;
            }
            assert!(Instant::now() < deadline, "no catch-up: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    caught_up(&f, rows);
    let cold = rows / t.elapsed().as_secs_f64();
    println!("cold year catch-up (follower start to stored): {rows} rows at {cold:.0} rows/s ({:.2}x the primary's ingest)", cold / ingest);
    // The same with one subscription instead of the chunked backfill (the code before
    // it), in the same run.
    {
        let mut g = Node::follower_of(&p, &["test"], "");
        g.env = vec![("RINGFEED_FOLLOW_BACKFILL_ABOVE_SECS".into(), "never".into())];
        let t = Instant::now();
        g.start();
        caught_up(&g, rows);
        let plain = rows / t.elapsed().as_secs_f64();
        println!("cold year catch-up, one subscription (no backfill): {rows} rows at {plain:.0} rows/s ({:.2}x the primary's ingest; the backfill {:.2}x this)", plain / ingest, cold / plain);
    }
    // The caught-up year's write-down (the follower's own, or its start pass after the
    // kill) holds the store lock in chunks; live appends wait for it (seconds of lag in
    // run 1). The outage and the live lag are measured once it is over.
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = f.client().ready(Some("test")).unwrap();
        // Written down when at most the live day (and the one before it) is hot.
        let hot = r.datasets[0]
            .timeframes
            .iter()
            .find(|t| t.timeframe == "1m")
            .map_or(usize::MAX, |t| t.hot_days.len());
        if hot <= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower did not write the year down: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "(waited {:.1} s for the follower's write-down of the caught-up year)",
        t.elapsed().as_secs_f64()
    );
    // A one-hour outage of a feed of 1000 symbols: the follower is down while an hour
    // of minutes is appended, then catches up.
    let wide: Vec<String> = (0..1000).map(|i| format!("W{i:04}")).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    c.append("test", &bars_v(&wide, year, 1, 0.0)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    f.kill9();
    let t = Instant::now();
    for m in 1..=60 {
        c.append("test", &bars_v(&wide, year + m, 1, 0.0)).unwrap();
    }
    let hour = 60.0 * 1000.0;
    let hour_ingest = hour / t.elapsed().as_secs_f64();
    println!("primary ingest of that hour (60 appends of a minute of 1000 symbols): {hour_ingest:.0} rows/s");
    f.start();
    let t = Instant::now();
    caught_up(&f, hour);
    let took = t.elapsed().as_secs_f64();
    let outage = hour / took;
    println!("one-hour outage catch-up (1000 symbols, socket ready to stored): {hour} rows in {took:.2} s, {outage:.0} rows/s ({:.2}x the primary's ingest of the year, {:.2}x its ingest of the hour)", outage / ingest, outage / hour_ingest);
    if std::env::var_os("FOLLOW_BENCH_LOG").is_some() {
        let log = f.log();
        for l in log.lines().filter(|l| l.contains("follow::")) {
            println!("{l}");
        }
    }
    // The primary's own query of what the follower replayed (every symbol, the hour).
    let t = Instant::now();
    let hour_q = QuerySpec {
        start: Some(at(year - 1)),
        ..q("1m")
    };
    let got = c.bars(&hour_q).unwrap().rows;
    println!(
        "the primary's socket query of that history ({got} rows): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Live: one minute of SYMBOLS per append, every 5 ms; subscribers on the primary's
    // and on the follower's own 1m topics note when each minute arrives.
    let listen = |n: &Node| {
        let mut r = n
            .client()
            .subscribe("test", "1m", ringfeed_arrow::StartAt::Next)
            .unwrap();
        std::thread::spawn(move || {
            use arrow_array::cast::AsArray;
            let mut seen: std::collections::BTreeMap<i64, (Instant, usize)> = Default::default();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                match r.read(Duration::from_millis(100)) {
                    Ok(Some(b)) => {
                        let now = Instant::now();
                        let b = b.record_batch();
                        let ts = b
                            .column_by_name("ts")
                            .unwrap()
                            .as_primitive::<arrow_array::types::TimestampNanosecondType>();
                        for t in ts.values().iter() {
                            seen.entry((t - T0) / MIN).or_insert((now, 0)).1 += 1;
                        }
                        if seen.keys().next_back().is_some_and(|m| *m == 2 * year) {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            seen
        })
    };
    let (on_p, on_f) = (listen(&p), listen(&f));
    std::thread::sleep(Duration::from_millis(200));
    let live = 1000;
    let mut sent = Vec::new();
    for m in 0..live {
        let minute = year + 100 + m;
        let b = bars_v(&syms, minute, 1, 0.0);
        sent.push((minute, Instant::now()));
        c.append("test", &b).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    c.append("test", &bars_v(&["S000"], 2 * year, 1, 0.0))
        .unwrap(); // the end marker
    let (on_p, on_f) = (on_p.join().unwrap(), on_f.join().unwrap());
    let lat = |seen: &std::collections::BTreeMap<i64, (Instant, usize)>| {
        let mut ms: Vec<f64> = sent
            .iter()
            .filter_map(|(m, t)| {
                seen.get(m)
                    .map(|(r, _)| r.duration_since(*t).as_secs_f64() * 1e3)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        // Rows behind at each send: rows sent before it that had not arrived by then.
        let mut behind: Vec<usize> = sent
            .iter()
            .map(|(_, at)| {
                sent.iter()
                    .filter(|(m2, t2)| t2 < at && seen.get(m2).is_none_or(|(r, _)| r > at))
                    .count()
                    * SYMBOLS
            })
            .collect();
        behind.sort();
        let q = |v: f64| ms[((ms.len() - 1) as f64 * v) as usize];
        format!(
            "{} of {} minutes seen; p50 {:.3} ms, p99 {:.3} ms; rows behind p50 {}, p99 {}",
            ms.len(),
            sent.len(),
            q(0.5),
            q(0.99),
            behind[behind.len() / 2],
            behind[behind.len() * 99 / 100]
        )
    };
    println!(
        "live, append -> primary's own topic subscriber: {}",
        lat(&on_p)
    );
    println!(
        "live, append -> follower's topic subscriber:    {}",
        lat(&on_f)
    );
    // A removal on the primary reaching the live follower: ten minutes of every symbol
    // deleted; until the follower's query of them is empty.
    let gone = QuerySpec {
        symbols: vec!["S000".into()],
        start: Some(at(year + 100)),
        end: Some(at(year + 110)),
        ..q("1m")
    };
    assert!(f.client().bars(&gone).unwrap().rows > 0);
    let t = Instant::now();
    if std::env::var_os("FOLLOW_BENCH_LOG").is_some() {
        println!(
            "delete sent at {}",
            ringfeed_client::time::iso(ringfeed_client::time::now_ns())
        );
    }
    c.delete("test", None, at(year + 100), at(year + 110))
        .unwrap();
    let deleted = t.elapsed();
    while f.client().bars(&gone).unwrap().rows > 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", tail(&f.log()));
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "a delete on the primary -> gone on the live follower: {:.0} ms (the primary's delete call itself: {:.0} ms; the change-log poll is every 1 s)",
        t.elapsed().as_secs_f64() * 1e3,
        deleted.as_secs_f64() * 1e3
    );
    if std::env::var_os("FOLLOW_BENCH_LOG").is_some() {
        std::thread::sleep(Duration::from_secs(2));
        let log = f.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("follow::")).collect();
        println!("-- the follower's last log lines:");
        for l in lines[lines.len().saturating_sub(40)..]
            .iter()
            .filter(|l| !l.contains("chunk fetched"))
        {
            println!("{l}");
        }
    }
}

#[test]
fn a_follower_follows_over_tls_with_the_primarys_ca_and_not_without_it() {
    let Some(certs) = common::certs::test_certs() else {
        return;
    };
    let pem = |f: &str| certs.path().join(f);
    let p = Node::build(
        None,
        "",
        &format!(
            "[flight.tls]\ncert = {:?}\nkey = {:?}",
            pem("server.pem"),
            pem("server.key")
        ),
    );
    p.client().append("test", &bars(&["AAA"], 0, 90)).unwrap();
    let tls_url = format!("grpc+tls://127.0.0.1:{}", p.port);
    let follow = |ca: &str| {
        format!(
            "[follow]\nurl = {tls_url:?}\ntoken = \"{FOLLOWER}\"\ndatasets = [\"test\"]\ntls_domain = \"localhost\"\n{ca}"
        )
    };
    let f = Node::new(
        Some(&follow(&format!("tls_ca = {:?}\n", pem("ca.pem")))),
        "",
    );
    converge(&p, &f, 60);
    // Without the CA the primary's certificate is not trusted: nothing is followed, and
    // the follower says why while serving.
    let g = Node::new(Some(&follow("")), "");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !g.log().contains("the primary is unreachable") {
        assert!(Instant::now() < deadline, "{}", g.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        g.client()
            .bars(&q("1m"))
            .map(|b| b.rows == 0)
            .unwrap_or(true),
        "nothing came over an untrusted connection"
    );
    g.client()
        .ping()
        .expect("the untrusting follower still serves");
    still_answers(&p, &f);
}

#[test]
fn the_flags_follow_into_a_local_dataset_with_the_same_settings() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars(&["AAA", "BBB"], 0, 200))
        .unwrap();
    // A daemon that has its own `test` (the same settings), restarted with the flags.
    let mut f = Node::new(None, "");
    f.kill9();
    f.args = [
        "--follow",
        &p.url(),
        "--token",
        FOLLOWER,
        "--datasets",
        "test",
    ]
    .map(String::from)
    .to_vec();
    f.start();
    converge(&p, &f, 60);
    // `secret` is not followed (not named): local writes to it are still taken.
    f.client().append("secret", &bars(&["AAA"], 0, 1)).unwrap();
    let e = f
        .client()
        .append("test", &bars(&["AAA"], 0, 1))
        .unwrap_err();
    assert_eq!(server_kind(&e), "followed", "{e}");
    still_answers(&p, &f);
}

#[test]
fn without_a_list_every_dataset_the_token_reads_is_followed_and_no_other() {
    let p = Node::new(None, "");
    p.client().append("test", &bars(&["AAA"], 0, 100)).unwrap();
    p.client()
        .append("secret", &bars(&["AAA"], 0, 100))
        .unwrap();
    let f = Node::new(
        Some(&format!(
            "[follow]\nurl = {:?}\ntoken = \"{FOLLOWER}\"\n",
            p.url()
        )),
        "",
    );
    converge(&p, &f, 60);
    let listed = f.client().datasets().unwrap();
    assert!(listed.get("secret").is_none(), "{listed}");
    let e = f
        .client()
        .append("test", &bars(&["AAA"], 0, 1))
        .unwrap_err();
    assert_eq!(server_kind(&e), "followed", "{e}");
    still_answers(&p, &f);
}

/// The instant of minute `m` of the test bars.
fn at(m: i64) -> TimeSpec {
    TimeSpec::Nanos(T0 + m * MIN)
}

/// A follower's `ringfeed_follow_changes_applied_total`.
fn changes_applied(f: &Node) -> f64 {
    let stat = f.client().stat().unwrap();
    metric(
        &stat,
        "ringfeed_follow_changes_applied_total{dataset=\"test\"}",
    )
    .unwrap_or(0.0)
}

/// Deletes, a trim and a correction below every symbol's newest bar, on `p`.
fn change_history(p: &Node, bump: f64) {
    let mut c = p.client();
    // A correction of bars of the first day (below every symbol's newest bar).
    c.append("test", &bars_v(&["BBB"], 100, 5, bump)).unwrap();
    // A delete of an hour of one symbol, and of ten minutes of every symbol.
    c.delete("test", Some("AAA"), at(600), at(660)).unwrap();
    c.delete("test", None, at(2000), at(2010)).unwrap();
    // A trim of CCC's first half day.
    c.trim("test", Some("CCC"), at(720)).unwrap();
}

#[test]
fn deletes_trims_and_corrections_on_the_primary_reach_a_live_follower() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 0, 3 * 1440, 0.0))
        .unwrap();
    let f = Node::follower(&p, &["test"], "");
    converge(&p, &f, 120);
    change_history(&p, 7.0);
    converge(&p, &f, 60);
    assert!(
        changes_applied(&f) >= 3.0,
        "the removals came from the change log: {}",
        tail(&f.log())
    );
    // Live appends still follow after the resubscriptions.
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 3 * 1440, 5, 0.0))
        .unwrap();
    converge(&p, &f, 60);
    still_answers(&p, &f);
}

#[test]
fn what_the_primary_changed_while_the_follower_was_down_reaches_it_through_kill_9s() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 0, 3 * 1440, 0.0))
        .unwrap();
    let mut f = Node::follower(&p, &["test"], "");
    converge(&p, &f, 120);
    f.kill9();
    change_history(&p, 3.0);
    // And new rows, so the follower resumes too.
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 3 * 1440, 60, 0.0))
        .unwrap();
    // kill -9 while it applies the log and catches up, at growing delays.
    for ms in [20, 80, 250, 600] {
        f.start();
        std::thread::sleep(Duration::from_millis(ms));
        f.kill9();
    }
    f.start();
    converge(&p, &f, 120);
    // The metric counts per process; the log shows the entries were applied (once, or
    // again after a kill).
    assert!(
        f.log().contains("applied the primary's change log"),
        "{}",
        tail(&f.log())
    );
    still_answers(&p, &f);
}

#[test]
fn a_chain_of_three_applies_the_primarys_deletes_trims_and_corrections() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars_v(&["AAA", "BBB", "CCC"], 0, 3 * 1440, 0.0))
        .unwrap();
    let b = Node::follower(&p, &["test"], "");
    let c = Node::follower(&b, &["test"], "");
    converge(&p, &c, 120);
    change_history(&p, 5.0);
    converge(&p, &b, 60);
    converge(&p, &c, 60);
    still_answers(&p, &c);
}

#[test]
fn a_dataset_dropped_and_made_again_on_the_primary_is_copied_again() {
    let p = Node::new(None, "");
    p.client()
        .append("test", &bars_v(&["AAA", "BBB"], 0, 2 * 1440, 0.0))
        .unwrap();
    let mut f = Node::follower(&p, &["test"], "");
    converge(&p, &f, 120);
    f.kill9();
    let mut c = p.client();
    c.drop_dataset("test", true).unwrap();
    c.create_dataset(&ringfeed_client::DatasetSpec {
        dataset: "test".into(),
        base: "1m".into(),
        rollups: Some(vec!["5m".into(), "1h".into()]),
        fsync: Some("never".into()),
        ..Default::default()
    })
    .unwrap();
    // Other rows, some at the same instants with other prices, fewer of them.
    c.append("test", &bars_v(&["AAA", "DDD"], 1440, 600, 2.5))
        .unwrap();
    f.start();
    converge(&p, &f, 120);
    assert!(
        f.log().contains("change log of this dataset is a new one"),
        "{}",
        tail(&f.log())
    );
    still_answers(&p, &f);
}
