//! The sync pass: finished partitions of the store → the lake.

use crate::error::{CorruptError, SyncError};
use crate::manifest::{
    FileEntry, Index, IndexEntry, PartitionManifest, Source, INDEX_KEY, MANIFEST_DIR,
    MANIFEST_FORMAT,
};
use crate::objects::hash_file;
use crate::Lake;
use ringfeed_store::catalog::{Catalog, PartFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The index is committed after this many partitions (and at the end of a pass), so a
/// pass cut short keeps most of its progress without rewriting the index per partition.
const COMMIT_EVERY: usize = 16;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Finished partitions in the store.
    pub local_partitions: usize,
    /// Partitions uploaded as a new generation.
    pub partitions_uploaded: usize,
    /// Partitions whose local files changed name but not content (recorded, not uploaded).
    pub partitions_relinked: usize,
    /// Data objects uploaded (objects already present from a pass cut short are not
    /// uploaded again and not counted).
    pub uploaded_objects: u64,
    /// Their bytes.
    pub uploaded_bytes: u64,
    /// Partitions dropped from the lake by `lake_retention`.
    pub partitions_expired: usize,
    /// Objects deleted: older generations, expired partitions, leftovers of passes cut short.
    pub deleted_objects: u64,
    /// Partitions in the index after the pass.
    pub lake_partitions: usize,
    /// Wall time of the pass, ms.
    pub elapsed_ms: u64,
}

/// A finished partition of the store: one compacted month of a dataset and timeframe.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalPartition {
    /// `dataset=D/tf=T/month=M`, the same in the store and the lake.
    pub key: String,
    /// Its parts (one month file).
    pub parts: Vec<PartFile>,
    /// The last UTC day it covers.
    pub last_day: i64,
}

impl LocalPartition {
    fn source(&self) -> Source {
        Source {
            parts: self
                .parts
                .iter()
                .map(|p| (p.path.clone(), p.bytes, p.rows))
                .collect(),
        }
    }
}

/// The store's finished partitions: month directories whose every part is a compacted
/// month file. Day parts (the current month, or a `--no-compact` write-down) wait for
/// compaction; stores' old `date=` directories are not uploaded.
pub fn finished_partitions(cat: &Catalog) -> Vec<LocalPartition> {
    let mut by_dir: BTreeMap<String, Vec<PartFile>> = BTreeMap::new();
    for e in cat.datasets.values() {
        for parts in e.cold.values() {
            for p in parts {
                if let Some((dir, _)) = p.path.rsplit_once('/') {
                    if dir
                        .split('/')
                        .nth(2)
                        .is_some_and(|m| m.starts_with("month="))
                    {
                        by_dir.entry(dir.to_string()).or_default().push(p.clone());
                    }
                }
            }
        }
    }
    by_dir
        .into_iter()
        .filter(|(_, parts)| parts.iter().all(PartFile::is_compacted))
        .map(|(key, mut parts)| {
            parts.sort_by(|a, b| a.path.cmp(&b.path));
            let last_day = parts.iter().map(PartFile::last).max().unwrap_or(i64::MIN);
            LocalPartition {
                key,
                parts,
                last_day,
            }
        })
        .collect()
}

/// The data directory's lake lock, held for a pass.
pub(crate) struct PassLock(std::fs::File);

pub(crate) fn lock(data_dir: &Path) -> Result<PassLock, SyncError> {
    let dir = data_dir.join("_lake");
    let local = |path: PathBuf| move |source| SyncError::Local { path, source };
    std::fs::create_dir_all(&dir).map_err(local(dir.clone()))?;
    let path = dir.join("sync.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(local(path.clone()))?;
    // fs4 (flock through rustix), as the store's writer lock: std's needs a newer Rust.
    match fs4::FileExt::try_lock(&f) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(SyncError::Busy {
                dir: data_dir.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        Err(fs4::TryLockError::Error(e)) => return Err(local(path)(e)),
    }
    let _ = f.set_len(0);
    let _ = write!(f, "pid {}", std::process::id());
    Ok(PassLock(f))
}

impl Drop for PassLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

/// Test hooks (tests kill a pass mid-way): `RINGFEED_LAKE_TEST_DELAY_MS` sleeps before
/// each data object; `RINGFEED_LAKE_FAILPOINT=abort_after:N` aborts after N objects.
fn test_hooks(uploaded: u64) {
    static HOOKS: std::sync::OnceLock<(u64, Option<u64>)> = std::sync::OnceLock::new();
    let (delay, abort) = *HOOKS.get_or_init(|| {
        let delay = std::env::var("RINGFEED_LAKE_TEST_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let abort = std::env::var("RINGFEED_LAKE_FAILPOINT")
            .ok()
            .and_then(|v| v.strip_prefix("abort_after:")?.parse().ok());
        (delay, abort)
    });
    if abort.is_some_and(|n| uploaded >= n) {
        std::process::abort();
    }
    if delay > 0 {
        std::thread::sleep(std::time::Duration::from_millis(delay));
    }
}

pub(crate) async fn load_index(lake: &Lake) -> Result<Option<Index>, SyncError> {
    match lake.loc.get(INDEX_KEY).await? {
        Some(b) => Ok(Some(Index::from_bytes(&b)?)),
        None => Ok(None),
    }
}

async fn save_index(lake: &Lake, idx: &mut Index) -> Result<(), SyncError> {
    idx.seq += 1;
    lake.loc.put(INDEX_KEY, idx.to_bytes()).await
}

pub(crate) async fn status(lake: &Lake) -> Result<Vec<(LocalPartition, bool)>, SyncError> {
    let cat = Catalog::load(&lake.data_dir)?;
    let idx = load_index(lake).await?.unwrap_or_default();
    Ok(finished_partitions(&cat)
        .into_iter()
        .map(|p| {
            let done = idx
                .partitions
                .get(&p.key)
                .is_some_and(|e| e.source == p.source());
            (p, done)
        })
        .collect())
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

pub(crate) async fn pass(lake: &Lake, rebuild: bool) -> Result<SyncReport, SyncError> {
    let t = Instant::now();
    let mut rep = SyncReport::default();
    let cat = Catalog::load(&lake.data_dir)?;
    let local = finished_partitions(&cat);
    rep.local_partitions = local.len();
    let mut dirty = rebuild;
    let mut idx = if rebuild {
        rebuild_index(lake).await?
    } else {
        match load_index(lake).await? {
            Some(i) => i,
            None => {
                // No index but manifests: the index was lost. Starting afresh would sweep
                // away partitions only the lake holds (kept past local retention).
                if !lake.loc.list(MANIFEST_DIR).await?.is_empty() {
                    return Err(CorruptError {
                        object: INDEX_KEY.into(),
                        detail: "missing, while partition manifests exist".into(),
                    }
                    .into());
                }
                // Written before any manifest, so a first pass cut short leaves an index:
                // "no index but manifests" then only means the index was lost.
                let mut i = Index::default();
                save_index(lake, &mut i).await?;
                i
            }
        }
    };
    let now = now_ns();
    let cutoff = lake.cfg.lake_retention.map(|r| r.cutoff_day(now));
    if let Some(c) = cutoff {
        let before = idx.partitions.len();
        idx.partitions.retain(|_, e| e.last_day >= c);
        rep.partitions_expired = before - idx.partitions.len();
        dirty |= rep.partitions_expired > 0;
    }
    let pending: Vec<&LocalPartition> = local
        .iter()
        .filter(|p| cutoff.is_none_or(|c| p.last_day >= c))
        .filter(|p| {
            idx.partitions
                .get(&p.key)
                .is_none_or(|e| e.source != p.source())
        })
        .collect();
    lake.metrics.set_pending(pending.len());
    let mut since_commit = 0;
    for (i, p) in pending.iter().enumerate() {
        let uploaded = upload_partition(lake, p, &mut idx, &mut rep, now).await?;
        if uploaded {
            rep.partitions_uploaded += 1;
        } else {
            rep.partitions_relinked += 1;
        }
        dirty = true;
        since_commit += 1;
        if since_commit >= COMMIT_EVERY {
            save_index(lake, &mut idx).await?;
            since_commit = 0;
            dirty = false;
        }
        lake.metrics.set_pending(pending.len() - i - 1);
    }
    if dirty {
        save_index(lake, &mut idx).await?;
    }
    rep.deleted_objects = sweep(lake, &idx).await?;
    rep.lake_partitions = idx.partitions.len();
    rep.elapsed_ms = t.elapsed().as_millis() as u64;
    Ok(rep)
}

/// Upload one partition as its next generation (or, when the content is what the lake
/// already holds, record the new local source only). Returns whether data went up.
async fn upload_partition(
    lake: &Lake,
    p: &LocalPartition,
    idx: &mut Index,
    rep: &mut SyncReport,
    now: i64,
) -> Result<bool, SyncError> {
    let mut files = Vec::with_capacity(p.parts.len());
    let mut local_paths = Vec::with_capacity(p.parts.len());
    for part in &p.parts {
        let path = lake.data_dir.join(&part.path);
        let (sha, size) = hash_file(&path).map_err(|source| SyncError::Local {
            path: path.clone(),
            source,
        })?;
        let stem = part
            .path
            .rsplit_once('/')
            .map_or(part.path.as_str(), |(_, f)| f)
            .trim_end_matches(".parquet");
        files.push(FileEntry {
            path: format!("{}/{stem}-{}.parquet", p.key, &sha[..16]),
            bytes: size,
            rows: part.rows,
            min_ts: part.min_ts,
            max_ts: part.max_ts,
            sha256: sha,
        });
        local_paths.push(path);
    }
    let old = idx.partitions.get(&p.key).cloned();
    // Same content under new local names (a restored data directory): record the source.
    if let Some(e) = &old {
        if let Some(b) = lake.loc.get(&e.manifest).await? {
            if let Ok(m) = PartitionManifest::from_bytes(&b, &e.manifest) {
                let same = m.files.len() == files.len()
                    && m.files
                        .iter()
                        .zip(&files)
                        .all(|(a, b)| a.sha256 == b.sha256);
                if same {
                    let e = idx.partitions.get_mut(&p.key).expect("present");
                    e.source = p.source();
                    return Ok(false);
                }
            }
        }
    }
    for (f, local) in files.iter().zip(&local_paths) {
        // Content-addressed: an object of this name and size is these bytes (left by a
        // pass cut short after the upload).
        if lake.loc.size(&f.path).await? == Some(f.bytes) {
            continue;
        }
        test_hooks(rep.uploaded_objects);
        lake.loc.upload(local, &f.path, f.bytes).await?;
        rep.uploaded_objects += 1;
        rep.uploaded_bytes += f.bytes;
        lake.metrics.add_uploaded(f.bytes);
    }
    let generation = old.as_ref().map_or(1, |e| e.generation + 1);
    let m = PartitionManifest {
        format: MANIFEST_FORMAT.into(),
        partition: p.key.clone(),
        generation,
        files,
        checksum: String::new(),
    };
    let body = m.to_bytes();
    let key = m.key(&body);
    let manifest_sha256 = crate::manifest::sha256_hex(&body);
    // Always written (small): a damaged copy under this name is replaced by the bytes
    // its name stands for.
    lake.loc.put(&key, body).await?;
    idx.partitions.insert(
        p.key.clone(),
        IndexEntry::for_manifest(&m, key, manifest_sha256, p.last_day, p.source(), now),
    );
    Ok(true)
}

/// The keys the index references: its manifests and their files.
pub(crate) fn referenced(idx: &Index) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    for e in idx.partitions.values() {
        keep.insert(e.manifest.clone());
        keep.extend(e.files.iter().cloned());
    }
    keep
}

/// Every key the lake owns: its manifests and the data under `dataset=` (the rest of the
/// prefix is not the lake's).
pub(crate) async fn own_keys(lake: &Lake) -> Result<Vec<String>, SyncError> {
    let mut all = lake.loc.list(MANIFEST_DIR).await?;
    all.extend(
        lake.loc
            .list("")
            .await?
            .into_iter()
            .filter(|(k, _)| k.starts_with("dataset=")),
    );
    Ok(all.into_iter().map(|(k, _)| k).collect())
}

/// Delete data objects and manifests that the index no longer references: older
/// generations, expired partitions, leftovers of a pass cut short. Only keys under
/// `dataset=` and `_lake/manifests/` are touched (the prefix belongs to the lake).
async fn sweep(lake: &Lake, idx: &Index) -> Result<u64, SyncError> {
    let keep = referenced(idx);
    let mut gone = 0;
    for k in own_keys(lake).await? {
        if !keep.contains(&k) {
            lake.loc.delete(&k).await?;
            gone += 1;
        }
    }
    lake.metrics.add_deleted(gone);
    Ok(gone)
}

/// An index rebuilt from the manifests: per partition, the highest generation whose
/// manifest is valid. Sources are left empty, so the pass that follows compares each
/// local partition's content with it (and uploads only what differs).
async fn rebuild_index(lake: &Lake) -> Result<Index, SyncError> {
    let mut best: BTreeMap<String, (PartitionManifest, String, String)> = BTreeMap::new();
    for (k, _) in lake.loc.list(MANIFEST_DIR).await? {
        let Some(b) = lake.loc.get(&k).await? else {
            continue;
        };
        let Ok(m) = PartitionManifest::from_bytes(&b, &k) else {
            tracing::warn!(object = %k, "rebuild-index: skipping a corrupt manifest");
            continue;
        };
        if !k.starts_with(&format!("{MANIFEST_DIR}/{}/", m.partition)) {
            continue;
        }
        if best
            .get(&m.partition)
            .is_none_or(|(o, _, _)| m.generation > o.generation)
        {
            let sha = crate::manifest::sha256_hex(&b);
            best.insert(m.partition.clone(), (m, k, sha));
        }
    }
    let old_seq = match lake.loc.get(INDEX_KEY).await? {
        Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v.get("seq")?.as_u64())
            .unwrap_or(0),
        None => 0,
    };
    let mut idx = Index {
        seq: old_seq,
        ..Index::default()
    };
    for (key, (m, manifest, sha)) in best {
        let last_day = month_last_day(&key).unwrap_or(i64::MAX);
        let source = Source { parts: vec![] };
        let e = IndexEntry::for_manifest(&m, manifest, sha, last_day, source, now_ns());
        idx.partitions.insert(key, e);
    }
    Ok(idx)
}

/// The last UTC day number of the `month=YYYY-MM` in a partition key.
fn month_last_day(key: &str) -> Option<i64> {
    use chrono::NaiveDate;
    let m = key.split('/').find_map(|s| s.strip_prefix("month="))?;
    let (y, mo) = m.split_once('-')?;
    let (y, mo): (i32, u32) = (y.parse().ok()?, mo.parse().ok()?);
    let next = if mo == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, mo + 1, 1)?
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((next - epoch).num_days() - 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_last_day() {
        // 2021-01-31 is day 18,658.
        assert_eq!(
            super::month_last_day("dataset=d/tf=1m/month=2021-01"),
            Some(18_658)
        );
        assert_eq!(
            super::month_last_day("dataset=d/tf=1m/month=2020-12"),
            Some(18_627)
        );
        assert_eq!(super::month_last_day("dataset=d/tf=1m/month=x"), None);
    }
}
