//! Helpers for tests that spawn `rf-xtest`: unique arena names, child
//! processes under a deadline, a watchdog for the test body, and a parser for
//! `subscribe`'s JSON line.

use ringfeed_arrow::{Reader, StartAt};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const RF_XTEST: &str = env!("CARGO_BIN_EXE_rf-xtest");

/// Generous deadline for anything that should take well under a second: it
/// only exists so a hang fails with a message instead of stalling the suite.
pub const HANG: Duration = Duration::from_secs(60);

/// A name no other test (or test run) uses: tag, pid, counter.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "xt-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the arena on drop, whether the test passed or not.
pub struct ArenaGuard(pub String);

impl Drop for ArenaGuard {
    fn drop(&mut self) {
        let _ = ringfeed_shm::remove(&self.0);
    }
}

/// Runs `body` on its own thread and fails the test if it has not finished
/// within `limit`. Panics inside `body` propagate unchanged.
pub fn watchdog<T: Send + 'static>(
    what: &str,
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(format!("body: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(());
            r
        })
        .expect("spawn test body");
    match rx.recv_timeout(limit) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match h.join().expect("body thread") {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("watchdog: {what} did not finish within {limit:?}; something hangs (children die with this process)")
        }
    }
}

/// Polls `cond` every few ms until it holds; panics after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "watchdog: still waiting after {limit:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens a reader, retrying while the arena does not exist yet.
pub fn open_reader(name: &str, start: StartAt) -> Reader {
    let deadline = Instant::now() + HANG;
    loop {
        match Reader::open(name, start) {
            Ok(r) => return r,
            Err(ringfeed_arrow::OpenError::Ring(ringfeed_shm::OpenError::NotFound { .. }))
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("opening reader on {name}: {e}"),
        }
    }
}

/// A child `rf-xtest` process. Killed (SIGKILL) and reaped on drop if still
/// running; it also gets SIGKILL if the thread that spawned it exits first
/// (`PR_SET_PDEATHSIG`), so a failed or hung test leaves no orphans.
pub struct Proc {
    what: String,
    child: Child,
    lines: Receiver<String>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
}

/// How a child ended.
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Proc {
    /// Spawns `rf-xtest ARGS` (split on whitespace; arena names have none)
    /// with stdout and stderr captured.
    pub fn spawn(args: &str) -> Proc {
        let what = format!("rf-xtest {args}");
        let mut cmd = Command::new(RF_XTEST);
        cmd.args(args.split_whitespace())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the prctl syscall, which is async-signal-safe and touches no
        // memory shared with the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let stdout_thread = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Proc {
            what,
            child,
            lines,
            stdout_thread: Some(stdout_thread),
            stderr_thread: Some(stderr_thread),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the next stdout line; panics (with the child's stderr if it
    /// died) if none comes within `limit`.
    pub fn next_line(&mut self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(l) => l,
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self
                    .stderr_thread
                    .take()
                    .map(|h| h.join().unwrap_or_default());
                panic!("watchdog: no stdout line from `{}` within {limit:?} ({e:?}); stderr: {stderr:?}", self.what)
            }
        }
    }

    /// Waits for the child to exit; kills it and panics after `limit`.
    pub fn wait(mut self, limit: Duration) -> Exit {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self
                        .stderr_thread
                        .take()
                        .map(|h| h.join().unwrap_or_default());
                    panic!("watchdog: `{}` still running after {limit:?}; killed it. stderr: {stderr:?}", self.what);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        self.collect(status)
    }

    /// SIGKILLs the child and reaps it (so its OFD locks are gone on return).
    pub fn kill9(mut self) -> Exit {
        self.child.kill().expect("SIGKILL child");
        let status = self.child.wait().expect("reap child");
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Exit {
        if let Some(h) = self.stdout_thread.take() {
            let _ = h.join();
        }
        let stdout = self.lines.try_iter().collect();
        let stderr = self
            .stderr_thread
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Exit {
            status,
            stdout,
            stderr,
        }
    }

    /// Waits for a `subscribe` child and parses its JSON line.
    pub fn report(self, limit: Duration) -> (SubReport, Exit) {
        let what = self.what.clone();
        let exit = self.wait(limit);
        let line = exit.stdout.last().unwrap_or_else(|| {
            panic!(
                "`{what}` printed nothing; status {}, stderr: {}",
                exit.status, exit.stderr
            )
        });
        let report =
            SubReport::parse(line).unwrap_or_else(|e| panic!("`{what}` printed {line:?}: {e}"));
        (report, exit)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The JSON line `rf-xtest subscribe` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct SubReport {
    pub batches: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub missed: u64,
    pub zero_copy: bool,
    pub verified: bool,
    pub error: Option<String>,
}

impl SubReport {
    /// Parses the flat JSON object (numbers, booleans, null, simple strings).
    pub fn parse(line: &str) -> Result<Self, String> {
        let body = line
            .trim()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or("not a JSON object")?;
        let mut fields: HashMap<String, String> = HashMap::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (key, after) = parse_str(rest.trim_start())?;
            let after = after
                .trim_start()
                .strip_prefix(':')
                .ok_or("missing ':'")?
                .trim_start();
            let (value, after) = if after.starts_with('"') {
                parse_str(after)?
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            fields.insert(key, value);
            rest = after
                .trim_start()
                .strip_prefix(',')
                .unwrap_or(after)
                .trim_start();
        }
        let get = |k: &str| fields.get(k).cloned().ok_or(format!("missing field {k:?}"));
        let num = |k: &str| get(k)?.parse::<u64>().map_err(|e| format!("{k}: {e}"));
        let opt = |k: &str| match get(k)?.as_str() {
            "null" => Ok(None),
            v => v.parse::<u64>().map(Some).map_err(|e| format!("{k}: {e}")),
        };
        let boolean = |k: &str| match get(k)?.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(format!("{k}: not a bool: {v}")),
        };
        Ok(SubReport {
            batches: num("batches")?,
            first_seq: opt("first_seq")?,
            last_seq: opt("last_seq")?,
            missed: num("missed")?,
            zero_copy: boolean("zero_copy")?,
            verified: boolean("verified")?,
            error: match get("error")?.as_str() {
                "null" => None,
                e => Some(e.to_string()),
            },
        })
    }
}

/// Parses a JSON string literal at the start of `s`; returns it and the rest.
fn parse_str(s: &str) -> Result<(String, &str), String> {
    let s = s.strip_prefix('"').ok_or("expected a string")?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let hex: String = (0..4)
                        .filter_map(|_| chars.next().map(|(_, c)| c))
                        .collect();
                    let v = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                Some(c) => out.push(c),
                None => return Err("dangling escape".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[test]
fn sub_report_parses_both_shapes() {
    let ok = SubReport::parse(
        r#"{"batches":3,"first_seq":1,"last_seq":3,"missed":0,"zero_copy":true,"verified":true,"error":null}"#,
    )
    .unwrap();
    assert_eq!(ok.batches, 3);
    assert_eq!(ok.first_seq, Some(1));
    assert!(ok.verified && ok.zero_copy && ok.error.is_none());
    let bad = SubReport::parse(
        r#"{"batches":0,"first_seq":null,"last_seq":null,"missed":2,"zero_copy":true,"verified":false,"error":"a \"b\", c"}"#,
    )
    .unwrap();
    assert_eq!(bad.first_seq, None);
    assert_eq!(bad.missed, 2);
    assert_eq!(bad.error.as_deref(), Some(r#"a "b", c"#));
}
