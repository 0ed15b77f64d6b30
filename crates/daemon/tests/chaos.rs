//! The chaos suite (issue 12): the real `ringfeedd` against an attacker and
//! a power cut. Cases: a socket fuzzer (junk, well-framed bad requests,
//! mutated valid IPC appends), slow and idle clients, thousands of distinct
//! queries under a low RLIMIT_NOFILE, concurrent first subscribers, arena
//! truncation and scribbling by a reader process, WAL bit flips, ENOSPC on a
//! small tmpfs (root only), and kill -9 loops with a ledger of acknowledged
//! rows. Every case ends with the daemon serving a real query that returns
//! every acknowledged row. Each prints what it did (`--nocapture` shows it),
//! so the closing figures of the issue come from here.

use arrow_array::RecordBatch;
use ringfeed_arrow::StartAt;
use ringfeed_client::protocol::{Response, TimeSpec};
use ringfeed_client::Client;
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// xorshift64*: seeded, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Acknowledged (symbol, minute) keys of the "test" dataset.
#[derive(Default)]
struct Ledger(BTreeSet<(String, i64)>);

impl Ledger {
    fn append(&mut self, c: &mut Client, symbol: &str, from: i64, n: i64) -> bool {
        match c.append("test", &bars(&[symbol], from, n)) {
            Ok(rows) => {
                assert_eq!(rows, n as u64);
                self.0
                    .extend((from..from + n).map(|m| (symbol.to_string(), m)));
                true
            }
            Err(_) => false,
        }
    }

    /// The daemon answers a real query holding exactly the acknowledged rows
    /// (and a fresh append still works).
    fn check(&mut self, d: &Daemon, case: &str) {
        let mut c = d.client();
        let probe = format!("P{}", self.0.len());
        assert!(
            self.append(&mut c, &probe, 0, 3),
            "{case}: an append works afterwards"
        );
        let b = c.bars(&q("1m")).unwrap();
        let mut got = BTreeSet::new();
        for batch in &b.batches {
            let sym = arrow_cast::cast(
                batch.column_by_name("symbol").unwrap(),
                &arrow_schema::DataType::Utf8,
            )
            .unwrap();
            let sym = arrow_array::cast::AsArray::as_string::<i32>(&sym);
            let ts = arrow_array::cast::AsArray::as_primitive::<
                arrow_array::types::TimestampNanosecondType,
            >(batch.column_by_name("ts").unwrap());
            for i in 0..batch.num_rows() {
                got.insert((sym.value(i).to_string(), (ts.value(i) - T0) / MIN));
            }
        }
        let lost: Vec<_> = self.0.difference(&got).take(5).collect();
        assert!(
            lost.is_empty(),
            "{case}: {} acknowledged rows lost, e.g. {lost:?}",
            self.0.difference(&got).count()
        );
        println!(
            "chaos {case}: daemon serving; {} acknowledged rows present, 0 lost",
            self.0.len()
        );
    }
}

/// Sends one frame and reads the answer (None: the connection was closed).
fn exchange(d: &Daemon, bytes: &[u8]) -> Option<Response> {
    let mut s = UnixStream::connect(&d.socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(bytes).ok()?;
    let mut r = std::io::BufReader::new(s);
    ringfeed_client::protocol::read_frame::<_, Response>(&mut r, 0)
        .ok()
        .map(|(resp, _)| resp)
}

fn ipc_stream(b: &RecordBatch) -> Vec<u8> {
    ipc(std::slice::from_ref(b))
}

#[test]
fn socket_fuzzer_junk_bad_frames_and_mutated_appends() {
    let d = Daemon::start();
    let mut ledger = Ledger::default();
    let mut c = d.client();
    assert!(ledger.append(&mut c, "A", 0, 30));
    let mut rng = Rng(0x5eed_0001);
    let mut cases = 0u32;

    // Junk: random bytes, random lengths.
    for _ in 0..100 {
        let n = 1 + rng.below(300) as usize;
        let junk = rng.bytes(n);
        let _ = exchange(&d, &junk);
        cases += 1;
    }
    // Well-framed but wrong: valid JSON of the wrong shape, wrong types,
    // extreme values, hostile names.
    let headers: Vec<String> = vec![
        r#"{}"#.into(),
        r#"{"op":"nope"}"#.into(),
        r#"{"op":"query"}"#.into(),
        r#"{"op":"query","dataset":5,"timeframe":[]}"#.into(),
        r#"{"op":"query","dataset":"test","timeframe":"1000000w"}"#.into(),
        r#"{"op":"query","dataset":"test","timeframe":"1m","start":{"ns":-9223372036854775808}}"#.into(),
        r#"{"op":"query","dataset":"test","timeframe":"1m","end":-9223372036854775808}"#.into(),
        r#"{"op":"query","dataset":"test","timeframe":"1m","start":9223372036854775807,"end":9223372036854775807}"#.into(),
        r#"{"op":"query","dataset":"test","timeframe":"1m","limit":18446744073709551615}"#.into(),
        r#"{"op":"query","dataset":"../../etc","timeframe":"1m"}"#.into(),
        r#"{"op":"subscribe","dataset":"test","timeframe":"99999999999999d"}"#.into(),
        r#"{"op":"release","arena":"../../../dev/null"}"#.into(),
        r#"{"op":"delete","dataset":"test","start":"x","end":"y"}"#.into(),
        r#"{"op":"create_dataset","dataset":"../x","base":"1m"}"#.into(),
        r#"{"op":"create_dataset","dataset":"big","base":"1000000w"}"#.into(),
        r#"{"op":"replay","dataset":"test","timeframe":"1m","start":-1}"#.into(),
        r#"{"op":"write_down","dataset":"test","before":"9999-99-99"}"#.into(),
        format!(r#"{{"op":"query","dataset":"{}","timeframe":"1m"}}"#, "x".repeat(100_000)),
    ];
    for h in &headers {
        let resp = exchange(&d, &frame(h.as_bytes(), &[])).expect("answered, not dropped");
        // Answered with a reason, or served if it is legal after all; never
        // a failure inside the daemon.
        let kind = resp.error.map(|e| e.kind).unwrap_or_default();
        assert_ne!(kind, "internal", "{h}: the daemon failed on it");
        cases += 1;
    }
    // Mutated valid appends: 1-4 random bytes of a valid IPC stream changed.
    // Each is answered (ok or a clear error), never a dropped connection.
    let valid = ipc_stream(&bars(&["F"], 0, 20));
    let append = br#"{"op":"append","dataset":"fuzz"}"#;
    let (mut accepted, mut refused) = (0, 0);
    let mut fc = d.client();
    fc.create_dataset(&ringfeed_client::DatasetSpec {
        dataset: "fuzz".into(),
        base: "1m".into(),
        ..Default::default()
    })
    .unwrap();
    for _ in 0..300 {
        let mut p = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(p.len() as u64) as usize;
            p[at] = rng.next() as u8;
        }
        let resp = exchange(&d, &frame(append, &p)).expect("a mutated append is answered");
        let kind = resp
            .error
            .as_ref()
            .map(|e| e.kind.clone())
            .unwrap_or_default();
        assert_ne!(kind, "internal", "a mutated append made the daemon fail");
        if resp.ok {
            accepted += 1
        } else {
            refused += 1
        }
        cases += 1;
    }
    // The 280-byte bomb: 2^33 rows of Null-typed ts/symbol.
    let bomb = null_stream(1 << 33);
    let resp = exchange(&d, &frame(br#"{"op":"append","dataset":"test"}"#, &bomb))
        .expect("the bomb is answered");
    assert!(!resp.ok, "the bomb is refused");
    println!(
        "chaos fuzzer: {cases} hostile frames ({accepted} mutated appends accepted as valid data, {refused} refused)"
    );
    ledger.check(&d, "fuzzer");
}

#[test]
fn slow_idle_and_vanishing_clients() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "max_connections = 16\nrequest_timeout = \"1s\"\nidle_timeout = \"2s\"",
    );
    let mut ledger = Ledger::default();
    let mut c = d.client();
    assert!(ledger.append(&mut c, "A", 0, 30));
    let payload = ipc_stream(&bars(&["V"], 0, 1000));
    let head = frame(br#"{"op":"append","dataset":"test"}"#, &payload);
    let mut held = vec![];
    for i in 0..48 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        match i % 4 {
            0 => {}                                             // idle
            1 => s.write_all(&head[..3]).unwrap(),              // half a length
            2 => s.write_all(&head[..head.len() / 2]).unwrap(), // half a payload
            _ => {
                // A whole request, then vanish before the answer.
                s.write_all(&head).unwrap();
                drop(s);
                continue;
            }
        }
        held.push(s);
    }
    // Meanwhile real clients are served.
    for m in 0..5 {
        let mut c = d.client();
        assert!(ledger.append(&mut c, "B", m * 10, 10));
    }
    drop(held);
    // The vanished clients' appends may or may not have landed (never
    // acknowledged); the acknowledged ones must all be there.
    ledger.check(&d, "slow-clients");
}

/// Open descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn thousands_of_distinct_queries_under_a_low_nofile_limit() {
    let d = Daemon::start();
    let pid = d.child.id();
    let limit = 256;
    rustix::process::prlimit(
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .unwrap();
    let mut ledger = Ledger::default();
    let mut c = d.client();
    assert!(ledger.append(&mut c, "A", 0, 600));
    let mut max_fds = 0;
    let n = 3000;
    for i in 0..n {
        // A dashboard whose end time moves: every query is distinct.
        let mut spec = q("1m");
        spec.end = Some(TimeSpec::Nanos(T0 + (60 + i % 500) * MIN + i));
        let b = c.bars(&spec).unwrap_or_else(|e| panic!("query {i}: {e}"));
        assert!(b.rows > 0);
        if i % 100 == 0 {
            max_fds = max_fds.max(fds(pid));
        }
    }
    max_fds = max_fds.max(fds(pid));
    assert!(
        (max_fds as u64) < limit,
        "{max_fds} descriptors open under a limit of {limit}"
    );
    // New connections are still answered.
    for _ in 0..20 {
        d.client().ping().unwrap();
    }
    println!("chaos nofile: {n} distinct queries under RLIMIT_NOFILE {limit}; at most {max_fds} fds open");
    ledger.check(&d, "nofile");
}

#[test]
fn concurrent_first_subscribers_of_many_topics() {
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        "[datasets.more]\nbase = \"1m\"\nrollups = [\"2m\", \"3m\", \"5m\", \"10m\", \"15m\", \"30m\", \"1h\", \"2h\", \"4h\", \"1d\"]\n",
    );
    let tfs = [
        "1m", "2m", "3m", "5m", "10m", "15m", "30m", "1h", "2h", "4h", "1d",
    ];
    let mut ledger = Ledger::default();
    let mut c = d.client();
    assert!(ledger.append(&mut c, "A", 0, 10));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (barrier, socket) = (barrier.clone(), socket.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(Some(&socket)).unwrap();
                barrier.wait();
                tfs.iter()
                    .map(|tf| c.subscribe("more", tf, StartAt::Next).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut readers: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // Every topic has its file, and a publish reaches every reader.
    let mut mc = d.client();
    mc.append("more", &bars(&["M"], 0, 1)).unwrap();
    for r in &mut readers {
        let got = r.read(Duration::from_secs(10)).unwrap();
        assert!(got.is_some(), "every subscriber sees the publish");
    }
    println!(
        "chaos subscribers: 8 clients x {} topics at once",
        tfs.len()
    );
    ledger.check(&d, "subscribers");
}

/// The arena files of one topic: the ring itself and what readers may write.
fn topic_files(d: &Daemon, topic_suffix: &str) -> Vec<std::path::PathBuf> {
    d.arenas()
        .into_iter()
        .filter(|n| n.contains(topic_suffix))
        .map(|n| d.shm.join(n))
        .collect()
}

#[test]
fn a_reader_that_truncates_or_scribbles_cannot_kill_or_freeze_a_topic() {
    let d = Daemon::start();
    let mut ledger = Ledger::default();
    let mut c = d.client();
    assert!(ledger.append(&mut c, "A", 0, 10));
    let mut honest = c.subscribe("test", "1m", StartAt::Next).unwrap();
    let files = topic_files(&d, "test.1m");
    assert!(!files.is_empty(), "topic files in {:?}", d.arenas());
    let mut rng = Rng(0x5eed_0002);
    let mut scribbled = 0;
    let mut truncated = 0;
    for path in &files {
        // Whatever a same-user process may open for writing, it scribbles on
        // and then cuts short. A file it may not open is safe from it.
        let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) else {
            println!("chaos scribble: {path:?} cannot be opened for writing (safe)");
            continue;
        };
        let len = f.metadata().unwrap().len();
        if is_root() && !path.to_string_lossy().ends_with("@readers") {
            // Root passes every file mode: the ring itself is protected by
            // its mode against other processes of the user, not against root.
            println!("chaos scribble: skipping {path:?} (root ignores its 0400 mode)");
            continue;
        }
        use std::io::Seek;
        for _ in 0..64 {
            let at = rng.below(len);
            f.seek(std::io::SeekFrom::Start(at)).unwrap();
            f.write_all(&rng.bytes(8)).unwrap();
            scribbled += 1;
        }
        f.set_len(len / 3).unwrap();
        truncated += 1;
    }
    // The daemon still publishes; appends are acknowledged and stored.
    for m in 0..5 {
        assert!(
            ledger.append(&mut c, "B", 100 + m, 1),
            "append {m} after scribbling"
        );
    }
    let _ = honest.read(Duration::from_millis(100));
    // A new subscriber gets a working topic.
    let mut fresh = d.client().subscribe("test", "1m", StartAt::Next).unwrap();
    assert!(ledger.append(&mut c, "C", 0, 1));
    assert!(
        fresh.read(Duration::from_secs(10)).unwrap().is_some(),
        "a publish reaches a new subscriber"
    );
    println!("chaos scribble: {scribbled} scribbles, {truncated} files truncated");
    ledger.check(&d, "scribble");
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn wal_bit_flips_lose_only_the_damaged_frames() {
    let mut d = Daemon::start();
    let mut ledger = Ledger::default();
    let mut c = d.client();
    for m in 0..50 {
        assert!(ledger.append(&mut c, "A", m, 1));
    }
    drop(c);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let wal = d.dir.path().join("data/_hot/test/2021-01-01.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    // One bit early in the file: the frame it hits is quarantined, the rest kept.
    let at = bytes.len() / 10;
    bytes[at] ^= 0x10;
    std::fs::write(&wal, &bytes).unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = Daemon::start_in(dir);
    let b = d.client().bars(&q("1m")).unwrap();
    assert!(
        b.rows >= 48,
        "one flipped bit lost {} of 50 rows",
        50 - b.rows
    );
    let quarantine = d.dir.path().join("data/_quarantine");
    assert!(quarantine.exists(), "the damaged bytes are kept");
    println!(
        "chaos wal: one bit flipped at byte {at}: {} of 50 rows kept, damage quarantined",
        b.rows
    );
    // The damaged frame's rows are the only ones not there: drop them from
    // the ledger by asking which are present, then check the rest as usual.
    let present: BTreeSet<i64> = (0..50)
        .filter(|m| {
            let mut spec = q("1m");
            spec.start = Some(TimeSpec::Nanos(T0 + m * MIN));
            spec.end = Some(TimeSpec::Nanos(T0 + (m + 1) * MIN));
            d.client().bars(&spec).unwrap().rows == 1
        })
        .collect();
    assert!(
        50 - present.len() <= 2,
        "at most the hit frame's rows are lost"
    );
    ledger.0.retain(|(_, m)| present.contains(m));
    ledger.check(&d, "wal-bit-flip");
}

#[test]
fn kill_9_loop_keeps_every_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir);
    let mut ledger = Ledger::default();
    let cycles = 12;
    let mut rng = Rng(0x5eed_0003);
    let mut next = 0i64;
    for cycle in 0..cycles {
        let socket = d.socket.clone();
        let start = next;
        // An appender that records what was acknowledged, until cut off.
        let appender = std::thread::spawn(move || {
            let mut acked = vec![];
            let Ok(mut c) = Client::connect(Some(&socket)) else {
                return acked;
            };
            let mut m = start;
            while m < start + 500 {
                match c.append("test", &bars(&["K"], m, 5)) {
                    Ok(_) => acked.push((m, 5)),
                    Err(_) => break,
                }
                m += 5;
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        for (m, n) in appender.join().unwrap() {
            ledger.0.extend((m..m + n).map(|m| ("K".to_string(), m)));
        }
        next = start + 500;
        let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        drop(d);
        d = Daemon::start_in(dir);
        if cycle % 4 == 3 {
            ledger.check(&d, &format!("kill-9 cycle {cycle}"));
        }
    }
    ledger.check(&d, &format!("kill-9 x{cycles}"));
}

#[test]
fn a_full_disk_refuses_appends_keeps_acknowledged_rows_and_recovers() {
    if !is_root() {
        println!("chaos enospc: SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&data)
        .status();
    if !matches!(mounted, Ok(s) if s.success()) {
        println!("chaos enospc: SKIPPED: mount -t tmpfs failed ({mounted:?})");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(data.clone());
    let mut d = Daemon::start_in(dir);
    let mut ledger = Ledger::default();
    let mut c = d.client();
    let (mut ok, mut refused) = (0, 0);
    let mut m = 0;
    let started = Instant::now();
    while refused < 5 && started.elapsed() < Duration::from_secs(120) {
        if ledger.append(&mut c, "E", m, 200) {
            ok += 1
        } else {
            refused += 1
        }
        m += 200;
    }
    assert!(refused > 0, "the 3 MB disk filled up");
    // Reads still work on the full disk.
    let rows = c.bars(&q("1m")).unwrap().rows;
    assert!(rows as usize >= ledger.0.len());
    // Free space (drop a filler-free path: restart after removing nothing is
    // not possible, so grow the tmpfs) and restart: every acknowledged row.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(grown.success());
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = Daemon::start_in(dir);
    println!("chaos enospc: {ok} appends acknowledged, {refused} refused on a full 3 MB tmpfs");
    ledger.check(&d, "enospc");
    // The refused appends of E were never acknowledged and must not appear
    // as partial data either.
    let mut spec = q("1m");
    spec.symbols = vec!["E".into()];
    let rows = d.client().bars(&spec).unwrap().rows;
    assert_eq!(
        rows as usize,
        ledger.0.iter().filter(|(s, _)| s == "E").count(),
        "no refused append landed"
    );
}
