//! `rf-xtest`: the helper process of ringfeed's multi-process tests.
//!
//! The Rust, Python and C++ test suites spawn it as a real writer or reader
//! process. Its command line and output are a contract:
//!
//! - `publish` writes batches that follow the bar formula (see the library
//!   docs of `ringfeed_xtest`), prints `published N` and closes the ring.
//! - `subscribe` reads and verifies every value, prints one JSON line
//!   `{"batches":..,"first_seq":..,"last_seq":..,"missed":..,"zero_copy":..,"verified":..,"error":..}`
//!   and exits 0 only if everything verified.
//! - `hold` reads K batches, keeps them leased, prints `holding K`, and sleeps
//!   until it is killed.
//! - `bars` asks the daemon for bars (a query), faults in every fixed-width
//!   buffer, prints one JSON line
//!   `{"lang":"rust","pid":..,"rows":..,"arena":"..","zero_copy":..,"sum_close":..}`,
//!   and keeps the result mapped until stdin closes. With `--wait-go` it first
//!   prints `{"ready":true,"pid":..}` and waits for a line on stdin.
//!
//! Exit codes: 0 success, 1 failure (message on stderr; for `subscribe`
//! also in the JSON line), 2 bad command line.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ringfeed_arrow::{
    ohlcv_schema, Batch, OnFull, ReadError, Reader, RingOptions, StartAt, Writer,
};
use ringfeed_xtest::{bar_batch, json_string, verify_bar_batch};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "rf-xtest",
    about = "Writer and reader processes for ringfeed's multi-process tests",
    long_about = "Writer and reader processes for ringfeed's multi-process tests.\n\n\
Batch seq i (1-based) has R rows; row j: ts = i*1e9 + j ns (UTC), symbol = \"S{j%4}\", \
open = i + 0.5*j, high = open + 1, low = open - 1, close = open + 0.25, volume = j.\n\
Arenas live in $RINGFEED_SHM_DIR (default /dev/shm)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a ring with ohlcv_schema() and publish N formula batches, then print `published N` and close it.
    Publish(PublishArgs),
    /// Read and verify batches; print one JSON line; exit 0 only if every check passed.
    Subscribe(SubscribeArgs),
    /// Read K batches (oldest first), keep their leases, print `holding K`, then sleep until killed.
    Hold(HoldArgs),
    /// Query the daemon, touch the result, print one JSON line, hold it until stdin closes.
    Bars(BarsArgs),
}

#[derive(clap::Args)]
struct BarsArgs {
    /// Daemon socket.
    #[arg(long)]
    socket: std::path::PathBuf,
    /// Dataset.
    #[arg(long)]
    dataset: String,
    /// Symbol.
    #[arg(long)]
    symbol: String,
    /// Timeframe.
    #[arg(long, default_value = "1m")]
    timeframe: String,
    /// First bar (YYYY-MM-DD, RFC 3339 or ns).
    #[arg(long)]
    start: Option<String>,
    /// End, excluded.
    #[arg(long)]
    end: Option<String>,
    /// Print a ready line and wait for a line on stdin before querying.
    #[arg(long)]
    wait_go: bool,
}

#[derive(clap::Args)]
struct PublishArgs {
    /// Arena name.
    #[arg(long)]
    name: String,
    /// Batches to publish.
    #[arg(long)]
    batches: u64,
    /// Rows per batch.
    #[arg(long)]
    rows: usize,
    /// Descriptor slots in the ring.
    #[arg(long, default_value_t = 8)]
    slots: u32,
    /// Bytes per slot.
    #[arg(long, default_value_t = 1 << 20)]
    slot_bytes: u64,
    /// Block (lossless) with this timeout in ms when the ring is full; absent = overwrite the oldest batch.
    #[arg(long)]
    block_ms: Option<u64>,
    /// Wait up to 30 s for this many readers before publishing (fails if they do not come).
    #[arg(long)]
    wait_readers: Option<usize>,
    /// Sleep this many microseconds between batches.
    #[arg(long)]
    interval_us: Option<u64>,
    /// After publishing, keep the writer open and sleep until killed.
    #[arg(long)]
    hold: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Start {
    Oldest,
    Latest,
    Next,
}

impl From<Start> for StartAt {
    fn from(s: Start) -> Self {
        match s {
            Start::Oldest => StartAt::Oldest,
            Start::Latest => StartAt::Latest,
            Start::Next => StartAt::Next,
        }
    }
}

#[derive(clap::Args)]
struct SubscribeArgs {
    /// Arena name.
    #[arg(long)]
    name: String,
    /// Batches to read; stops earlier when the writer closes the ring.
    #[arg(long)]
    expect: u64,
    /// Where to start reading.
    #[arg(long, value_enum, default_value_t = Start::Oldest)]
    start: Start,
    /// How long to keep retrying the open (the writer may not exist yet), and
    /// the longest wait for any one batch.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Keep the first batch leased and verify it again after reading all the others.
    #[arg(long)]
    hold_first: bool,
    /// Count `Lagged` errors as missed batches instead of failing.
    #[arg(long)]
    allow_lag: bool,
    /// Also require every batch to have exactly this many rows.
    #[arg(long)]
    rows: Option<usize>,
}

#[derive(clap::Args)]
struct HoldArgs {
    /// Arena name.
    #[arg(long)]
    name: String,
    /// Batches to read and keep.
    #[arg(long)]
    count: usize,
    /// How long to keep retrying the open, and the longest wait for any one batch.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Publish(a) => publish(a),
        Cmd::Subscribe(a) => return subscribe(a),
        Cmd::Hold(a) => hold(a),
        Cmd::Bars(a) => bars(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rf-xtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sleep_until_killed() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn publish(a: PublishArgs) -> Result<()> {
    let opts = RingOptions {
        slots: a.slots,
        slot_bytes: a.slot_bytes,
        on_full: match a.block_ms {
            Some(ms) => OnFull::Block(Duration::from_millis(ms)),
            None => OnFull::OverwriteOldest,
        },
        ..RingOptions::default()
    };
    let mut w = Writer::create(&a.name, &ohlcv_schema(), opts)
        .with_context(|| format!("creating ring {:?}", a.name))?;
    if let Some(k) = a.wait_readers {
        if !w.ring_mut().wait_for_readers(k, Duration::from_secs(30)) {
            let n = w.ring().readers().len();
            bail!(
                "only {n} of {k} readers attached to {:?} within 30 s",
                a.name
            );
        }
    }
    // The writer's own Arc makes `write` skip the schema comparison.
    let schema = w.schema().clone();
    for _ in 0..a.batches {
        let seq = w.ring().next_seq();
        let batch = bar_batch(&schema, seq, a.rows);
        let got = w
            .write(&batch)
            .with_context(|| format!("writing batch {seq}"))?;
        ensure!(
            got == seq,
            "batch built for seq {seq} was published as seq {got}"
        );
        if let Some(us) = a.interval_us {
            std::thread::sleep(Duration::from_micros(us));
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "published {}", a.batches)?;
    out.flush()?;
    drop(out);
    if a.hold {
        sleep_until_killed();
    }
    w.close();
    Ok(())
}

/// Opens `name`, retrying while it does not exist yet, until `deadline`.
fn open_retry(name: &str, start: StartAt, deadline: Instant) -> Result<Reader> {
    loop {
        match Reader::open(name, start) {
            Ok(r) => return Ok(r),
            Err(ringfeed_arrow::OpenError::Ring(ringfeed_shm::OpenError::NotFound { .. }))
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).with_context(|| format!("opening ring {name:?}")),
        }
    }
}

#[derive(Default)]
struct Tally {
    batches: u64,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    missed: u64,
    zero_copy: bool,
}

impl Tally {
    fn json(&self, error: Option<&str>) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "null".to_string(), |v| v.to_string());
        format!(
            r#"{{"batches":{},"first_seq":{},"last_seq":{},"missed":{},"zero_copy":{},"verified":{},"error":{}}}"#,
            self.batches,
            opt(self.first_seq),
            opt(self.last_seq),
            self.missed,
            self.zero_copy,
            error.is_none(),
            error.map_or_else(|| "null".to_string(), json_string),
        )
    }
}

fn check(b: &Batch, rows: Option<usize>) -> Result<()> {
    verify_bar_batch(b, b.seq()).map_err(anyhow::Error::msg)?;
    if let Some(r) = rows {
        ensure!(
            b.num_rows() == r,
            "batch {} has {} rows, expected {r}",
            b.seq(),
            b.num_rows()
        );
    }
    ensure!(
        b.is_zero_copy(),
        "batch {} is not zero-copy: a buffer lies outside the arena",
        b.seq()
    );
    Ok(())
}

fn subscribe(a: SubscribeArgs) -> ExitCode {
    let mut t = Tally {
        zero_copy: true,
        ..Tally::default()
    };
    let result = subscribe_into(&a, &mut t);
    let err = result.err().map(|e| format!("{e:#}"));
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "{}", t.json(err.as_deref())).and_then(|()| out.flush());
    match (err, printed) {
        (None, Ok(())) => ExitCode::SUCCESS,
        (Some(e), _) => {
            eprintln!("rf-xtest subscribe: {e}");
            ExitCode::FAILURE
        }
        (None, Err(_)) => ExitCode::FAILURE,
    }
}

fn subscribe_into(a: &SubscribeArgs, t: &mut Tally) -> Result<()> {
    let timeout = Duration::from_millis(a.timeout_ms);
    let mut reader = open_retry(&a.name, a.start.into(), Instant::now() + timeout)?;
    ensure!(
        reader.schema().fields() == ohlcv_schema().fields(),
        "ring schema is not ohlcv_schema(): {:?}",
        reader.schema()
    );
    // Every read returns seq == cursor; a lag moves the cursor by `missed`.
    let mut expected = reader.ring().cursor();
    let mut first: Option<Batch> = None;
    while t.batches < a.expect {
        match reader.read(timeout) {
            Ok(Some(b)) => {
                ensure!(
                    b.seq() == expected,
                    "got batch {} but expected {expected} (seqs must rise by 1{})",
                    b.seq(),
                    if a.allow_lag {
                        ", plus what Lagged reported"
                    } else {
                        ""
                    }
                );
                expected = b.seq() + 1;
                t.batches += 1;
                t.first_seq.get_or_insert(b.seq());
                t.last_seq = Some(b.seq());
                t.zero_copy &= b.is_zero_copy();
                check(&b, a.rows)?;
                if a.hold_first && first.is_none() {
                    first = Some(b);
                }
            }
            Ok(None) => bail!(
                "no batch within {} ms after {} batches",
                a.timeout_ms,
                t.batches
            ),
            Err(ReadError::Lagged { missed }) if a.allow_lag => {
                t.missed += missed;
                expected += missed;
            }
            Err(ReadError::Closed { .. }) => {
                ensure!(
                    a.allow_lag || t.batches == a.expect,
                    "ring closed after {} of {} batches",
                    t.batches,
                    a.expect
                );
                break;
            }
            Err(e) => bail!("after {} batches: {e}", t.batches),
        }
    }
    if let Some(f) = first {
        verify_bar_batch(&f, f.seq())
            .map_err(|e| anyhow::anyhow!("held first batch changed while leased: {e}"))?;
    }
    Ok(())
}

fn hold(a: HoldArgs) -> Result<()> {
    let timeout = Duration::from_millis(a.timeout_ms);
    let mut reader = open_retry(&a.name, StartAt::Oldest, Instant::now() + timeout)?;
    let mut held = Vec::with_capacity(a.count);
    while held.len() < a.count {
        match reader.read(timeout) {
            Ok(Some(b)) => {
                check(&b, None)?;
                held.push(b);
            }
            Ok(None) => bail!(
                "no batch within {} ms after {} batches",
                a.timeout_ms,
                held.len()
            ),
            Err(ReadError::Lagged { .. }) => continue,
            Err(e) => bail!("after {} batches: {e}", held.len()),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "holding {}", held.len())?;
    out.flush()?;
    // `held` (and `reader`) stay alive: the leases are what the test is about.
    let _keep = (held, reader);
    sleep_until_killed();
}

fn time_spec(s: &str) -> ringfeed_client::TimeSpec {
    // The client's one time grammar: ints in s/ms/us/ns by magnitude, ISO text.
    ringfeed_client::TimeSpec::Text(s.into())
}

fn bars(a: BarsArgs) -> Result<()> {
    use arrow_array::Array;
    let mut client = ringfeed_client::Client::connect(Some(&a.socket))?;
    let pid = std::process::id();
    let mut line = String::new();
    if a.wait_go {
        println!("{{\"ready\":true,\"pid\":{pid}}}");
        std::io::stdout().flush()?;
        std::io::stdin().read_line(&mut line)?;
    }
    let q = ringfeed_client::protocol::QuerySpec {
        dataset: a.dataset,
        symbols: vec![a.symbol],
        timeframe: a.timeframe,
        start: a.start.as_deref().map(time_spec),
        end: a.end.as_deref().map(time_spec),
        ..Default::default()
    };
    let bars = client.bars(&q)?;
    // Fault in every fixed-width buffer (a checksum the compiler cannot drop).
    let mut touched = 0u64;
    let mut sum_close = 0.0f64;
    for b in &bars.batches {
        for (f, col) in b.schema().fields().iter().zip(b.columns()) {
            let data = col.to_data();
            if f.data_type().is_primitive() || f.data_type().is_temporal() {
                for buf in data.buffers() {
                    touched = touched.wrapping_add(
                        buf.as_slice()
                            .iter()
                            .step_by(64)
                            .map(|&x| x as u64)
                            .sum::<u64>(),
                    );
                }
            }
            if f.name() == "close" {
                let c = col
                    .as_any()
                    .downcast_ref::<arrow_array::Float64Array>()
                    .context("close is not f64")?;
                sum_close += c.values().iter().sum::<f64>();
            }
        }
    }
    std::hint::black_box(touched);
    let zero_copy = bars.batches.iter().all(|b| b.is_zero_copy());
    println!(
        "{{\"lang\":\"rust\",\"pid\":{pid},\"rows\":{},\"arena\":{},\"zero_copy\":{zero_copy},\"sum_close\":{sum_close}}}",
        bars.rows,
        json_string(&bars.arena)
    );
    std::io::stdout().flush()?;
    // Hold the mapping until the harness closes stdin.
    while std::io::stdin().read_line(&mut line)? > 0 {}
    drop(bars);
    Ok(())
}
