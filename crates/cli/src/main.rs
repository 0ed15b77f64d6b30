//! `ringfeed`: inspect and remove shared-memory arenas.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringfeed_shm::layout::row_state;
use std::process::ExitCode;

mod store_cmd;

#[derive(Parser)]
#[command(
    name = "ringfeed",
    version,
    about = "Zero-copy market-data exchange: inspect and manage ringfeed shared-memory arenas",
    long_about = "Zero-copy market-data exchange for one host.\n\n\
Arenas are files named ringfeed.<NAME> in $RINGFEED_SHM_DIR (default /dev/shm). \
Each holds one ring of Arrow record batches: one writer, many readers."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List arenas, or show one in detail: header, schema, slots, readers, leases, lag.
    Inspect {
        /// Arena to show; omit to list every arena.
        name: Option<String>,
    },
    /// Remove arenas. Readers that have one mapped keep reading what they hold.
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
    /// Load bars or trades into the store (Binance kline CSV, CSV, Parquet, Feather).
    Ingest(store_cmd::Ingest),
    /// Read bars from the store: stored or resampled timeframes, any output format.
    Query(store_cmd::QueryArgs),
    /// Move closed days from the hot WAL into Parquet.
    WriteDown(store_cmd::WriteDown),
    /// Delete a time range of a symbol (rollups follow).
    Delete(store_cmd::Delete),
    /// Send bars (or trades) from files to the running daemon: durable, rolled up and
    /// published to its live topics. Reads the same formats as `ingest`.
    Append(store_cmd::Append),
    /// Run the sidecar daemon (same as `ringfeedd`): queries and live topics over shared memory.
    Serve(ringfeed_daemon::ServeArgs),
    /// Print the daemon's metrics (Prometheus text): topics, readers, lag, leases, cache, ingest, queries.
    Stat {
        /// Daemon socket (default: $RINGFEED_SOCKET, else the daemon's default path).
        #[arg(long)]
        socket: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
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
        Cmd::WriteDown(a) => store_cmd::write_down(a),
        Cmd::Delete(a) => store_cmd::delete(a),
        Cmd::Append(a) => store_cmd::append(a),
        Cmd::Serve(a) => Ok(a.run()?),
        Cmd::Stat { socket } => {
            let mut c = ringfeed_client::Client::connect(socket.as_deref())?;
            print!("{}", c.stat()?);
            Ok(())
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
        "{:<40} {:>10} {:>7} {:>8} {:>10} {:>7} {:>5}",
        "NAME", "SIZE", "STATE", "WRITER", "WRITE_SEQ", "READERS", "LAG"
    );
    for n in names {
        match ringfeed_shm::inspect(&n) {
            Ok(i) => println!(
                "{:<40} {:>10} {:>7} {:>8} {:>10} {:>7} {:>5}",
                n,
                human(i.header.total_len),
                i.state,
                if i.writer_alive { "alive" } else { "gone" },
                i.write_seq,
                i.readers.len(),
                i.max_lag()
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
    println!(
        "leases     {} of {} buffers pinned",
        i.leased_buffers, h.buffers
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
            "readers    {:>4} {:>8} {:>9} {:>10} {:>6} {:>7} {:>8}",
            "ROW", "PID", "STATE", "CURSOR", "LAG", "LEASES", "MISSED"
        );
        for r in &i.readers {
            let st = match r.state {
                row_state::ACTIVE => "active",
                row_state::DRAINING => "draining",
                _ => "?",
            };
            println!(
                "           {:>4} {:>8} {:>9} {:>10} {:>6} {:>7} {:>8}",
                r.row,
                r.pid,
                st,
                r.cursor,
                (i.write_seq + 1).saturating_sub(r.cursor),
                r.leases,
                r.missed
            );
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
