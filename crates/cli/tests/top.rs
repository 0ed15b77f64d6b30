//! `ringfeed top`, run for real: in a detached tmux session (send-keys,
//! capture-pane) against rings this test writes and reads, and `--once`
//! against a real `ringfeed serve` (topics named beside their arenas).
//!
//! Every test shares one private shm directory: the library reads
//! RINGFEED_SHM_DIR from the environment of this (multi-threaded) test process.

mod common;

use ringfeed_shm::{RingOptions, RingReader, RingWriter, StartAt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long any one expected screen may take to appear before the test fails
/// with the last screen (a watchdog, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

/// Removes the shared directory when the test process exits (a static is
/// never dropped).
extern "C" fn remove_shm_dir() {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir_all(d.path());
    }
}

/// The shared shm directory (set once for the whole process).
fn shm() -> &'static Path {
    DIR.get_or_init(|| {
        let d = tempfile::Builder::new()
            .prefix("rf-top-test")
            .tempdir()
            .unwrap();
        std::env::set_var("RINGFEED_SHM_DIR", d.path());
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as
        // atexit requires; it only touches the OnceLock, initialised by now.
        unsafe { libc::atexit(remove_shm_dir) };
        d
    })
    .path()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A private tmux server (its own socket) with one detached 140x30 session
/// running `sh`; killed when dropped, and with it anything still running in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(socket_dir: &Path) -> Tmux {
        let t = Tmux {
            socket: socket_dir
                .join(unique("tmux"))
                .to_string_lossy()
                .into_owned(),
        };
        let out = Command::new("tmux")
            .args(["-u", "-S", &t.socket, "-f", "/dev/null"])
            .args(["new-session", "-d", "-s", "top", "-x", "140", "-y", "30"])
            .arg("env PS1='rf-shell$ ' /bin/sh")
            .env("RINGFEED_SHM_DIR", shm())
            // No daemon: auto-detection must find nothing.
            .env("RINGFEED_SOCKET", shm().join("no-daemon.sock"))
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-u", "-S", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn type_line(&self, line: &str) {
        self.keys(&["-l", line]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }

    fn current_command(&self) -> String {
        self.cmd(&[
            "display-message",
            "-p",
            "-t",
            "top",
            "#{pane_current_command}",
        ])
        .trim()
        .to_string()
    }

    /// Waits until `ok(screen)` holds; fails with the last screen after [`PATIENCE`].
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The cells of the row of ring `name` (cells are single words), if shown.
fn row<'a>(screen: &'a str, name: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.first() == Some(&name))
}

/// Line index of ring `name` on the screen.
fn line_of(screen: &str, name: &str) -> Option<usize> {
    screen
        .lines()
        .position(|l| l.split_whitespace().next() == Some(name))
}

/// A ring with a thread publishing a 100-byte batch every 2 ms until dropped.
struct Publisher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    fn start(name: &str) -> Publisher {
        let mut w = RingWriter::create(name, &RingOptions::default(), b"m").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                w.publish(&[7u8; 100], 1, 0).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Publisher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ringfeed_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringfeed")
}

#[test]
fn top_in_tmux_shows_rates_readers_and_leases_sorts_and_quits() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    shm(); // before any ring is made: the library reads the variable
    let live = unique("live");
    let idle = unique("idle"); // sorts before "live" by name
    let _pub = Publisher::start(&live);
    let mut quiet = RingWriter::create(&idle, &RingOptions::default(), b"m").unwrap();
    quiet.publish(b"once", 1, 0).unwrap();

    let t = Tmux::start(shm());
    t.wait_for("the shell prompt", |s| s.contains("rf-shell$"));
    t.type_line(&format!("{} top --interval 200", ringfeed_bin()));

    // The live ring writes: a non-zero rate, no reader yet.
    let s = t.wait_for("a non-zero msgs/s for the live ring", |s| {
        row(s, &live).is_some_and(|c| c.len() == 9 && c[2].parse::<f64>().is_ok_and(|v| v > 0.0))
    });
    let c = row(&s, &live).unwrap();
    assert_eq!(c[1], "-", "not a daemon topic: {c:?}");
    assert!(c[3].parse::<f64>().unwrap() > 0.0, "MB/s: {c:?}");
    assert_eq!((c[4], c[6], c[7], c[8]), ("0", "0", "-", "alive"), "{c:?}");
    assert!(s.contains("sort: name, A-Z") && s.contains("NAME▲"), "{s}");
    let i = row(&s, &idle).unwrap();
    assert_eq!(i[2], "0.0", "the idle ring publishes nothing: {i:?}");
    assert!(line_of(&s, &idle) < line_of(&s, &live), "name order:\n{s}");

    // A reader attaches and holds a batch: 1 reader, 1 lease with an age.
    let mut r = RingReader::open(&live, StartAt::Latest).unwrap();
    let held = r.read(Duration::from_secs(5)).unwrap().expect("a batch");
    let s = t.wait_for("one reader holding one lease", |s| {
        row(s, &live).is_some_and(|c| c.len() == 9 && c[4] == "1" && c[6] == "1" && c[7] != "-")
    });
    assert!(row(&s, &idle).is_some_and(|c| c[4] == "0"), "{s}");

    // `s` cycles the sort column: topic, then msgs/s (highest first), which
    // puts the live ring above the idle one; `r` reverses it.
    t.keys(&["s"]);
    t.wait_for("sort by topic", |s| {
        s.contains("sort: topic, A-Z") && s.contains("TOPIC▲")
    });
    t.keys(&["s"]);
    let s = t.wait_for("sort by msgs/s", |s| {
        s.contains("sort: msgs, highest first") && s.contains("MSGS/S▼")
    });
    assert!(line_of(&s, &live) < line_of(&s, &idle), "msgs order:\n{s}");
    t.keys(&["r"]);
    let s = t.wait_for("reversed sort", |s| s.contains("sort: msgs, lowest first"));
    assert!(line_of(&s, &idle) < line_of(&s, &live), "reversed:\n{s}");

    // The writer of the idle ring dies: GONE.
    quiet.simulate_death();
    t.wait_for("the idle ring's writer gone", |s| {
        row(s, &idle).is_some_and(|c| c.last() == Some(&"GONE"))
    });

    // `q` quits: the shell is back in the foreground, the alternate screen is
    // gone, and top exited 0.
    t.keys(&["q"]);
    t.wait_for("top to leave the screen", |s| !s.contains("MSGS/S"));
    let deadline = Instant::now() + PATIENCE;
    while t.current_command() != "sh" {
        assert!(
            Instant::now() < deadline,
            "top still runs: {}",
            t.current_command()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.type_line("echo top-exit=$?");
    t.wait_for("top's exit status", |s| s.contains("top-exit=0"));
    drop(held);
    drop(r);
    let _ = ringfeed_shm::remove(&idle);
}

/// The shell line that runs `top` (no daemon), then prints its exit status and
/// stty's `echo`/`icanon` flags, ended by a marker (`stty-42`) the shell computes,
/// so the typed line (which the screen also shows) never matches it.
fn top_then_stty_report() -> String {
    format!(
        "{} top --interval 200 --no-daemon; echo status=$?; stty -a | tr ' ' '\\n' | grep -E -x -e '-?(echo|icanon)' | tr '\\n' ' '; echo stty-$((6*7))",
        ringfeed_bin()
    )
}

/// The stty report on `screen` (see [`top_then_stty_report`]) shows a cooked terminal:
/// `icanon` and `echo` on (not `-icanon`, `-echo`).
fn assert_cooked(screen: &str) {
    let report = screen.lines().find(|l| l.contains("stty-42")).unwrap();
    assert!(
        report.contains("icanon") && !report.contains("-icanon"),
        "{report}"
    );
    assert!(
        report.contains("echo") && !report.contains("-echo"),
        "{report}"
    );
}

#[test]
fn top_restores_the_terminal_when_it_panics() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    let t = Tmux::start(shm());
    t.wait_for("the shell prompt", |s| s.contains("rf-shell$"));
    // Echo is on in a cooked terminal and off in raw mode: after the panic,
    // stty must report it on again (`echo`, not `-echo`), and `icanon` too.
    t.type_line(&format!(
        "RINGFEED_TOP_TEST_PANIC=1 {}",
        top_then_stty_report()
    ));
    let s = t.wait_for("the panic and the stty report", |s| s.contains("stty-42"));
    assert!(s.contains("panicking after the first frame"), "{s}");
    assert!(s.contains("status=101"), "a panic exits 101:\n{s}");
    assert_cooked(&s);
    // The shell is usable.
    t.type_line("echo still-$((2+3))");
    t.wait_for("the shell to answer", |s| s.contains("still-5"));
}

/// `ringfeed top --once` with the given environment: (exit code, stdout, stderr).
fn once(args: &[&str], socket_env: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(ringfeed_bin())
        .args(["top", "--once", "--interval", "100"])
        .args(args)
        .env("RINGFEED_SHM_DIR", shm())
        .env("RINGFEED_SOCKET", socket_env)
        .output()
        .expect("run ringfeed top");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `ringfeed serve` whose arenas go to the shared shm directory.
fn serve(dir: &Path) -> (PathBuf, common::KillOnDrop) {
    let sock = dir.join("rf.sock");
    let cfg = dir.join("rf.toml");
    let data = dir.join("data");
    std::fs::write(
        &cfg,
        format!("data_dir = {data:?}\nsocket = {sock:?}\n[datasets.fx]\nbase = \"1m\"\n"),
    )
    .unwrap();
    let daemon = common::KillOnDrop(
        Command::new(ringfeed_bin())
            .args(["serve", "--arena-prefix", &unique("toptest"), "--config"])
            .arg(&cfg)
            .env("RINGFEED_SHM_DIR", shm())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (sock, daemon)
}

#[test]
fn top_once_names_the_daemon_topics_beside_their_rings() {
    shm();
    let dir = tempfile::tempdir().unwrap();
    let (sock, mut daemon) = serve(dir.path());
    let deadline = Instant::now() + PATIENCE;
    let mut c = loop {
        match ringfeed_client::Client::connect(Some(&sock)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "ringfeed serve did not come up: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    // Subscribing opens the topic's ring.
    let live = c
        .subscribe("fx", "1m", ringfeed_arrow::StartAt::Next)
        .unwrap();
    let arena = live.ring().name().to_string();
    let nowhere = dir.path().join("nowhere.sock");

    // --socket: the topic is named beside its ring, with our one reader.
    let (code, out, err) = once(&["--socket", sock.to_str().unwrap()], &nowhere);
    assert_eq!(code, Some(0), "{err}");
    let r = row(&out, &arena).unwrap_or_else(|| panic!("no {arena} in:\n{out}"));
    assert_eq!((r[1], r[4], r[8]), ("fx/1m", "1", "alive"), "{out}");
    assert!(out.contains(&format!("daemon {}", sock.display())), "{out}");

    // Auto: the default socket ($RINGFEED_SOCKET) exists, so it is asked.
    let (code, out, _) = once(&[], &sock);
    assert_eq!(code, Some(0));
    assert_eq!(row(&out, &arena).unwrap()[1], "fx/1m", "{out}");

    // --no-daemon: the ring, without its topic.
    let (code, out, _) = once(&["--no-daemon"], &sock);
    assert_eq!(code, Some(0));
    assert_eq!(row(&out, &arena).unwrap()[1], "-", "{out}");
    assert!(out.contains("no daemon"), "{out}");

    // --daemon with nobody listening fails and says how to start one.
    let (code, _, err) = once(&["--daemon"], &nowhere);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot connect") && err.contains("ringfeed serve"),
        "{err}"
    );

    // Auto with a socket path that is not a listening socket (a plain file):
    // the table still comes, and the title says the daemon is unreachable.
    let junk = dir.path().join("junk.sock");
    std::fs::write(&junk, b"not a socket").unwrap();
    let (code, out, err) = once(&[], &junk);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("daemon unreachable"), "{out}");
    assert!(row(&out, &arena).is_some(), "{out}");

    // A daemon that speaks garbage: a listener that answers nonsense and hangs up.
    let bad = dir.path().join("bad.sock");
    let listener = std::os::unix::net::UnixListener::bind(&bad).unwrap();
    let garbage = std::thread::spawn(move || {
        use std::io::Write;
        for s in listener.incoming().take(2).flatten() {
            let mut s = s;
            let _ = s.write_all(b"\xff\xff\xff\x7fgarbage");
        }
    });
    let (code, out, err) = once(&[], &bad);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("daemon unreachable"), "{out}");
    drop(garbage);

    // The daemon still answers a real request after all that.
    assert!(c.ping().is_ok());
    let (code, out, _) = once(&["--socket", sock.to_str().unwrap()], &nowhere);
    assert_eq!(code, Some(0));
    assert_eq!(row(&out, &arena).unwrap()[1], "fx/1m", "{out}");

    // A clean stop closes the topic rings (a kill would leave them behind).
    drop(live);
    // SAFETY: a plain kill(2) of our own child, which has not been waited for.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let _ = daemon.0.wait();
}

#[test]
fn top_refuses_a_non_terminal_without_once_and_lists_nothing_helpfully() {
    // An empty directory of its own (the variable is only for the child).
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(ringfeed_bin())
        .args(["top", "--no-daemon"])
        .env("RINGFEED_SHM_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a terminal") && err.contains("--once"),
        "{err}"
    );
    let out = Command::new(ringfeed_bin())
        .args(["top", "--once", "--interval", "50", "--no-daemon"])
        .env("RINGFEED_SHM_DIR", empty.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 rings") && text.contains("no rings in"),
        "{text}"
    );
    assert!(text.contains("NAME") && text.contains("WRITER"), "{text}");
    // A bad sort column is a usage error naming the choices.
    let out = Command::new(ringfeed_bin())
        .args(["top", "--once", "--sort", "colour"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lease-age"));
}

/// The children of process `pid`, from /proc (no pgrep needed).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

#[test]
fn top_restores_the_terminal_on_sigterm() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return;
    }
    let t = Tmux::start(shm());
    t.wait_for("the shell prompt", |s| s.contains("rf-shell$"));
    t.type_line(&top_then_stty_report());
    t.wait_for("top's screen", |s| s.contains("MSGS/S"));
    let shell: u32 = t
        .cmd(&["display-message", "-p", "-t", "top", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    let top = children(shell);
    assert_eq!(top.len(), 1, "the shell runs one child (top): {top:?}");
    // SAFETY: a plain kill(2) of the top process this test started in tmux.
    assert_eq!(unsafe { libc::kill(top[0] as i32, libc::SIGTERM) }, 0);
    let s = t.wait_for("the stty report", |s| s.contains("stty-42"));
    assert!(s.contains("status=0"), "SIGTERM is a clean quit:\n{s}");
    assert_cooked(&s);
    assert!(!s.contains("MSGS/S"), "the alternate screen is gone:\n{s}");
}
