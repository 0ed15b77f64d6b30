//! The catalog: datasets, their configuration and symbols, and the cold tier's Parquet
//! files with min/max ts, symbols and rows. Each commit writes a new immutable version
//! file `_catalog/v<N>.json` (write to a temp name, fsync, rename) and then flips
//! `_catalog/CURRENT` to it the same way, so a crash leaves the old or the new version.
//!
//! A change is a transaction: the store builds the next catalog beside the one it serves,
//! commits it ([`Catalog::commit`]) and swaps it in only when the commit succeeded. A
//! failed commit (a full disk) leaves the served catalog as it was, so memory never holds
//! what a restart would not find.

use crate::perms::StoreOptions;
use crate::retention::RetentionSpec;
use crate::session::Session;
use crate::timeframe::{Timeframe, Unit};
use crate::wal::FsyncPolicy;
use chrono::Weekday;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Version of the catalog and cold-file schema layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Per-dataset settings, fixed when the dataset is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// The finest stored resolution: what ingest writes.
    #[serde(with = "tf_str")]
    pub base: Timeframe,
    /// Rollup targets maintained on write.
    #[serde(with = "tf_vec")]
    pub rollups: Vec<Timeframe>,
    /// Trading session for daily and weekly bars; `None` = the UTC day.
    #[serde(default)]
    pub session: Option<Session>,
    /// When WAL appends are synced.
    #[serde(with = "fsync_str", default)]
    pub fsync: FsyncPolicy,
    /// First day of the week of `1w` bars resampled on read (a query may override it).
    /// Left out of the catalog when Monday, so catalogs without it load as Monday.
    #[serde(
        with = "weekday_str",
        default = "monday",
        skip_serializing_if = "is_monday"
    )]
    pub week_start: Weekday,
    /// How long rows are kept (see [`crate::retention`]): partitions wholly older are
    /// dropped at write-down and by [`crate::BarStore::apply_retention`]. `None` (left out
    /// of the catalog, so older catalogs load as before) keeps everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// How long rollup bars are kept when longer than `retention` (the base bars go
    /// first, the coarse history stays); `None`: as long as the base bars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_retention: Option<RetentionSpec>,
}

fn monday() -> Weekday {
    Weekday::Mon
}

fn is_monday(d: &Weekday) -> bool {
    *d == Weekday::Mon
}

/// Why a dataset's calendar settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarConfigError {
    /// A calendar timeframe as the base.
    #[error("base {0}: calendar timeframes are resampled on read, not stored; store a fixed base such as 1d and query --timeframe {0}")]
    Base(Timeframe),
    /// Weekly base bars with a week start other than Monday.
    #[error("week start {0}: a weekly base holds Monday weeks; keep the week start on Monday, or store a finer base (1d) and resample weeks on read")]
    WeeklyBase(Weekday),
}

impl DatasetConfig {
    /// A config with the default rollup ladder (5m, 15m, 1h, 1d, 1m for ticks) above `base`.
    pub fn new(base: Timeframe) -> Self {
        let ladder = ["1m", "5m", "15m", "1h", "1d"];
        let rollups = ladder
            .iter()
            .map(|s| s.parse::<Timeframe>().unwrap())
            .filter(|t| match (base.nanos(), t.nanos()) {
                (None, Some(_)) => true,
                (Some(b), Some(n)) => n > b && n % b == 0,
                _ => false,
            })
            .collect();
        DatasetConfig {
            base,
            rollups,
            session: None,
            fsync: FsyncPolicy::Always,
            week_start: Weekday::Mon,
            retention: None,
            rollup_retention: None,
        }
    }

    /// The calendar rollups (`1M`, `1Y`, ...), kept by their own path
    /// (`store/calendar.rs`).
    pub fn calendar_rollups(&self) -> impl Iterator<Item = Timeframe> + '_ {
        self.rollups.iter().copied().filter(Timeframe::is_calendar)
    }

    /// The stored timeframes: the base, then the rollups.
    pub fn stored(&self) -> Vec<Timeframe> {
        let mut v = vec![self.base];
        v.extend(self.rollups.iter().copied());
        v
    }

    /// Refuse a rollup retention without a base retention, shorter than it, or on a
    /// dataset without rollups.
    pub fn check_retention(&self) -> Result<(), RetentionConfigError> {
        let Some(r) = self.rollup_retention else {
            return Ok(());
        };
        match self.retention {
            None => Err(RetentionConfigError::RollupsWithoutBase(r)),
            Some(b) if r.days() < b.days() => Err(RetentionConfigError::RollupsShorter {
                rollups: r,
                base: b,
            }),
            Some(_) if self.rollups.is_empty() => Err(RetentionConfigError::NoRollups(r)),
            Some(_) => Ok(()),
        }
    }

    /// Refuse a calendar base (months are built from stored bars, as rollups or on read),
    /// and a week start other than Monday with a weekly base.
    pub fn check_calendar(&self) -> Result<(), CalendarConfigError> {
        if self.base.is_calendar() {
            return Err(CalendarConfigError::Base(self.base));
        }
        let weekly = matches!(
            self.base,
            Timeframe::Bars {
                unit: Unit::Week,
                ..
            }
        );
        if weekly && self.week_start != Weekday::Mon {
            return Err(CalendarConfigError::WeeklyBase(self.week_start));
        }
        Ok(())
    }
}

/// Why a dataset's retention settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionConfigError {
    /// A rollup retention while the base bars are kept forever.
    #[error("rollup retention {0} without a retention for the base bars: rollups are kept at least as long as the base bars, so give a retention too (e.g. retention 400d, rollup retention {0}) or drop the rollup retention")]
    RollupsWithoutBase(RetentionSpec),
    /// A rollup retention shorter than the base retention.
    #[error("rollup retention {rollups} is shorter than the retention {base}: rollups are derived from the base bars and kept at least as long; give a rollup retention of {base} or more, or none")]
    RollupsShorter {
        /// The rollup retention.
        rollups: RetentionSpec,
        /// The base retention.
        base: RetentionSpec,
    },
    /// A rollup retention on a dataset that stores no rollups.
    #[error("rollup retention {0} on a dataset without rollups: there is nothing to keep longer; drop the rollup retention")]
    NoRollups(RetentionSpec),
}

/// One immutable Parquet file of the cold tier: one UTC day, or a run of days (a
/// compacted month). The parts of a (dataset, timeframe) never cover a day twice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartFile {
    /// Path relative to the store root.
    pub path: String,
    /// UTC day number (days since 1970-01-01): the first day it covers.
    pub day: i64,
    /// The last day it covers, when more than `day` (a compacted month).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_day: Option<i64>,
    /// Part number within its directory.
    pub part: u32,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Smallest ts, ns.
    pub min_ts: i64,
    /// Largest ts, ns.
    pub max_ts: i64,
    /// Symbols present, sorted.
    pub symbols: Vec<String>,
}

impl PartFile {
    /// The last day the part covers.
    pub fn last(&self) -> i64 {
        self.last_day.unwrap_or(self.day)
    }

    /// Whether the part covers `day`.
    pub fn covers(&self, day: i64) -> bool {
        (self.day..=self.last()).contains(&day)
    }

    /// Whether the part covers more than one day (a compacted month).
    pub fn is_compacted(&self) -> bool {
        self.last_day.is_some()
    }
}

/// A dataset in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// Its settings.
    pub config: DatasetConfig,
    /// Every symbol ever written.
    pub symbols: BTreeSet<String>,
    /// Cold files per timeframe (key: `Timeframe` display form).
    pub cold: BTreeMap<String, Vec<PartFile>>,
    /// The first UTC day the hot tier may hold rows of: days before it were dropped by
    /// retention. A WAL of an earlier day (a crash between this commit and the file's
    /// removal) is never read, and the writer removes it when it opens. Lowered again
    /// before a write lands on an earlier day. Left out of the catalog when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_floor: Option<i64>,
}

/// One version of the catalog.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Layout version of the store.
    pub schema_version: u32,
    /// Monotonic commit number (0 = empty store, never committed).
    pub version: u64,
    /// Datasets by name.
    pub datasets: BTreeMap<String, DatasetEntry>,
    /// Names of dropped datasets whose directories may still exist (a drop cut short
    /// after its commit): the writer's open removes them; creating the name again clears
    /// it. Left out of the catalog when empty. Only these are ever removed: a directory
    /// of a name the catalog never dropped is left alone (fsck reports it).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dropped: BTreeSet<String>,
}

/// Failure to load or commit the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A catalog file could not be read or written.
    #[error("catalog {path}: {source}; check the data directory's permissions and free space")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk is full (or over quota, or read-only): the change was not made.
    #[error("catalog {path}: the disk is full ({source}); the change was not made and nothing was acknowledged: free space on the data directory's disk (or raise its quota) and retry")]
    DiskFull {
        /// The file.
        path: PathBuf,
        /// The OS error (`ENOSPC`, `EDQUOT` or `EROFS`).
        source: std::io::Error,
    },
    /// A catalog file is not valid JSON of the expected shape.
    #[error("catalog {path} is corrupt ({detail}); restore it from the previous version file v<N>.json in the same directory")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed to parse.
        detail: String,
    },
    /// The store was written by a newer ringfeed.
    #[error("the store at {path} has layout version {found}, this ringfeed reads up to {SCHEMA_VERSION}; upgrade ringfeed")]
    TooNew {
        /// The store root.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + '_ {
    move |source| {
        if crate::perms::is_no_space(&source) {
            CatalogError::DiskFull {
                path: path.to_path_buf(),
                source,
            }
        } else {
            CatalogError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// The catalog directory under a store root.
pub fn dir(root: &Path) -> PathBuf {
    root.join("_catalog")
}

impl Catalog {
    /// Load the current version, or an empty catalog if the store is new.
    pub fn load(root: &Path) -> Result<Catalog, CatalogError> {
        let cur = dir(root).join("CURRENT");
        let name = match std::fs::read_to_string(&cur) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Catalog {
                    schema_version: SCHEMA_VERSION,
                    ..Default::default()
                })
            }
            Err(e) => return Err(io(&cur)(e)),
        };
        let path = dir(root).join(&name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let cat: Catalog = serde_json::from_slice(&bytes).map_err(|e| CatalogError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if cat.schema_version > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                path: root.to_path_buf(),
                found: cat.schema_version,
            });
        }
        let mut cat = cat;
        cat.normalize_timeframes();
        Ok(cat)
    }

    /// Key cold files by the normalized timeframe (`60m` → `1h`): a store written before
    /// spellings were normalized may hold keys in another spelling. Part paths are kept as
    /// they are (they name real files). Configs are normalized when parsed.
    fn normalize_timeframes(&mut self) {
        for e in self.datasets.values_mut() {
            e.config.rollups.dedup();
            let old = std::mem::take(&mut e.cold);
            for (key, mut parts) in old {
                let key = key
                    .parse::<Timeframe>()
                    .map(|t| t.to_string())
                    .unwrap_or(key);
                e.cold.entry(key).or_default().append(&mut parts);
            }
        }
    }

    /// Commit this catalog as the next version with the default file modes (see
    /// [`Catalog::commit_with`]).
    pub fn commit(&mut self, root: &Path) -> Result<(), CatalogError> {
        self.commit_with(root, &StoreOptions::default())
    }

    /// Commit this catalog as the next version: write `v<N>.json` (temp file, fsync,
    /// rename, fsync the directory), then flip `CURRENT` the same way. On failure `self`
    /// is unchanged (its version too), so the caller can drop it or try again. Old
    /// versions are kept (the last 20) as snapshots.
    pub fn commit_with(&mut self, root: &Path, opts: &StoreOptions) -> Result<(), CatalogError> {
        let d = dir(root);
        opts.create_dir_all(&d).map_err(io(&d))?;
        let mut next = Catalog {
            schema_version: SCHEMA_VERSION,
            version: self.version + 1,
            datasets: std::mem::take(&mut self.datasets),
            dropped: std::mem::take(&mut self.dropped),
        };
        let res = next.write_version(&d, opts);
        // Hand the datasets back whatever happened (no copy of the catalog is made).
        self.datasets = std::mem::take(&mut next.datasets);
        self.dropped = std::mem::take(&mut next.dropped);
        res?;
        self.version = next.version;
        self.schema_version = SCHEMA_VERSION;
        // Snapshots older than 20 versions are dropped; failures here are harmless.
        if self.version > 20 {
            let _ = std::fs::remove_file(d.join(format!("v{:010}.json", self.version - 20)));
        }
        Ok(())
    }

    fn write_version(&self, d: &Path, opts: &StoreOptions) -> Result<(), CatalogError> {
        let name = format!("v{:010}.json", self.version);
        let body = serde_json::to_vec_pretty(self).expect("catalog serialises");
        let path = d.join(&name);
        opts.write_atomic(&path, &body).map_err(io(&path))?;
        crate::failpoint("catalog:before_current");
        let cur = d.join("CURRENT");
        opts.write_atomic(&cur, name.as_bytes()).map_err(io(&cur))?;
        crate::failpoint("catalog:after_current");
        Ok(())
    }
}

/// Write `path` atomically with the default file mode: temp file, fsync, rename, fsync
/// the directory.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<(), CatalogError> {
    StoreOptions::default()
        .write_atomic(path, body)
        .map_err(io(path))
}

/// fsync a directory so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    crate::perms::sync_dir(dir)
}

mod tf_str {
    use crate::Timeframe;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &Timeframe, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timeframe, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod tf_vec {
    use crate::Timeframe;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &[Timeframe], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(|t| t.to_string()))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Timeframe>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

mod fsync_str {
    use crate::FsyncPolicy;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &FsyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FsyncPolicy, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod weekday_str {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.to_string().to_ascii_lowercase())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(|_| serde::de::Error::custom("a week start is a weekday such as mon or sun"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn week_start_defaults_to_monday_and_is_kept_otherwise() {
        // A dataset config as catalogs wrote it before week starts existed.
        let old = r#"{"base":"1m","rollups":["5m","1h"],"session":null,"fsync":"always"}"#;
        let cfg: DatasetConfig = serde_json::from_str(old).unwrap();
        assert_eq!(cfg.week_start, Weekday::Mon);
        assert_eq!(
            cfg,
            DatasetConfig::new("1m".parse().unwrap()).with_rollups(&["5m", "1h"])
        );
        // Monday is left out, so the catalog reads as before; other days are kept.
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("week_start"), "{json}");
        let sunday = DatasetConfig {
            week_start: Weekday::Sun,
            ..cfg
        };
        let json = serde_json::to_string(&sunday).unwrap();
        assert!(json.contains(r#""week_start":"sun""#), "{json}");
        assert_eq!(
            serde_json::from_str::<DatasetConfig>(&json).unwrap(),
            sunday
        );
        let bad = json.replace("sun", "someday");
        assert!(serde_json::from_str::<DatasetConfig>(&bad).is_err());
    }

    impl DatasetConfig {
        fn with_rollups(mut self, r: &[&str]) -> Self {
            self.rollups = r.iter().map(|s| s.parse().unwrap()).collect();
            self
        }
    }
}
