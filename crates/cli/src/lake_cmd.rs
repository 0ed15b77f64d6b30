//! `ringfeed lake sync|verify|status`: the Parquet lake by hand (the daemon syncs by
//! itself when `[lake]` is configured).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ringfeed_lake::{Lake, LakeConfig};
use std::path::PathBuf;
use std::process::ExitCode;

pub const AFTER_HELP: &str = "\
The lake is given by --url (s3://bucket/prefix or file:///path) and its flags, or by the
[lake] section of a daemon config (--config, which also gives data_dir). S3 credentials come
from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, --credentials-file, or ~/.aws/credentials.

Examples:
  ringfeed lake sync --data-dir ringfeed-data --url file:///srv/lake
  ringfeed lake sync --config /etc/ringfeed/ringfeedd.toml
  ringfeed lake verify --url s3://bars/ringfeed --endpoint http://127.0.0.1:9000 --allow-http

Exit status: sync 0 done, 1 failed (nothing is lost: run it again). verify 0 clean,
1 problems found (listed), 2 could not run (corrupt index, no index, lake unreachable).";

/// `ringfeed lake`.
#[derive(Args, Debug)]
pub struct LakeArgs {
    #[command(subcommand)]
    cmd: LakeCmd,
}

#[derive(Subcommand, Debug)]
enum LakeCmd {
    /// Upload every finished partition the lake does not hold as it is now, apply
    /// lake_retention, and delete objects no manifest names.
    Sync {
        #[command(flatten)]
        at: Where,
        /// Rebuild the index from the partition manifests first (a lost or corrupt index).
        #[arg(long)]
        rebuild_index: bool,
    },
    /// Check the index and manifests against the objects: presence, size, SHA-256.
    Verify {
        #[command(flatten)]
        at: Where,
        /// Sizes only, no checksums (no object is read).
        #[arg(long)]
        quick: bool,
    },
    /// List the store's finished partitions and whether the lake holds each as it is now.
    Status {
        #[command(flatten)]
        at: Where,
    },
}

/// Where the store and the lake are.
#[derive(Args, Debug)]
struct Where {
    /// Data directory of the store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A daemon config whose [lake] section (and data_dir) to use.
    #[arg(long, conflicts_with = "url")]
    config: Option<PathBuf>,
    /// The lake: s3://bucket/prefix or file:///path.
    #[arg(long)]
    url: Option<String>,
    /// S3 endpoint (an S3-compatible server).
    #[arg(long)]
    endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    region: Option<String>,
    /// Allow a plain http:// endpoint.
    #[arg(long)]
    allow_http: bool,
    /// AWS shared-credentials file.
    #[arg(long)]
    credentials_file: Option<PathBuf>,
    /// Keep partitions in the lake this long ("10y"; default: everything).
    #[arg(long)]
    lake_retention: Option<String>,
}

impl Where {
    fn resolve(self) -> Result<(LakeConfig, PathBuf)> {
        if let Some(path) = &self.config {
            let cfg = ringfeed_daemon::Config::load(path)?;
            let lake = cfg
                .lake
                .with_context(|| format!("{} has no [lake] section", path.display()))?;
            return Ok((lake, self.data_dir.unwrap_or(cfg.data_dir)));
        }
        let url = self
            .url
            .context("name the lake: --url s3://bucket/prefix (or file:///path), or --config FILE with a [lake] section")?;
        let lake_retention = self
            .lake_retention
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--lake-retention: {e}"))?;
        Ok((
            LakeConfig {
                url,
                endpoint: self.endpoint,
                region: self.region,
                allow_http: self.allow_http,
                credentials_file: self.credentials_file,
                lake_retention,
                ..LakeConfig::default()
            },
            self.data_dir
                .unwrap_or_else(|| PathBuf::from("ringfeed-data")),
        ))
    }
}

/// Runs `ringfeed lake …` and returns its exit status.
pub fn run(a: LakeArgs) -> ExitCode {
    match a.cmd {
        LakeCmd::Sync { at, rebuild_index } => status(sync(at, rebuild_index)),
        LakeCmd::Status { at } => status(show_status(at)),
        LakeCmd::Verify { at, quick } => match verify(at, quick) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("ringfeed lake verify: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn status(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfeed lake: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(at: Where) -> Result<Lake> {
    let (cfg, data_dir) = at.resolve()?;
    Ok(Lake::open(&cfg, &data_dir)?)
}

fn sync(at: Where, rebuild: bool) -> Result<()> {
    let lake = open(at)?;
    let r = if rebuild {
        lake.rebuild_index()?
    } else {
        lake.sync()?
    };
    let mb = r.uploaded_bytes as f64 / 1e6;
    println!(
        "lake {}: {} finished partitions local; uploaded {} partitions ({} objects, {:.1} MB, {:.1} MB/s), {} relinked, {} expired, {} objects deleted; the lake holds {} partitions ({} ms)",
        lake.url(),
        r.local_partitions,
        r.partitions_uploaded,
        r.uploaded_objects,
        mb,
        mb / (r.elapsed_ms.max(1) as f64 / 1e3),
        r.partitions_relinked,
        r.partitions_expired,
        r.deleted_objects,
        r.lake_partitions,
        r.elapsed_ms
    );
    Ok(())
}

fn show_status(at: Where) -> Result<()> {
    let lake = open(at)?;
    let parts = lake.status()?;
    let pending = parts.iter().filter(|(_, done)| !done).count();
    for (p, done) in &parts {
        let rows: u64 = p.parts.iter().map(|f| f.rows).sum();
        println!(
            "{:<9} {} ({} rows)",
            if *done { "in lake" } else { "PENDING" },
            p.key,
            rows
        );
    }
    println!("{} finished partitions, {pending} pending", parts.len());
    Ok(())
}

fn verify(at: Where, quick: bool) -> Result<bool> {
    let lake = open(at)?;
    let r = lake.verify(quick)?;
    for p in &r.problems {
        println!("PROBLEM {p}");
    }
    for s in &r.strays {
        println!("stray (no record names it; the next sync deletes it): {s}");
    }
    println!(
        "lake {}: {} partitions, {} objects, {} rows, {:.1} MB checked ({}): {}",
        lake.url(),
        r.partitions,
        r.files,
        r.rows,
        r.bytes as f64 / 1e6,
        if quick { "sizes" } else { "sizes and SHA-256" },
        if r.ok() {
            "ok".to_string()
        } else {
            format!("{} problems", r.problems.len())
        }
    );
    Ok(r.ok())
}
