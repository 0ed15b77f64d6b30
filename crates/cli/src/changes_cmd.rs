//! `ringfeed changes`: a dataset's change log (`ringfeed_store::changes`), read from a
//! data directory: the deletes, trims and rows written below a symbol's newest bar that
//! followers apply besides the live rows. For an operator checking what a follower
//! must have applied (its cursor is `<data_dir>/_follow/<dataset>.json` on the follower).

use anyhow::{Context, Result};
use clap::Args;
use ringfeed_store::changes::{ChangeKind, ChangesSince};
use ringfeed_store::BarStore;
use std::io::Write;

/// `ringfeed changes`.
#[derive(Args, Debug)]
pub struct ChangesArgs {
    #[command(flatten)]
    store: crate::store_cmd::Store,
    /// The dataset.
    #[arg(long)]
    dataset: String,
    /// First entry shown (a follower's `next_seq`; default: the whole log).
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// At most this many entries.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// One JSON document on stdout (the Flight `changes` action's answer) instead of
    /// the table.
    #[arg(long)]
    json: bool,
}

/// Run `ringfeed changes`.
pub fn run(a: ChangesArgs) -> Result<()> {
    let dir = &a.store.data_dir;
    if !dir.is_dir() {
        anyhow::bail!(
            "no store at {}: pass --data-dir <DIR> (the directory `ringfeed serve` uses)",
            dir.display()
        );
    }
    let store = BarStore::open_read_only(dir)
        .with_context(|| format!("cannot open store {}", dir.display()))?;
    let log = store
        .changes_since(&a.dataset, a.since, a.limit.max(1))
        .with_context(|| format!("cannot read the change log of {}", a.dataset))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&log)?)?;
    } else {
        table(&mut out, &a.dataset, &log)?;
    }
    out.flush()?;
    Ok(())
}

fn table(out: &mut impl Write, dataset: &str, log: &ChangesSince) -> std::io::Result<()> {
    writeln!(
        out,
        "change log of {dataset}: id {}, entries from {} kept whole, next {}",
        log.log_id, log.first_seq, log.next_seq
    )?;
    if log.changes.is_empty() {
        return writeln!(out, "no entries from the one asked for");
    }
    writeln!(
        out,
        "{:>8}  {:<7}  {:<12}  {:<30}  end",
        "seq", "kind", "symbol", "start"
    )?;
    for c in &log.changes {
        let start = if c.start == i64::MIN {
            "(the first bar)".to_string()
        } else {
            crate::output::iso(c.start)
        };
        writeln!(
            out,
            "{:>8}  {:<7}  {:<12}  {:<30}  {}",
            c.seq,
            match c.kind {
                ChangeKind::Rewrite => "rewrite",
                ChangeKind::Remove => "remove",
            },
            c.symbol.as_deref().unwrap_or("*"),
            start,
            crate::output::iso(c.end)
        )?;
    }
    Ok(())
}
