//! Offline check of a data directory: what `ringfeed fsck` runs.
//!
//! [`check`] reads a store without changing it and lists what it finds:
//! - **WAL** frames: magic, length, CRC, payload decodes; damaged regions (corruption,
//!   with valid frames after them) and torn tails; rows outside the file's UTC day;
//!   symbols the catalog does not list; WALs of unknown datasets or timeframes; rollups
//!   left behind their base bars by a write cut short;
//! - the **catalog**: it loads; every symbol of the hot and cold tiers is listed;
//! - **Parquet** parts: each catalog entry exists, its footer reads, it has the expected
//!   columns and the catalog's row count; part files the catalog does not reference;
//! - **permissions**: files and directories wider than the configured modes;
//! - the **quarantine**: regions set aside earlier.
//!
//! [`repair`] opens the store as its writer does (damaged regions to quarantine, torn
//! tails cut, rollups rewritten, leftovers removed), narrows modes that are too wide,
//! and checks again.
//!
//! ```
//! use ringfeed_store::{fsck, BarStore, DatasetConfig, StoreOptions};
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = BarStore::open(dir.path()).unwrap();
//! store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
//! drop(store);
//! let report = fsck::check(dir.path(), &StoreOptions::default()).unwrap();
//! assert_eq!(report.problems(), 0, "{:?}", report.findings);
//! ```

use crate::catalog::{Catalog, DatasetEntry};
use crate::merge::Op;
use crate::perms::StoreOptions;
use crate::schema::{self, Kind};
use crate::store::{parse_day, BarStore, OpenError};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use crate::wal;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Data is damaged, missing or inconsistent: `ringfeed fsck` exits 1.
    Problem,
    /// Something the writer fixes when it next opens (a torn tail, a leftover file), or
    /// worth a look (modes wider than configured).
    Warning,
    /// For the record (regions quarantined earlier).
    Info,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Problem => "PROBLEM",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// One thing [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// Which check: `wal`, `catalog`, `parquet`, `permissions` or `quarantine`.
    pub check: &'static str,
    /// The file or directory concerned.
    pub path: Option<PathBuf>,
    /// What was found and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {:<11} ", self.severity, self.check)?;
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        f.write_str(&self.message)
    }
}

/// What [`check`] looked at and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// The data directory.
    pub root: PathBuf,
    /// Catalog version (0: none committed yet).
    pub catalog_version: u64,
    /// Datasets in the catalog.
    pub datasets: usize,
    /// WAL files read.
    pub wal_files: usize,
    /// Valid WAL frames.
    pub wal_frames: usize,
    /// Parquet parts checked.
    pub parquet_files: usize,
    /// What was found, problems first.
    pub findings: Vec<Finding>,
    /// What [`repair`] did (empty for [`check`]).
    pub repaired: Vec<String>,
}

impl FsckReport {
    /// Findings of severity [`Severity::Problem`].
    pub fn problems(&self) -> usize {
        self.count(Severity::Problem)
    }

    /// Findings of severity [`Severity::Warning`].
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    fn push(&mut self, severity: Severity, check: &'static str, path: &Path, message: String) {
        self.findings.push(Finding {
            severity,
            check,
            path: Some(path.to_path_buf()),
            message,
        });
    }
}

/// Why [`check`] or [`repair`] could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsckError {
    /// The data directory does not exist or is not a directory.
    #[error("no data directory at {0}: pass the store's directory with --data-dir")]
    NoStore(PathBuf),
    /// Repair needs the writer's lock, or could not open the store.
    #[error("cannot repair: {0}")]
    Open(#[from] OpenError),
}

/// Check a data directory offline without changing it; `modes` are the modes files and
/// directories should not exceed.
pub fn check(root: &Path, modes: &StoreOptions) -> Result<FsckReport, FsckError> {
    if !root.is_dir() {
        return Err(FsckError::NoStore(root.to_path_buf()));
    }
    let mut rep = FsckReport {
        root: root.to_path_buf(),
        ..Default::default()
    };
    let catalog = match Catalog::load(root) {
        Ok(c) => Some(c),
        Err(e) => {
            rep.push(
                Severity::Problem,
                "catalog",
                &crate::catalog::dir(root),
                e.to_string(),
            );
            None
        }
    };
    if let Some(c) = &catalog {
        rep.catalog_version = c.version;
        rep.datasets = c.datasets.len();
    }
    check_wals(root, catalog.as_ref(), &mut rep);
    if let Some(c) = &catalog {
        check_parts(root, c, &mut rep);
    }
    for (path, mode) in crate::perms::too_open(root, modes) {
        let want = if path.is_dir() {
            modes.dir_mode
        } else {
            modes.file_mode
        };
        rep.push(
            Severity::Warning,
            "permissions",
            &path,
            format!(
                "mode {mode:04o} grants more than {want:04o}; `ringfeed fsck --repair` narrows it (or chmod it)"
            ),
        );
    }
    for q in crate::quarantine::list(root) {
        rep.findings.push(Finding {
            severity: Severity::Info,
            check: "quarantine",
            path: q.quarantined.clone(),
            message: format!("set aside earlier: {q}"),
        });
    }
    rep.findings.sort_by_key(|f| f.severity);
    Ok(rep)
}

/// Open the store as its writer does (damaged WAL regions to quarantine with every valid
/// frame kept, torn tails cut, interrupted rollups rewritten, leftovers removed), narrow
/// modes wider than `opts`, then [`check`] again. Needs the writer's lock: stop the daemon
/// first.
pub fn repair(root: &Path, opts: &StoreOptions) -> Result<FsckReport, FsckError> {
    if !root.is_dir() {
        return Err(FsckError::NoStore(root.to_path_buf()));
    }
    let store = BarStore::open_with(root, opts.clone())?;
    let mut repaired = store.recovery_notes();
    drop(store);
    for (path, mode) in crate::perms::too_open(root, opts) {
        let want = if path.is_dir() {
            opts.dir_mode
        } else {
            opts.file_mode
        };
        use std::os::unix::fs::PermissionsExt;
        let narrowed = std::fs::Permissions::from_mode(mode & want);
        if std::fs::set_permissions(&path, narrowed).is_ok() {
            repaired.push(format!(
                "narrowed {} from {mode:04o} to {:04o}",
                path.display(),
                mode & want
            ));
        }
    }
    let mut rep = check(root, opts)?;
    rep.repaired = repaired;
    Ok(rep)
}

/// The hot tier's directories: `(dataset, Some(tf dir name) for a one-timeframe
/// directory of an older store or None for the dataset's own, dir)`.
fn hot_dirs(root: &Path) -> Vec<(String, Option<String>, PathBuf)> {
    let mut out = Vec::new();
    for d in list_dir(&root.join("_hot")) {
        let Some(ds) = file_name(&d) else { continue };
        out.push((ds.clone(), None, d.clone()));
        for t in list_dir(&d).into_iter().filter(|t| t.is_dir()) {
            if let Some(tf) = file_name(&t) {
                out.push((ds.clone(), Some(tf), t));
            }
        }
    }
    out
}

/// The kind of a dataset's stored timeframe.
fn kind_of(e: &DatasetEntry, tf: Timeframe) -> Kind {
    if tf != e.config.base {
        Kind::Rollup
    } else if tf.is_tick() {
        Kind::Ticks
    } else {
        Kind::Bars
    }
}

fn check_wals(root: &Path, catalog: Option<&Catalog>, rep: &mut FsckReport) {
    for (ds, tf_name, dir) in hot_dirs(root) {
        let entry = catalog.and_then(|c| c.datasets.get(&ds));
        let dropped = catalog.is_some_and(|c| c.dropped.contains(&ds));
        if entry.is_none() && tf_name.is_none() && dropped {
            rep.push(
                Severity::Warning,
                "wal",
                &dir,
                format!("WALs of dataset {ds:?}, dropped (a drop cut short): never read; the writer removes them when it opens"),
            );
        } else if catalog.is_some() && entry.is_none() && tf_name.is_none() {
            rep.push(
                Severity::Problem,
                "catalog",
                &dir,
                format!("WALs of dataset {ds:?}, which the catalog does not list: their rows cannot be queried"),
            );
        }
        // The streams to check, each with the schema its frames must have: every stored
        // timeframe of a dataset-day WAL, or the one timeframe of an older store's WAL.
        let tf = tf_name.as_deref().map(|n| n.parse::<Timeframe>().ok());
        let kinds: Vec<(Option<u32>, Kind)> = match (entry, tf) {
            (Some(e), None) => std::iter::once(e.config.base)
                .chain(e.config.rollups.iter().copied())
                .map(|t| (Some(wal::stream_of(t)), kind_of(e, t)))
                .collect(),
            (Some(e), Some(Some(tf))) if tf == e.config.base || e.config.rollups.contains(&tf) => {
                vec![(None, kind_of(e, tf))]
            }
            (Some(_), Some(_)) => {
                rep.push(
                    Severity::Problem,
                    "wal",
                    &dir,
                    format!(
                        "timeframe {:?} is not stored by dataset {ds:?}: its WALs are not read",
                        tf_name.as_deref().unwrap_or("")
                    ),
                );
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        for f in list_dir(&dir) {
            if f.is_dir() {
                continue;
            }
            let name = file_name(&f).unwrap_or_default();
            if name.ends_with(".tmp") {
                rep.push(
                    Severity::Warning,
                    "wal",
                    &f,
                    "temp file of a rewrite cut short; the writer removes it when it opens".into(),
                );
                continue;
            }
            let Some(day) = name.strip_suffix(".wal").and_then(parse_day) else {
                rep.push(
                    Severity::Warning,
                    "wal",
                    &f,
                    "not a WAL file (expected YYYY-MM-DD.wal); it is ignored".into(),
                );
                continue;
            };
            if entry.and_then(|e| e.hot_floor).is_some_and(|f| day < f) {
                rep.push(
                    Severity::Warning,
                    "wal",
                    &f,
                    "a day before the dataset's retention floor (left by a retention pass cut short): never read; the writer removes it when it opens".into(),
                );
                continue;
            }
            let rolls = entry.is_some_and(|e| {
                !e.config.rollups.is_empty() && tf.is_none_or(|t| t == Some(e.config.base))
            });
            check_wal(&f, day, &kinds, entry, rolls, rep);
        }
    }
}

fn check_wal(
    path: &Path,
    day: i64,
    kinds: &[(Option<u32>, Kind)],
    entry: Option<&DatasetEntry>,
    rolls: bool,
    rep: &mut FsckReport,
) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            rep.push(Severity::Problem, "wal", path, format!("cannot read: {e}"));
            return;
        }
    };
    rep.wal_files += 1;
    let (_, scan) = wal::scan(&bytes, true);
    rep.wal_frames += scan.frames;
    for d in &scan.damaged {
        rep.push(
            Severity::Problem,
            "wal",
            path,
            format!(
                "CORRUPT region at offset {} ({} bytes) with valid frames after it: {}; `ringfeed fsck --repair` (or the writer's next open) moves it to quarantine and keeps every valid frame",
                d.offset, d.len, d.reason
            ),
        );
    }
    if let Some(why) = &scan.torn {
        rep.push(
            Severity::Warning,
            "wal",
            path,
            format!(
                "torn tail of {} bytes after {} valid frames ({why}): a write cut short, never acknowledged; the writer's next open cuts it",
                scan.cut_bytes(),
                scan.frames
            ),
        );
    }
    if rolls && scan.rollups_pending {
        rep.push(
            Severity::Warning,
            "rollups",
            path,
            "the last write has no rollup marker (cut short between base and rollup frames); the writer's next open rewrites the day's rollups".into(),
        );
    }
    if kinds.iter().all(|(s, _)| s.is_some()) && !kinds.is_empty() {
        let stray: Vec<u32> = scan
            .streams
            .iter()
            .filter(|s| !kinds.iter().any(|(k, _)| *k == Some(**s)))
            .copied()
            .collect();
        if !stray.is_empty() {
            rep.push(
                Severity::Problem,
                "wal",
                path,
                format!("frames of streams {stray:?}, which are no timeframe the dataset stores: they are not read"),
            );
        }
    }
    let mut unknown = BTreeSet::new();
    let mut outside = 0usize;
    let ops = kinds.iter().flat_map(|(stream, kind)| {
        wal::scan_stream(&bytes, true, *stream)
            .0
            .into_iter()
            .map(move |op| (*kind, op))
    });
    for (kind, op) in ops {
        let Op::Upsert(b) = op else {
            continue;
        };
        let b = match schema::conform(&b, &kind.schema()) {
            Ok(b) => b,
            Err(e) => {
                rep.push(
                    Severity::Problem,
                    "wal",
                    path,
                    format!("a frame does not have the {kind:?} schema: {e}"),
                );
                continue;
            }
        };
        let v = schema::view(&b);
        outside +=
            v.ts.iter()
                .filter(|t| t.div_euclid(NANOS_PER_DAY) != day)
                .count();
        if let Some(e) = entry {
            for s in crate::merge::symbols_of(&b) {
                if !e.symbols.contains(&s) {
                    unknown.insert(s);
                }
            }
        }
    }
    if outside > 0 {
        rep.push(
            Severity::Problem,
            "wal",
            path,
            format!(
                "{outside} rows lie outside the file's UTC day; they belong in another day's WAL"
            ),
        );
    }
    if !unknown.is_empty() {
        rep.push(
            Severity::Problem,
            "catalog",
            path,
            format!(
                "symbols the catalog does not list: {}; queries by symbol say \"unknown symbol\" for them",
                unknown.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

fn check_parts(root: &Path, catalog: &Catalog, rep: &mut FsckReport) {
    let mut referenced = BTreeSet::new();
    for (ds, e) in &catalog.datasets {
        for (tf_key, parts) in &e.cold {
            let kind = match tf_key.parse::<Timeframe>() {
                Ok(tf) if tf == e.config.base && tf.is_tick() => Kind::Ticks,
                Ok(tf) if tf == e.config.base => Kind::Bars,
                _ => Kind::Rollup,
            };
            let want: Vec<String> = kind
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for p in parts {
                let path = root.join(&p.path);
                referenced.insert(path.clone());
                rep.parquet_files += 1;
                let unknown: Vec<&str> = p
                    .symbols
                    .iter()
                    .filter(|s| !e.symbols.contains(*s))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    rep.push(
                        Severity::Problem,
                        "catalog",
                        &path,
                        format!(
                            "dataset {ds:?} does not list symbols of this part: {}",
                            unknown.join(", ")
                        ),
                    );
                }
                check_part(&path, &want, p.rows, rep);
            }
        }
    }
    for d in list_dir(root) {
        if !file_name(&d).is_some_and(|n| n.starts_with("dataset=")) {
            continue;
        }
        for t in list_dir(&d) {
            for day in list_dir(&t) {
                for f in list_dir(&day) {
                    let n = file_name(&f).unwrap_or_default();
                    if n.ends_with(".tmp") || (n.ends_with(".parquet") && !referenced.contains(&f))
                    {
                        rep.push(
                            Severity::Warning,
                            "parquet",
                            &f,
                            "not in the catalog (left by a write-down cut short); the writer removes it when it opens".into(),
                        );
                    }
                }
            }
        }
    }
}

fn check_part(path: &Path, want: &[String], rows: u64, rep: &mut FsckReport) {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            rep.push(
                Severity::Problem,
                "parquet",
                path,
                format!("listed in the catalog but cannot be opened: {e}; its day's rows are missing, restore the file or delete the day and re-ingest"),
            );
            return;
        }
    };
    let meta = match ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()) {
        Ok(m) => m,
        Err(e) => {
            rep.push(
                Severity::Problem,
                "parquet",
                path,
                format!("the footer does not read: {e}; restore the file or delete its day and re-ingest"),
            );
            return;
        }
    };
    let have: Vec<String> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let missing: Vec<&str> = want
        .iter()
        .filter(|w| !have.contains(w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        rep.push(
            Severity::Problem,
            "parquet",
            path,
            format!("columns missing: {}", missing.join(", ")),
        );
    }
    let found = meta.metadata().file_metadata().num_rows();
    if found != rows as i64 {
        rep.push(
            Severity::Problem,
            "parquet",
            path,
            format!("holds {found} rows, the catalog says {rows}"),
        );
    }
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}
