//! `ringfeed top`: a refreshing view of every ring on the host and of the
//! daemon's topics: write rate (batches/s, MB/s), readers, lag, leases, the
//! oldest lease's age, writer liveness. Sortable; `q` quits.
//!
//! Sampling runs on its own thread (an `inspect` of every arena, and one
//! `stat` call to the daemon), so a slow daemon never delays a key press. The
//! terminal is restored on every way out: `q`, an error, a panic (ratatui's
//! panic hook, and the guard's `Drop` while unwinding), SIGTERM/SIGHUP/SIGINT.

mod model;
mod source;
mod view;

use anyhow::{bail, Result};
use clap::Args;
use model::{Column, Snapshot, Sort};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub use model::age;

/// What `--help` shows after the options.
pub const AFTER_HELP: &str = "\
Columns:
  NAME          arena name (files ringfeed.<NAME> in $RINGFEED_SHM_DIR, default /dev/shm)
  TOPIC         the daemon topic (dataset/timeframe) the ring carries, if any
  MSGS/S MB/S   batches and payload megabytes (10^6 bytes) published per second since the
                previous refresh (- on the first refresh, and MB/S - for arenas of layout v2.0)
  READERS       attached readers
  LAG           batches the slowest reader has yet to read
  LEASES        batches readers hold (pinned: the writer cannot reuse their buffers)
  OLDEST_LEASE  how long the longest-holding reader has held leases without a break
  WRITER        alive, or GONE (a leftover: `ringfeed rm --stale` removes it)

Keys: q (or Esc, Ctrl-C) quits; s sorts by the next column, S by the previous one; r reverses.

Without --daemon/--socket/--no-daemon, top also asks the daemon at the default socket
($RINGFEED_SOCKET, else the daemon's default path) when that socket exists.

Examples:
  ringfeed top
  ringfeed top --interval 200 --sort msgs
  ringfeed top --once --sort lag      # one plain table, for scripts";

/// `ringfeed top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Refresh every MS milliseconds (rates are measured over this interval).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    interval: u64,
    /// Print one plain table and exit: two samples one interval apart (for the rates).
    /// The only mode when stdout is not a terminal.
    #[arg(long)]
    once: bool,
    /// Sort column at start: name, topic, msgs, mb, readers, lag, leases, lease-age, writer.
    #[arg(long, value_name = "COLUMN", default_value = "name", value_parser = parse_column)]
    sort: Column,
    /// Reverse the sort (names Z-A, numbers lowest first).
    #[arg(long)]
    reverse: bool,
    /// Show the daemon's topics, and fail if the daemon does not answer.
    #[arg(long)]
    daemon: bool,
    /// The daemon's socket (implies --daemon; default $RINGFEED_SOCKET, else the daemon's
    /// default path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Arenas only: do not ask any daemon.
    #[arg(long, conflicts_with_all = ["daemon", "socket"])]
    no_daemon: bool,
}

fn parse_column(s: &str) -> Result<Column, String> {
    Column::parse(s).ok_or_else(|| {
        let keys: Vec<&str> = Column::ALL.iter().map(|c| c.key()).collect();
        format!("unknown column {s:?}: one of {}", keys.join(", "))
    })
}

/// Runs `ringfeed top`.
pub fn run(a: TopArgs) -> Result<()> {
    let mode = if a.no_daemon {
        source::DaemonMode::Off
    } else if a.daemon || a.socket.is_some() {
        source::DaemonMode::Explicit(a.socket.clone())
    } else {
        source::DaemonMode::Auto
    };
    let sort = Sort {
        column: a.sort,
        reversed: a.reverse,
    };
    let sampler = source::Sampler::new(mode)?;
    if a.once {
        return once(sampler, sort, a.interval);
    }
    if !std::io::stdout().is_terminal() {
        bail!("stdout is not a terminal, so there is nothing to draw on: `ringfeed top --once` prints one plain table instead");
    }
    interactive(sampler, sort, a.interval)
}

fn once(mut sampler: source::Sampler, sort: Sort, interval_ms: u64) -> Result<()> {
    let first = sampler.sample();
    std::thread::sleep(Duration::from_millis(interval_ms));
    let snap = sampler.sample();
    let mut rows = model::rows(Some(&first), &snap);
    model::sort_rows(&mut rows, sort);
    let h = view::Header {
        snapshot: &snap,
        interval_ms,
        sort,
    };
    print!("{}", view::plain(&h, &rows));
    Ok(())
}

/// The terminal in raw mode on the alternate screen; restored when dropped
/// (also while unwinding from a panic; ratatui's own panic hook restores it
/// before the panic message is printed).
struct Screen(ratatui::DefaultTerminal);

impl Screen {
    fn new() -> Result<Self> {
        Ok(Self(ratatui::try_init()?))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn interactive(mut sampler: source::Sampler, mut sort: Sort, interval_ms: u64) -> Result<()> {
    let interval = Duration::from_millis(interval_ms);
    // Raw mode turns Ctrl-C into a key, but a signal from elsewhere must still
    // leave the terminal usable: the loop sees the flag and returns.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
    ] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let (tx, rx) = mpsc::channel::<Snapshot>();
    std::thread::Builder::new()
        .name("top-sampler".into())
        .spawn(move || loop {
            let t = Instant::now();
            if tx.send(sampler.sample()).is_err() {
                return; // the view is gone
            }
            std::thread::sleep(interval.saturating_sub(t.elapsed()));
        })?;
    let panic_after_draw = std::env::var_os("RINGFEED_TOP_TEST_PANIC").is_some();
    let mut screen = Screen::new()?;
    let mut prev: Option<Snapshot> = None;
    let mut rows = Vec::new();
    let mut dirty = false;
    while !stop.load(Ordering::Relaxed) {
        while let Ok(s) = rx.try_recv() {
            rows = model::rows(prev.as_ref(), &s);
            prev = Some(s);
            dirty = true;
        }
        if dirty {
            if let Some(snap) = &prev {
                model::sort_rows(&mut rows, sort);
                let h = view::Header {
                    snapshot: snap,
                    interval_ms,
                    sort,
                };
                screen.0.draw(|f| view::draw(f, &h, &rows))?;
                dirty = false;
                if panic_after_draw {
                    // Test hook: the terminal must come back after a panic.
                    panic!("RINGFEED_TOP_TEST_PANIC is set: panicking after the first frame");
                }
            }
        }
        if !event::poll(Duration::from_millis(50))? {
            continue;
        }
        match event::read()? {
            Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                KeyCode::Char('q') | KeyCode::Esc => break,
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => break,
                KeyCode::Char('s') => {
                    sort.column = sort.column.cycle(true);
                    dirty = true;
                }
                KeyCode::Char('S') => {
                    sort.column = sort.column.cycle(false);
                    dirty = true;
                }
                KeyCode::Char('r') => {
                    sort.reversed = !sort.reversed;
                    dirty = true;
                }
                _ => {}
            },
            Event::Resize(..) => dirty = true,
            _ => {}
        }
    }
    drop(screen);
    Ok(())
}
