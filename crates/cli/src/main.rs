//! `ringfeed`: the command-line face of ringfeed: load files into the bar store, query
//! it, list what it holds, run the daemon and watch it, and inspect or remove
//! shared-memory arenas.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringfeed_shm::layout::row_state;
use std::process::ExitCode;

mod append_cmd;
mod changes_cmd;
mod datasets;
mod decimal;
mod fsck_cmd;
mod health;
mod lake_cmd;
mod lifecycle_cmd;
mod output;
mod stat;
mod store_cmd;
mod top;

/// The top-level `--help` epilogue: a first session, and the exit codes of every command.
const AFTER_HELP: &str = "\
A first session:
  ringfeed ingest --dataset crypto ADABTC-1m-2021-11-27.csv   # load a Binance kline file
  ringfeed datasets                                           # what the store holds
  ringfeed query --dataset crypto --timeframe 5m              # read it back, resampled
  ringfeed serve &                                            # share it over shared memory

Exit status:
  0  ok
  1  error (the message on stderr says what happened)
  2  bad arguments (usage)
  3  rows rejected: ingest and append loaded the good rows but rejected others (listed on
     stderr; --allow-rejects exits 0 instead)

Output has no colours or progress bars when it is not a terminal.";

#[derive(Parser)]
#[command(
    name = "ringfeed",
    version,
    about = "Zero-copy market-data exchange: load, query and serve bars; inspect shared-memory arenas",
    long_about = "Zero-copy market-data exchange for one host.\n\n\
The bar store (a data directory, default ./ringfeed-data) keeps bars and trades: a WAL for \
recent days, Parquet for older ones, rollups to coarser timeframes. `ringfeed serve` shares it \
with other processes over shared memory: queries and live topics.\n\n\
Arenas are files named ringfeed.<NAME> in $RINGFEED_SHM_DIR (default /dev/shm). \
Each holds one ring of Arrow record batches: one writer, many readers.",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List arenas, or show one in detail: header, schema, slots, readers, leases, lag.
    #[command(after_help = "Examples:\n  ringfeed inspect\n  ringfeed inspect rfd1000.crypto.1m")]
    Inspect {
        /// Arena to show; omit to list every arena.
        name: Option<String>,
    },
    /// Remove arenas. Readers that have one mapped keep reading what they hold.
    #[command(
        after_help = "Example (remove what crashed writers left behind):\n  ringfeed rm --stale"
    )]
    Rm {
        /// Arenas to remove.
        names: Vec<String>,
        /// Remove even if a live writer still holds the arena.
        #[arg(long)]
        force: bool,
        /// Remove every arena whose writer is gone (leftovers of crashed writers).
        #[arg(long, conflicts_with = "names")]
        stale: bool,
    },
    /// Load bars or trades from files into the store (Binance kline CSV, CSV, Parquet,
    /// Feather). Creates the dataset on first use; bad rows are listed, not loaded.
    Ingest(store_cmd::Ingest),
    /// Read bars from the store: stored or resampled timeframes, as a table, CSV, JSON,
    /// Arrow or Parquet.
    Query(store_cmd::QueryArgs),
    /// List the datasets of a store: base timeframe, stored timeframes (rollups), symbols,
    /// first and last bar. Reads the data directory, or asks the daemon (--daemon).
    #[command(
        after_help = "Examples:\n  ringfeed datasets --data-dir ringfeed-data\n  ringfeed datasets --daemon --json"
    )]
    Datasets(datasets::DatasetsArgs),
    /// Show a dataset's change log: the deletes, trims and rows written below a symbol's
    /// newest bar, which followers apply besides the live rows (docs/scale-out.md).
    #[command(
        after_help = "Examples:\n  ringfeed changes --data-dir ringfeed-data --dataset crypto\n  ringfeed changes --dataset crypto --since 120 --json"
    )]
    Changes(changes_cmd::ChangesArgs),
    /// Move closed days from the hot WAL into Parquet.
    #[command(after_help = "Example:\n  ringfeed write-down --dataset crypto --before 2021-11-28")]
    WriteDown(store_cmd::WriteDown),
    /// Merge the day files of finished months into one Parquet file per dataset,
    /// timeframe and month (write-down does this itself; this is for `--no-compact`
    /// write-downs and stores written before compaction).
    #[command(after_help = "Example:\n  ringfeed compact --dataset crypto --before 2021-12-01")]
    Compact(store_cmd::Compact),
    /// Delete a time range of a symbol (rollups follow).
    #[command(
        after_help = "Example (the end is excluded):\n  ringfeed delete --dataset crypto --symbol ADABTC --start 2021-11-27T00:00Z --end 2021-11-27T01:00Z"
    )]
    Delete(store_cmd::Delete),
    /// Set how long a dataset keeps its rows (e.g. 400d), and apply it: older partitions
    /// are dropped.
    #[command(after_help = lifecycle_cmd::RETENTION_HELP)]
    Retention(lifecycle_cmd::Retention),
    /// Remove the rows before a time, of one symbol or all, in every stored timeframe.
    #[command(after_help = lifecycle_cmd::TRIM_HELP)]
    Trim(lifecycle_cmd::Trim),
    /// Remove a dataset and its files (asks for --yes when it holds rows).
    #[command(after_help = lifecycle_cmd::DROP_HELP)]
    DropDataset(lifecycle_cmd::DropDataset),
    /// Send bars (or trades) from files to the running daemon: durable, rolled up and
    /// published to its live topics. Reads the same formats as `ingest`.
    Append(append_cmd::Append),
    /// Run the sidecar daemon (same as `ringfeedd`): queries and live topics over shared memory.
    #[command(
        after_help = "Example:\n  ringfeed serve --data-dir ringfeed-data --metrics 127.0.0.1:9464"
    )]
    Serve(ringfeed_daemon::ServeArgs),
    /// Show what the running daemon is doing: queries, cache, ingest, topics with their
    /// readers and lag, connections (--prometheus: the raw metrics text).
    #[command(after_help = "Examples:\n  ringfeed stat\n  ringfeed stat --prometheus")]
    Stat(stat::StatArgs),
    /// Check a data directory offline: WAL frames (CRC, damage, torn tails), catalog
    /// consistency, Parquet footers and schema, permissions. Exit 0 clean, 1 problems, 2
    /// could not run. --repair repairs what the writer's open repairs.
    #[command(after_help = fsck_cmd::AFTER_HELP)]
    Fsck(fsck_cmd::FsckArgs),
    /// A refreshing view of every ring on the host and the daemon's topics: write rate,
    /// readers, lag, leases, the oldest lease's age, writer liveness. Sortable; q quits.
    #[command(after_help = top::AFTER_HELP)]
    Top(top::TopArgs),
    /// Whether the running daemon can answer queries and take appends now: the store,
    /// the ingest lock, the data directory, the result cache, the topics. Exit 0 healthy,
    /// 1 unhealthy, 2 no daemon.
    #[command(after_help = health::AFTER_HELP)]
    Health(health::HealthArgs),
    /// The Parquet lake on object storage: upload finished partitions (sync), check the
    /// objects against their manifests (verify), list what is pending (status).
    #[command(after_help = lake_cmd::AFTER_HELP)]
    Lake(lake_cmd::LakeArgs),
}

fn main() -> ExitCode {
    ringfeed_shm::malloc::retain_freed_memory(); // before any thread starts
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Fsck(a) => return fsck_cmd::run(a),
        Cmd::Health(a) => return health::run(a),
        Cmd::Lake(a) => return lake_cmd::run(a),
        _ => {}
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfeed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Inspect { name: None } => list(),
        Cmd::Inspect { name: Some(n) } => show(&n),
        Cmd::Rm {
            names,
            force,
            stale,
        } => rm(names, force, stale),
        Cmd::Ingest(a) => store_cmd::ingest(a),
        Cmd::Query(a) => store_cmd::query(a),
        Cmd::Datasets(a) => datasets::run(a),
        Cmd::Changes(a) => changes_cmd::run(a),
        Cmd::WriteDown(a) => store_cmd::write_down(a),
        Cmd::Compact(a) => store_cmd::compact(a),
        Cmd::Delete(a) => store_cmd::delete(a),
        Cmd::Retention(a) => lifecycle_cmd::retention(a),
        Cmd::Trim(a) => lifecycle_cmd::trim(a),
        Cmd::DropDataset(a) => lifecycle_cmd::drop_dataset(a),
        Cmd::Append(a) => append_cmd::append(a),
        Cmd::Serve(a) => Ok(a.run()?),
        Cmd::Stat(a) => stat::run(a),
        Cmd::Top(a) => top::run(a),
        Cmd::Fsck(_) | Cmd::Health(_) | Cmd::Lake(_) => {
            unreachable!(
                "fsck, health and lake run from main: they have exit statuses of their own"
            )
        }
    }
}

fn human(bytes: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn list() -> Result<()> {
    let dir = ringfeed_shm::shm_dir();
    let names =
        ringfeed_shm::list_arenas().with_context(|| format!("cannot list {}", dir.display()))?;
    if names.is_empty() {
        println!("no arenas in {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<40} {:>10} {:>7} {:>8} {:>10} {:>10} {:>7} {:>5} {:>6} {:>12}",
        "NAME",
        "SIZE",
        "STATE",
        "WRITER",
        "WRITE_SEQ",
        "PUBLISHED",
        "READERS",
        "LAG",
        "LEASES",
        "OLDEST_LEASE"
    );
    for n in names {
        match ringfeed_shm::inspect(&n) {
            Ok(i) => println!(
                "{:<40} {:>10} {:>7} {:>8} {:>10} {:>10} {:>7} {:>5} {:>6} {:>12}",
                n,
                human(i.header.total_len),
                i.state,
                if i.writer_alive { "alive" } else { "gone" },
                i.write_seq,
                i.bytes_published.map_or_else(|| "-".to_string(), human),
                i.readers.iter().filter(|r| r.problem.is_none()).count(),
                i.max_lag(),
                i.leases(),
                i.oldest_lease_age_ns()
                    .map_or_else(|| "-".to_string(), top::age)
            ),
            Err(e) => println!("{n:<40} unreadable: {e}"),
        }
    }
    Ok(())
}

fn show(name: &str) -> Result<()> {
    let i = ringfeed_shm::inspect(name)?;
    let h = &i.header;
    println!("arena      {}", i.name);
    println!("path       {}", i.path.display());
    println!(
        "layout     v{}.{}  instance {:016x}  size {}",
        h.layout_major,
        h.layout_minor,
        h.instance_id,
        human(h.total_len)
    );
    println!("state      {}", i.state);
    if let Some(p) = &i.table_problem {
        println!("table      unreadable: {p}");
    }
    println!(
        "writer     pid {} ({})  epoch {}",
        i.writer_pid,
        if i.writer_alive {
            "alive"
        } else {
            "gone: leftover, `ringfeed rm` removes it"
        },
        i.writer_epoch
    );
    let policy = if h.on_full == 1 {
        format!(
            "block (timeout {:?})",
            std::time::Duration::from_nanos(h.block_timeout_ns)
        )
    } else {
        "overwrite oldest".to_string()
    };
    println!(
        "ring       {} slots x {} ({} buffers), {} readers max, {} leases/reader, on full: {}",
        h.slots,
        human(h.buffer_bytes),
        h.buffers,
        h.max_readers,
        h.leases_per_reader,
        policy
    );
    println!(
        "batches    write_seq {}  oldest present {}",
        i.write_seq,
        (i.write_seq + 1)
            .saturating_sub(h.slots as u64)
            .max(1)
            .min(i.write_seq.max(1))
    );
    match i.bytes_published {
        Some(b) => println!("published  {} in {} batches", human(b), i.write_seq),
        None => println!(
            "published  {} batches (byte count: layout v2.0 arena does not keep one)",
            i.write_seq
        ),
    }
    println!(
        "leases     {} of {} buffers pinned{}",
        i.leased_buffers,
        h.buffers,
        i.oldest_lease_age_ns()
            .map_or_else(String::new, |a| format!(", oldest held {}", top::age(a)))
    );
    match i.meta.as_deref().map(ringfeed_arrow::codec::decode_schema) {
        Some(Ok(schema)) => {
            println!("schema     {} columns", schema.fields().len());
            for f in schema.fields() {
                println!(
                    "             {:<20} {}{}",
                    f.name(),
                    f.data_type(),
                    if f.is_nullable() { "" } else { " not null" }
                );
            }
        }
        Some(Err(_)) => println!("schema     ({} bytes, not an Arrow schema)", i.meta_len),
        None => println!("schema     (corrupt: length or CRC mismatch)"),
    }
    if i.readers.is_empty() {
        println!("readers    none");
    } else {
        println!(
            "readers    {:>4} {:>8} {:>9} {:>10} {:>6} {:>7} {:>9} {:>8}  PROBLEM",
            "ROW", "PID", "STATE", "CURSOR", "LAG", "LEASES", "LEASE_AGE", "MISSED"
        );
        for r in &i.readers {
            let st = match r.state {
                row_state::ACTIVE => "active",
                row_state::DRAINING => "draining",
                row_state::FREE => "free",
                _ => "?",
            };
            println!(
                "           {:>4} {:>8} {:>9} {:>10} {:>6} {:>7} {:>9} {:>8}  {}",
                r.row,
                r.pid,
                st,
                r.cursor,
                r.lag(i.write_seq),
                r.leases,
                r.lease_age_ns.map_or_else(|| "-".to_string(), top::age),
                r.missed,
                // The writer ignores a bad row's pins (and cursor).
                r.problem.map_or_else(String::new, |p| format!("BAD: {p}"))
            );
        }
        let bad = i.readers.iter().filter(|r| r.problem.is_some()).count();
        if bad > 0 {
            println!("           {bad} bad rows: a reader process wrote nonsense into its row (a bug in it); the writer ignores those rows");
        }
    }
    Ok(())
}

fn rm(names: Vec<String>, force: bool, stale: bool) -> Result<()> {
    let names = if stale {
        ringfeed_shm::list_arenas()?
            .into_iter()
            .filter(|n| {
                ringfeed_shm::inspect(n)
                    .map(|i| !i.writer_alive)
                    .unwrap_or(true)
            })
            .collect()
    } else {
        if names.is_empty() {
            bail!("name the arenas to remove, or pass --stale to remove leftovers of dead writers");
        }
        names
    };
    let mut failed = 0;
    for n in &names {
        if !force {
            if let Ok(i) = ringfeed_shm::inspect(n) {
                if i.writer_alive {
                    eprintln!("ringfeed: not removing {n:?}: its writer (pid {}) is alive; pass --force to remove it anyway", i.writer_pid);
                    failed += 1;
                    continue;
                }
            }
        }
        match ringfeed_shm::remove(n) {
            Ok(()) => println!("removed {n}"),
            Err(e) => {
                eprintln!("ringfeed: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} arenas not removed", names.len());
    }
    Ok(())
}
