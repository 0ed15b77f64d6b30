//! `ringfeed fsck`: check a data directory offline (WAL frames, catalog, Parquet parts,
//! permissions, quarantine), and optionally repair what the writer's open repairs.

use ringfeed_store::fsck::{self, FsckReport};
use ringfeed_store::StoreOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `ringfeed fsck`.
#[derive(clap::Args)]
pub struct FsckArgs {
    /// Data directory of the store.
    #[arg(long, alias = "data", default_value = "ringfeed-data")]
    pub data_dir: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Repair as the writer's open does (damaged WAL regions to quarantine with every
    /// valid frame kept, torn tails cut, interrupted rollups rewritten, leftovers
    /// removed), narrow modes that are too wide, then check again. Needs the writer's
    /// lock: stop the daemon first.
    #[arg(long)]
    pub repair: bool,
    /// The modes to check against are 0750/0640 (a store created with group-readable
    /// files) instead of 0700/0600.
    #[arg(long)]
    pub group_readable: bool,
}

/// The `--help` epilogue.
pub const AFTER_HELP: &str = "\
Checks, without changing anything (unless --repair):
  wal          every frame's magic, length, CRC and payload; damaged regions (corruption:
               valid frames follow) and torn tails (a write cut short); rows outside the
               file's day; rollups left behind their base bars
  catalog      it loads; every symbol in the WALs and Parquet parts is listed
  parquet      each part in the catalog opens, its footer reads, it has the expected
               columns and row count; parts the catalog does not reference
  permissions  files wider than 0600 and directories wider than 0700
  quarantine   regions set aside earlier (<data-dir>/_quarantine/, safe to delete)

Exit status:
  0  clean (warnings, e.g. a torn tail the writer cuts on open, do not count)
  1  problems found (listed; --repair fixes the WAL ones)
  2  could not run (no data directory; --repair: the store is open by its writer)

Examples:
  ringfeed fsck --data-dir ringfeed-data
  ringfeed fsck --json
  ringfeed fsck --repair";

/// Run `ringfeed fsck`: returns the exit status.
pub fn run(a: FsckArgs) -> ExitCode {
    let opts = if a.group_readable {
        StoreOptions::default().group_readable()
    } else {
        StoreOptions::default()
    };
    let res = if a.repair {
        fsck::repair(&a.data_dir, &opts)
    } else {
        fsck::check(&a.data_dir, &opts)
    };
    let rep = match res {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringfeed fsck: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if a.json {
        serde_json::to_writer_pretty(&mut out, &rep)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        print_human(&mut out, &rep)
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("ringfeed fsck: cannot write the report: {e}");
        return ExitCode::from(2);
    }
    if rep.problems() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_human(out: &mut impl Write, rep: &FsckReport) -> std::io::Result<()> {
    writeln!(out, "ringfeed fsck {}", rep.root.display())?;
    writeln!(
        out,
        "  catalog v{}, {} datasets; {} WAL files, {} frames; {} Parquet parts",
        rep.catalog_version, rep.datasets, rep.wal_files, rep.wal_frames, rep.parquet_files
    )?;
    for r in &rep.repaired {
        writeln!(out, "repaired {r}")?;
    }
    for f in &rep.findings {
        writeln!(out, "{f}")?;
    }
    let verdict = if rep.problems() == 0 {
        "clean"
    } else {
        "PROBLEMS FOUND"
    };
    writeln!(
        out,
        "{verdict}: {} problems, {} warnings",
        rep.problems(),
        rep.warnings()
    )
}
