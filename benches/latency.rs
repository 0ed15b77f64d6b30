//! `rf-latency`: one-way publish → read latency between two processes.
//!
//! The parent is the writer; it re-executes itself (`rf-latency __child …`)
//! as the reader. For every message the writer stores `CLOCK_MONOTONIC` in
//! the payload just before it publishes; the reader reads the clock as soon
//! as it holds the message (decoded, for Arrow) and keeps the difference.
//! Sends are paced: before message k the writer waits until the reader has
//! acknowledged message k-1 (through a separate control page, so no message
//! is ever overwritten unread), then busy-waits a jittered gap (so it does not
//! phase-lock with timer ticks). In futex modes the gap (75-125 µs) is long
//! enough that the reader is asleep in `FUTEX_WAIT` when the message arrives;
//! in spin modes it is shorter than the reader's spin budget.
//!
//! Modes:
//! - `raw_futex`: baseline. A shared mmap'd file, a u32 futex word and a
//!   timestamp; the writer stores both and calls `FUTEX_WAKE`. This is what
//!   the kernel and the VM give for waking a sleeping process.
//! - `raw_spin`: baseline. The same, with the reader spinning on the word.
//! - `ring_futex`: ringfeed byte ring, 16-byte payload, `spin = 0`.
//! - `ring_spin`: the same with a spin budget (writer gap shorter than it).
//! - `arrow_futex`: ringfeed Arrow ring, a 1-row bar batch → `RecordBatch`.
//!
//! It also records what a publish costs the writer: with a reader asleep
//! (a `FUTEX_WAKE` syscall), with a spinning reader and with nobody waiting.
//!
//! Usage: `rf-latency [--samples N] [--warmup N] [--modes a,b,…] [--spin-us N] [--json PATH]`.
//! `BENCH_QUICK=1` shortens the run.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use hdrhistogram::Histogram;
use memmap2::MmapMut;
use ringfeed_arrow::{ohlcv_schema, Reader, ReaderOptions, RingOptions, StartAt, Writer};
use ringfeed_benches::{monotonic_ns, quick};
use ringfeed_shm::sync::{futex_wait, futex_wake, AtomicU32, AtomicU64, Ordering};
use ringfeed_shm::{ReadError, RingReader, RingWriter};
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    RawFutex,
    RawSpin,
    RingFutex,
    RingSpin,
    ArrowFutex,
}

const ALL: [Mode; 5] = [
    Mode::RawFutex,
    Mode::RawSpin,
    Mode::RingFutex,
    Mode::RingSpin,
    Mode::ArrowFutex,
];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::RawFutex => "raw_futex",
            Mode::RawSpin => "raw_spin",
            Mode::RingFutex => "ring_futex",
            Mode::RingSpin => "ring_spin",
            Mode::ArrowFutex => "arrow_futex",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|m| m.name() == s)
    }
    fn what(self) -> &'static str {
        match self {
            Mode::RawFutex => "raw FUTEX_WAKE of a sleeping process (baseline)",
            Mode::RawSpin => "raw store, reader spinning (baseline)",
            Mode::RingFutex => "byte ring, 16 B, futex (spin 0)",
            Mode::RingSpin => "byte ring, 16 B, spin budget",
            Mode::ArrowFutex => "Arrow ring, 1-row bars -> RecordBatch, futex",
        }
    }
    fn spins(self) -> bool {
        matches!(self, Mode::RawSpin | Mode::RingSpin)
    }
}

struct Config {
    samples: usize,
    warmup: usize,
    modes: Vec<Mode>,
    spin: Duration,
    json: Option<std::path::PathBuf>,
}

impl Config {
    /// Writer gap between sends, ns: `[lo, hi)`. Futex modes leave the reader
    /// time to fall asleep; spin modes stay inside its spin budget.
    fn gap(&self, mode: Mode) -> (u64, u64) {
        if mode.spins() {
            let budget = self.spin.as_nanos() as u64;
            (budget / 5, budget * 3 / 5)
        } else {
            (75_000, 125_000)
        }
    }
}

fn parse_args() -> Res<Config> {
    let q = quick();
    let mut c = Config {
        samples: if q { 3_000 } else { 20_000 },
        warmup: if q { 500 } else { 2_000 },
        modes: ALL.to_vec(),
        spin: Duration::from_micros(50),
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--samples" => c.samples = val()?.parse()?,
            "--warmup" => c.warmup = val()?.parse()?,
            "--spin-us" => c.spin = Duration::from_micros(val()?.parse()?),
            "--json" => c.json = Some(val()?.into()),
            "--modes" => {
                c.modes = val()?
                    .split(',')
                    .map(|m| Mode::parse(m).ok_or_else(|| format!("unknown mode {m:?}")))
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!(
                    "rf-latency [--samples N] [--warmup N] [--modes {}] [--spin-us N] [--json PATH]",
                    ALL.map(Mode::name).join(",")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if c.samples == 0 {
        return Err("--samples must be > 0".into());
    }
    Ok(c)
}

/// A tiny xorshift for the send-gap jitter.
struct Jitter(u64);
impl Jitter {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo).max(1)
    }
}

/// Busy-waits until `deadline` (`CLOCK_MONOTONIC` ns).
fn spin_until(deadline: u64) {
    while monotonic_ns() < deadline {
        std::hint::spin_loop();
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

// ---------------------------------------------------------------------------
// The raw baseline channel: one page of a shared file.

/// Layout of the control page: the raw channel (raw modes) and the reader's
/// acknowledgements (every mode). Hot words on their own 128-byte lines.
#[repr(C, align(128))]
struct RawChan {
    /// Futex word: index of the last message sent, 1-based.
    seq: AtomicU32,
    _pad0: [u8; 124],
    /// Send timestamps, by `seq & 1`.
    ts: [AtomicU64; 2],
    _pad1: [u8; 112],
    /// The reader has attached.
    ready: AtomicU32,
    _pad2: [u8; 124],
    /// Messages the reader has consumed (1-based index of the last one).
    ack: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<RawChan>() <= 4096);

/// The control page, mapped by both processes.
struct RawMap {
    map: MmapMut,
}

impl RawMap {
    fn open(path: &std::path::Path, create: bool) -> Res<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)?;
        if create {
            file.set_len(4096)?;
        }
        // SAFETY: a 4 KiB regular file that both processes only touch through
        // the atomics of `RawChan`.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Self { map })
    }
    fn chan(&self) -> &RawChan {
        // SAFETY: the mapping is page-aligned and 4096 bytes long (>= the size
        // of RawChan, asserted above); a zero-filled file is a valid RawChan
        // (atomics and padding only), and `self` keeps the mapping alive.
        unsafe { &*(self.map.as_ptr() as *const RawChan) }
    }
}

/// The parent's control page: created in the shm directory, unlinked on drop.
struct CtlPage {
    map: RawMap,
    path: std::path::PathBuf,
}

impl CtlPage {
    fn create(mode: Mode) -> Res<Self> {
        let path = ringfeed_shm::shm_dir().join(format!(
            "rf-latency-{}-{}",
            mode.name(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Ok(Self {
            map: RawMap::open(&path, true)?,
            path,
        })
    }
    fn chan(&self) -> &RawChan {
        self.map.chan()
    }
    fn path(&self) -> Res<&str> {
        Ok(self.path.to_str().ok_or("non-UTF-8 shm directory")?)
    }
    /// Waits until the reader has consumed `n` messages. Returns when it saw it.
    fn wait_ack(&self, n: u64) -> Res<u64> {
        let end = monotonic_ns() + 10_000_000_000;
        loop {
            // SYNC POINT: ack. Pairs with the reader's Release store of ack.
            if self.chan().ack.load(Ordering::Acquire) >= n {
                return Ok(monotonic_ns());
            }
            if monotonic_ns() > end {
                return Err(format!("the reader did not consume message {n} within 10 s").into());
            }
            std::hint::spin_loop();
        }
    }
}

impl Drop for CtlPage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Child (reader) side.

/// What the child hands back on stdout: a header line, then one latency per line (ns).
struct ChildReport {
    skipped: u64,
    zero_copy: bool,
    samples: Vec<u64>,
}

impl ChildReport {
    /// Keeps sample `idx` (1-based) unless it is a warm-up one, then acks it.
    fn take(&mut self, ch: &RawChan, idx: u64, warmup: u64, lat: u64) {
        if idx > warmup {
            self.samples.push(lat);
        }
        // SYNC POINT: ack. Pairs with the writer's Acquire load in `wait_ack`.
        ch.ack.store(idx, Ordering::Release);
    }
}

fn emit(report: &ChildReport) -> Res<()> {
    let mut out = String::with_capacity(report.samples.len() * 8 + 64);
    writeln!(
        out,
        "skipped {} zero_copy {}",
        report.skipped, report.zero_copy as u8
    )?;
    for s in &report.samples {
        writeln!(out, "{s}")?;
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(out.as_bytes())?;
    lock.flush()?;
    Ok(())
}

fn child_main(mut args: impl Iterator<Item = String>) -> Res<()> {
    let mode = Mode::parse(&args.next().ok_or("mode")?).ok_or("bad mode")?;
    let ctl_path = args.next().ok_or("control page path")?;
    let arena = args.next().ok_or("arena name")?;
    let total: u64 = args.next().ok_or("total")?.parse()?;
    let warmup: u64 = args.next().ok_or("warmup")?.parse()?;
    let spin = Duration::from_nanos(args.next().ok_or("spin")?.parse()?);
    let ctl = RawMap::open(std::path::Path::new(&ctl_path), false)?;
    let ch = ctl.chan();
    let mut rep = ChildReport {
        skipped: 0,
        zero_copy: true,
        samples: Vec::with_capacity(total as usize),
    };
    let timeout = Duration::from_secs(10);
    match mode {
        Mode::RawFutex | Mode::RawSpin => {
            ch.ready.store(1, Ordering::Release);
            let mut last = 0u32;
            let mut idle_since = monotonic_ns();
            while (last as u64) < total {
                // SYNC POINT: raw-send. Pairs with the writer's Release store of seq.
                let v = ch.seq.load(Ordering::Acquire);
                if v == last {
                    if mode == Mode::RawSpin {
                        std::hint::spin_loop();
                    } else {
                        futex_wait(&ch.seq, last, Duration::from_millis(100));
                    }
                    if monotonic_ns() - idle_since > timeout.as_nanos() as u64 {
                        return Err("raw channel: no message for 10 s".into());
                    }
                    continue;
                }
                let now = monotonic_ns();
                let ts = ch.ts[(v & 1) as usize].load(Ordering::Relaxed);
                rep.skipped += (v - last - 1) as u64;
                last = v;
                idle_since = now;
                rep.take(ch, v as u64, warmup, now.saturating_sub(ts));
            }
        }
        Mode::RingFutex | Mode::RingSpin => {
            let opts = ReaderOptions {
                start: StartAt::Next,
                spin,
                ..Default::default()
            };
            let mut r = RingReader::open_with(&arena, opts)?;
            ch.ready.store(1, Ordering::Release);
            loop {
                match r.read(timeout) {
                    Ok(Some(lease)) => {
                        let now = monotonic_ns();
                        let b = lease.bytes();
                        let idx = u64::from_le_bytes(b[0..8].try_into()?);
                        let ts = u64::from_le_bytes(b[8..16].try_into()?);
                        drop(lease);
                        rep.take(ch, idx, warmup, now.saturating_sub(ts));
                        if idx >= total {
                            break;
                        }
                    }
                    Ok(None) => return Err("byte ring: no message for 10 s".into()),
                    Err(ReadError::Lagged { missed }) => rep.skipped += missed,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Mode::ArrowFutex => {
            let opts = ReaderOptions {
                start: StartAt::Next,
                spin,
                ..Default::default()
            };
            let mut r = Reader::open_with(&arena, opts)?;
            ch.ready.store(1, Ordering::Release);
            loop {
                match r.read(timeout) {
                    Ok(Some(batch)) => {
                        let now = monotonic_ns();
                        let ts = batch
                            .column(0)
                            .as_primitive::<TimestampNanosecondType>()
                            .value(0) as u64;
                        let idx = batch.column(6).as_primitive::<Float64Type>().value(0) as u64;
                        rep.zero_copy &= batch.is_zero_copy();
                        drop(batch);
                        rep.take(ch, idx, warmup, now.saturating_sub(ts));
                        if idx >= total {
                            break;
                        }
                    }
                    Ok(None) => return Err("arrow ring: no batch for 10 s".into()),
                    Err(ringfeed_arrow::ReadError::Lagged { missed }) => rep.skipped += missed,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    emit(&rep)
}

// ---------------------------------------------------------------------------
// Parent (writer) side.

/// Results of one mode.
struct Outcome {
    mode: Mode,
    lat: Histogram<u64>,
    /// Writer-side cost of one send (timestamp → publish returned).
    send: Histogram<u64>,
    skipped: u64,
    zero_copy: bool,
}

/// Starts the reader process and waits until it has attached.
fn spawn_child(mode: Mode, ctl: &CtlPage, arena: &str, cfg: &Config, spin: Duration) -> Res<Child> {
    let total = (cfg.warmup + cfg.samples) as u64;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("__child")
        .arg(mode.name())
        .arg(ctl.path()?)
        .arg(arena)
        .arg(total.to_string())
        .arg(cfg.warmup.to_string())
        .arg(spin.as_nanos().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let end = monotonic_ns() + 10_000_000_000;
    while ctl.chan().ready.load(Ordering::Acquire) != 1 {
        if let Some(st) = child.try_wait()? {
            return Err(format!("{} reader exited early with {st}", mode.name()).into());
        }
        if monotonic_ns() > end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} reader did not attach within 10 s", mode.name()).into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(child)
}

fn collect(child: Child, mode: Mode, send: Histogram<u64>) -> Res<Outcome> {
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("{} reader exited with {}", mode.name(), out.status).into());
    }
    let mut lines = out.stdout.lines();
    let head = lines.next().ok_or("empty child report")??;
    let f: Vec<&str> = head.split_whitespace().collect();
    let (skipped, zero_copy) = match f.as_slice() {
        ["skipped", s, "zero_copy", z] => (s.parse()?, *z == "1"),
        _ => return Err(format!("bad child header {head:?}").into()),
    };
    let mut lat = new_hist();
    for l in lines {
        lat.saturating_record(l?.parse()?);
    }
    Ok(Outcome {
        mode,
        lat,
        send,
        skipped,
        zero_copy,
    })
}

/// Drives `total` sends: before send k (1-based) waits for the reader's ack
/// of k-1 (if `ctl`), then a jittered gap; `send(k)` returns the timestamp
/// it put in the message. Records the writer-side cost of sends after `skip`.
fn paced(
    total: usize,
    skip: usize,
    gap: (u64, u64),
    ctl: Option<&CtlPage>,
    jit: &mut Jitter,
    mut send: impl FnMut(u64) -> Res<u64>,
) -> Res<Histogram<u64>> {
    let mut cost = new_hist();
    let mut last_done = monotonic_ns();
    for k in 1..=total as u64 {
        let from = match ctl {
            Some(c) => c.wait_ack(k - 1)?,
            None => last_done,
        };
        spin_until(from + jit.next(gap.0, gap.1));
        let ts = send(k)?;
        last_done = monotonic_ns();
        if k as usize > skip {
            cost.saturating_record(last_done - ts);
        }
    }
    Ok(cost)
}

fn run_raw(mode: Mode, cfg: &Config, jit: &mut Jitter) -> Res<Outcome> {
    let ctl = CtlPage::create(mode)?;
    let child = spawn_child(mode, &ctl, "-", cfg, Duration::ZERO)?;
    let ch = ctl.chan();
    let send = paced(
        cfg.warmup + cfg.samples,
        cfg.warmup,
        cfg.gap(mode),
        Some(&ctl),
        jit,
        |k| {
            let ts = monotonic_ns();
            ch.ts[(k & 1) as usize].store(ts, Ordering::Relaxed);
            // SYNC POINT: raw-send. Pairs with the reader's Acquire load of seq.
            ch.seq.store(k as u32, Ordering::Release);
            if mode == Mode::RawFutex {
                futex_wake(&ch.seq, 1);
            }
            Ok(ts)
        },
    )?;
    collect(child, mode, send)
}

/// Byte ring options for the probes: small slots, a few readers.
fn probe_opts() -> RingOptions {
    RingOptions {
        slots: 64,
        slot_bytes: 64 << 10,
        max_readers: 2,
        leases_per_reader: 2,
        force: true,
        ..RingOptions::default()
    }
}

/// One byte-ring send: a 16-byte payload (index, timestamp taken just before publish).
fn ring_send(w: &mut RingWriter, k: u64) -> Res<u64> {
    let mut payload = [0u8; 16];
    payload[..8].copy_from_slice(&k.to_le_bytes());
    let ts = monotonic_ns();
    payload[8..].copy_from_slice(&ts.to_le_bytes());
    w.publish(&payload, 1, 0)?;
    Ok(ts)
}

fn run_ring(mode: Mode, cfg: &Config, jit: &mut Jitter) -> Res<(Outcome, Option<Histogram<u64>>)> {
    let name = format!("rf-latency-ring-{}", std::process::id());
    let mut w = RingWriter::create(&name, &probe_opts().ring(), b"rf-latency")?;
    let ctl = CtlPage::create(mode)?;
    let spin = if mode.spins() {
        cfg.spin
    } else {
        Duration::ZERO
    };
    let child = spawn_child(mode, &ctl, &name, cfg, spin)?;
    let total = cfg.warmup + cfg.samples;
    let send = paced(total, cfg.warmup, cfg.gap(mode), Some(&ctl), jit, |k| {
        ring_send(&mut w, k)
    })?;
    let out = collect(child, mode, send)?;
    // Same ring, same pacing, no reader: a publish that makes no syscall.
    let nowait = if mode == Mode::RingFutex {
        let end = monotonic_ns() + 10_000_000_000;
        while !w.readers().is_empty() && monotonic_ns() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        Some(paced(total, cfg.warmup, cfg.gap(mode), None, jit, |k| {
            ring_send(&mut w, k)
        })?)
    } else {
        None
    };
    w.close();
    Ok((out, nowait))
}

fn run_arrow(mode: Mode, cfg: &Config, jit: &mut Jitter) -> Res<Outcome> {
    let name = format!("rf-latency-arrow-{}", std::process::id());
    let mut w = Writer::create(&name, &ohlcv_schema(), probe_opts())?;
    let ctl = CtlPage::create(mode)?;
    let schema = w.schema().clone();
    let child = spawn_child(mode, &ctl, &name, cfg, Duration::ZERO)?;
    let tz: Arc<str> = Arc::from("UTC");
    let symbol: ArrayRef = Arc::new(StringViewArray::from_iter_values(["BTCUSDT"]));
    let price: ArrayRef = Arc::new(Float64Array::from(vec![29_000.5]));
    let total = cfg.warmup + cfg.samples;
    let send = paced(total, cfg.warmup, cfg.gap(mode), Some(&ctl), jit, |k| {
        let ts = monotonic_ns();
        // The batch is built after the timestamp is taken, so its cost counts.
        let ts_col: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![ts as i64]).with_timezone_opt(Some(tz.clone())),
        );
        let index: ArrayRef = Arc::new(Float64Array::from(vec![k as f64]));
        let p = &price;
        let cols = vec![
            ts_col,
            symbol.clone(),
            p.clone(),
            p.clone(),
            p.clone(),
            p.clone(),
            index,
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        Ok(ts)
    })?;
    let out = collect(child, mode, send)?;
    w.close();
    Ok(out)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn hist_json(h: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "n": h.len(),
        "p50_ns": h.value_at_quantile(0.50),
        "p99_ns": h.value_at_quantile(0.99),
        "p999_ns": h.value_at_quantile(0.999),
        "max_ns": h.max(),
        "mean_ns": h.mean(),
    })
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("__child") {
        args.next();
        if let Err(e) = child_main(args) {
            eprintln!("rf-latency reader: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = parent_main() {
        eprintln!("rf-latency: {e}");
        std::process::exit(1);
    }
}

fn parent_main() -> Res<()> {
    let cfg = parse_args()?;
    let load_before = loadavg();
    eprintln!(
        "rf-latency: {} samples/mode after {} warm-up, spin budget {} us, load average {load_before}",
        cfg.samples,
        cfg.warmup,
        cfg.spin.as_micros()
    );
    let mut jit = Jitter(0x9E37_79B9_7F4A_7C15 ^ monotonic_ns());
    let mut outcomes = Vec::new();
    let mut nowait = None;
    for &mode in &cfg.modes {
        eprintln!("rf-latency: {} ...", mode.name());
        let o = match mode {
            Mode::RawFutex | Mode::RawSpin => run_raw(mode, &cfg, &mut jit)?,
            Mode::RingFutex | Mode::RingSpin => {
                let (o, nw) = run_ring(mode, &cfg, &mut jit)?;
                if nw.is_some() {
                    nowait = nw;
                }
                o
            }
            Mode::ArrowFutex => run_arrow(mode, &cfg, &mut jit)?,
        };
        outcomes.push(o);
    }
    let load_after = loadavg();

    println!();
    println!("one-way latency, CLOCK_MONOTONIC before publish -> reader holds it (us)");
    println!(
        "{:<12} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7} {:>5}  what",
        "mode", "p50", "p99", "p99.9", "max", "mean", "n", "lost"
    );
    for o in &outcomes {
        let h = &o.lat;
        println!(
            "{:<12} {:>8.2} {:>8.2} {:>9.2} {:>9.1} {:>8.2} {:>7} {:>5}  {}{}",
            o.mode.name(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.mean() / 1000.0,
            h.len(),
            o.skipped,
            o.mode.what(),
            if o.zero_copy { "" } else { " (NOT zero-copy!)" }
        );
    }
    let p50 = |m: Mode| {
        outcomes
            .iter()
            .find(|o| o.mode == m)
            .map(|o| o.lat.value_at_quantile(0.5))
    };
    let p99 = |m: Mode| {
        outcomes
            .iter()
            .find(|o| o.mode == m)
            .map(|o| o.lat.value_at_quantile(0.99))
    };
    println!();
    let mut ratios = serde_json::Map::new();
    for (num, den) in [
        (Mode::RingFutex, Mode::RawFutex),
        (Mode::ArrowFutex, Mode::RawFutex),
        (Mode::RingSpin, Mode::RawSpin),
    ] {
        if let (Some(a), Some(b), Some(a99), Some(b99)) = (p50(num), p50(den), p99(num), p99(den)) {
            let r = a as f64 / b as f64;
            let r99 = a99 as f64 / b99 as f64;
            println!(
                "ratio {}/{}: p50 {r:.2}x, p99 {r99:.2}x",
                num.name(),
                den.name()
            );
            ratios.insert(format!("{}/{}_p50", num.name(), den.name()), r.into());
            ratios.insert(format!("{}/{}_p99", num.name(), den.name()), r99.into());
        }
    }

    println!();
    println!("writer-side cost of one send (timestamp -> publish returned, us)");
    println!("{:<28} {:>8} {:>8} {:>9}", "case", "p50", "p99", "p99.9");
    let mut sends = serde_json::Map::new();
    let mut row = |label: &str, key: &str, h: &Histogram<u64>| {
        println!(
            "{:<28} {:>8.2} {:>8.2} {:>9.2}",
            label,
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999))
        );
        sends.insert(key.into(), hist_json(h));
    };
    for o in &outcomes {
        let label = match o.mode {
            Mode::RawFutex => "raw store + FUTEX_WAKE",
            Mode::RawSpin => "raw store (reader spins)",
            Mode::RingFutex => "ring publish, reader asleep",
            Mode::RingSpin => "ring publish, reader spins",
            Mode::ArrowFutex => "arrow build+write, asleep",
        };
        row(label, o.mode.name(), &o.send);
    }
    if let Some(h) = &nowait {
        row("ring publish, no reader", "ring_nowait", h);
    }
    println!();
    println!("load average before {load_before}, after {load_after}");

    if let Some(path) = &cfg.json {
        let modes: serde_json::Map<String, serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                let mut v = hist_json(&o.lat);
                v["skipped"] = o.skipped.into();
                v["zero_copy"] = o.zero_copy.into();
                (o.mode.name().to_string(), v)
            })
            .collect();
        let doc = serde_json::json!({
            "samples": cfg.samples,
            "warmup": cfg.warmup,
            "spin_us": cfg.spin.as_micros() as u64,
            "load_before": load_before,
            "load_after": load_after,
            "latency": modes,
            "ratios": ratios,
            "send_cost": sends,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
